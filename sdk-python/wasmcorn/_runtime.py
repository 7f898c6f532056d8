"""The entry points the C shim calls (not an API for plugin code).

boot() imports the plugin's app once per interpreter; handle(msg) and
job(msg) take an encoded Request or Job and return an encoded Response or
JobResult. They never raise: an exception from the app is logged with its
traceback and becomes a 500 (or a retried job); a deadline becomes a 504.

The plugin bundle carries a module _wasmcorn_plugin (written by the
bundle builder) naming the app: APP = "module" or "module:attribute",
KIND = "auto", "wasmcorn", "wsgi" or "handler".
"""

import importlib
import sys

from . import _abi, _host
from . import log as _log
from ._app import App, FailJob, Job, RetryJob
from ._http import HTTPError, Request, Response, make_response

DeadlineExceeded = _host.DeadlineExceeded

def _plain_handler(fn):
    def handler(request):
        return make_response(fn(request))

    return handler


def _is_single_arg_function(obj):
    # A plain function (or bound method) with exactly one required
    # positional parameter; read from the code object rather than with
    # inspect, which would import ast, dis and tokenize into every instance.
    bound = hasattr(obj, "__self__") and hasattr(obj, "__func__")
    fn = obj.__func__ if bound else obj
    code = getattr(fn, "__code__", None)
    if code is None or not hasattr(fn, "__defaults__"):
        return False
    required = code.co_argcount - len(fn.__defaults__ or ()) - (1 if bound else 0)
    return required == 1 and not code.co_kwonlyargcount - len(fn.__kwdefaults__ or {})


class Server:
    """Serves one app: a wasmcorn App, a WSGI application, or a handler
    function fn(request) -> response. kind "auto" tells them apart: an App,
    else a function of one required argument is a handler, else WSGI.
    module, when given, is searched for an App holding job handlers (so a
    WSGI app can have jobs too)."""

    def __init__(self, obj, kind="auto", module=None):
        if kind not in ("auto", "wasmcorn", "wsgi", "handler"):
            raise ValueError("unknown app kind %r (auto, wasmcorn, wsgi or handler)" % kind)
        self.jobs = None
        if kind == "wasmcorn" or (kind == "auto" and isinstance(obj, App)):
            if not isinstance(obj, App):
                raise TypeError("the app is a %s, not a wasmcorn.App" % type(obj).__name__)
            self.handler, self.jobs, self.kind = obj.dispatch, obj, "wasmcorn"
            return
        if not callable(obj):
            raise TypeError("the app %r is not callable" % (obj,))
        if kind == "handler" or (kind == "auto" and _is_single_arg_function(obj)):
            self.handler, self.kind = _plain_handler(obj), "handler"
        else:
            from .wsgi import WSGIHandler

            self.handler, self.kind = WSGIHandler(obj), "wsgi"
        if module is not None:
            for v in vars(module).values():
                if isinstance(v, App):
                    self.jobs = v
                    break

    def handle(self, msg):
        """Serve one encoded Request; return the encoded Response."""
        try:
            m = _abi.decode_request(msg)
        except _abi.ABIError as e:
            _log.error("malformed request from the host", error=str(e))
            return _error_response(400, "Bad Request")
        out = self.serve(Request._from_message(m))
        if type(out) is tuple:
            try:
                return _abi.encode_response(*out)
            except Exception:  # noqa: BLE001 - a bad header or status from the app
                _log_exception("cannot encode the handler's response", method=m.method.decode("latin-1"))
                return _RESP_500
        return out

    def serve(self, request):
        """Run the app on request. Returns (status, headers, body) for the
        shim (or handle) to encode, or an encoded error response (bytes).
        Never raises."""
        try:
            try:
                resp = self.handler(request)
                if type(resp) is not Response:
                    resp = make_response(resp)
            except HTTPError as e:
                resp = e.response()
            except DeadlineExceeded:
                _log_exception("handler stopped at its deadline", level="warning",
                               method=request.method, path=request.path)
                return _RESP_504
            except BaseException:  # noqa: BLE001 - every app error becomes a logged 500
                _log_exception("unhandled exception in handler", method=request.method, path=request.path)
                return _RESP_500
            return (resp.status, resp.headers._items, resp.body)
        except DeadlineExceeded:
            return _RESP_504
        finally:
            _end_call()

    def job(self, msg):
        """Run one encoded Job; return the encoded JobResult."""
        try:
            try:
                m = _abi.decode_job(msg)
            except _abi.ABIError as e:
                return _result(_abi.JOB_FAIL, "malformed job from the host: %s" % e)
            j = Job(m.queue.decode("utf-8", "replace"), m.id.decode("utf-8", "replace"), m.attempt, m.payload)
            if self.jobs is None or j.queue not in self.jobs.jobs:
                return _result(_abi.JOB_FAIL, "no job handler for queue %r in this plugin" % j.queue)
            try:
                self.jobs.run_job(j)
            except FailJob as e:
                return _result(_abi.JOB_FAIL, str(e) or "failed")
            except RetryJob as e:
                return _result(_abi.JOB_RETRY, str(e) or "retry requested")
            except DeadlineExceeded:
                _log_exception("job stopped at its deadline", level="warning", queue=j.queue, job=j.id)
                return _result(_abi.JOB_RETRY, "deadline exceeded")
            except BaseException as e:  # noqa: BLE001 - logged, and the job is retried
                _log_exception("unhandled exception in job handler", queue=j.queue, job=j.id, attempt=j.attempt)
                return _result(_abi.JOB_RETRY, "%s: %s" % (type(e).__name__, e))
            return _result(_abi.JOB_OK)
        except DeadlineExceeded:
            return _result(_abi.JOB_RETRY, "deadline exceeded")
        finally:
            _end_call()


_server = None  # the Server boot() made


def _end_call():
    # Forget transaction handles the host ends with the call; only when
    # the app uses wasmcorn.db at all.
    db = sys.modules.get("wasmcorn.db")
    if db is not None:
        db._end_call()


def _resolve(mod, attr):
    if attr:
        try:
            return getattr(mod, attr)
        except AttributeError:
            raise LookupError("module %r has no attribute %r" % (mod.__name__, attr)) from None
    for name in ("app", "application", "handle"):
        if hasattr(mod, name):
            return getattr(mod, name)
    for v in vars(mod).values():
        if isinstance(v, App):
            return v
    raise LookupError("module %r defines no app: give it a wasmcorn.App named app, a WSGI "
                      "application named app or application, or a function handle(request)" % mod.__name__)


def boot(spec=None, kind=None):
    """Import the plugin's app and get ready to serve it."""
    try:
        import _wasmcorn_plugin as meta
    except ImportError:
        meta = None
    spec = spec or getattr(meta, "APP", "app")
    kind = kind or getattr(meta, "KIND", "auto")
    mod_name, _, attr = spec.partition(":")
    mod = importlib.import_module(mod_name)
    global _server
    _server = Server(_resolve(mod, attr), kind, mod)
    _log.install()


def go_live(from_snapshot):
    """Run once per instance before its first call. An instance restored
    from a snapshot shares the snapshot's random state and environment:
    reseed the random module from the host's entropy and reread the
    environment the host gave this instance."""
    if not from_snapshot:
        return
    import os
    import random

    random.seed()
    fresh = getattr(_host._wasmcorn, "environ", None)
    if fresh is not None:
        data = os.environ._data
        data.clear()
        data.update(fresh())


def _error_response(status, text):
    return _abi.encode_response(status, [(b"Content-Type", b"text/plain; charset=utf-8")], text.encode())


_RESP_500 = _error_response(500, "Internal Server Error")
_RESP_504 = _error_response(504, "Gateway Timeout: the handler ran past its deadline")


def _result(status, message=""):
    return _abi.encode_job_result(status, message.encode("utf-8", "replace"))


def _log_exception(what, level="error", **attrs):
    import traceback

    etype, e, tb = sys.exc_info()
    # The SDK's own frames (this module, routing, the WSGI bridge) lead
    # every traceback; the app's frames are what the reader needs.
    while tb is not None and tb.tb_next is not None and \
            tb.tb_frame.f_globals.get("__name__", "").startswith("wasmcorn."):
        tb = tb.tb_next
    text = "".join(traceback.format_exception(etype, e, tb))
    try:
        getattr(_log, level)(what, error="%s: %s" % (etype.__name__, e), traceback=text, **attrs)
    except BaseException:  # noqa: BLE001 - fall back to stderr, which the server logs too
        sys.stderr.write("%s\n%s" % (what, text))


def handle(req):
    """Serve one request with the booted app (called by the shim): req is
    the shim's decoded tuple, or the raw message when the shim's decoder
    rejected it (the Python codec then reports the error)."""
    if type(req) is tuple:
        return _server.serve(Request._from_tuple(req))
    return _server.handle(req)


def job(msg):
    """Run one encoded Job with the booted app (called by the shim)."""
    return _server.job(msg)
