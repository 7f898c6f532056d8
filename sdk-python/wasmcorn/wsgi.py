"""Run an unchanged WSGI application (PEP 3333) as a wasmcorn handler.

The runtime wraps the plugin's WSGI callable (a Flask or Django app, for
example) in WSGIHandler; it can also be used directly::

    handler = wasmcorn.wsgi.WSGIHandler(flask_app)
    response = handler(request)

The environ follows PEP 3333: PATH_INFO is the percent-decoded path as
Latin-1-decoded bytes, SCRIPT_NAME is empty (the app sees the full path),
HTTP_* carry the headers, wsgi.input the body. The server runs one request
per instance at a time, so wsgi.multithread is False; instances are
separate processes as far as the app can tell (wsgi.multiprocess True).
"""

import io
import sys

from ._http import Headers, Response

_NO_HTTP_PREFIX = {"CONTENT_TYPE", "CONTENT_LENGTH"}


class _Errors:
    """wsgi.errors: text written here goes to the guest's stderr, which
    the server routes into its log."""

    def write(self, s):
        return sys.stderr.write(s)

    def writelines(self, lines):
        for s in lines:
            sys.stderr.write(s)

    def flush(self):
        sys.stderr.flush()


_errors = _Errors()


def environ_for(request):
    """Build the PEP 3333 environ of request."""
    host = request.host
    name, sep, port = host.rpartition(":")
    if not sep or not port.isdigit() or "]" in port:
        name, port = host, "443" if request.scheme == "https" else "80"
    raddr, rsep, rport = request.remote_addr.rpartition(":")
    if not rsep:
        raddr, rport = request.remote_addr, ""
    env = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": request.raw_path.decode("latin-1"),
        "QUERY_STRING": request.query_string,
        "SERVER_NAME": name.strip("[]") or "localhost",
        "SERVER_PORT": port,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": raddr.strip("[]"),
        "REMOTE_PORT": rport,
        "CONTENT_LENGTH": str(len(request.body)) if request.body else "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": request.scheme or "http",
        "wsgi.input": io.BytesIO(request.body),
        "wsgi.errors": _errors,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wasmcorn.request": request,
    }
    if request.request_id:
        env["REQUEST_ID"] = request.request_id
    for k, v in request.headers._items:
        if "_" in k:
            # X_Forwarded_For would land on the key of X-Forwarded-For,
            # X_Wasmcorn_Param_id on a route parameter's: dropped, as
            # nginx and gunicorn drop them.
            continue
        key = k.upper().replace("-", "_")
        if key in _NO_HTTP_PREFIX:
            env[key] = v
            continue
        key = "HTTP_" + key
        if key in env:
            env[key] += ("; " if key == "HTTP_COOKIE" else ",") + v
        else:
            env[key] = v
    if not env["CONTENT_LENGTH"]:
        del env["CONTENT_LENGTH"]
    return env


class WSGIHandler:
    """Adapts a WSGI application to a wasmcorn handler: call it with a
    Request, get a Response. The body iterable is read whole (the ABI
    carries a complete response) and closed as PEP 3333 requires."""

    def __init__(self, app):
        self.app = app

    def __call__(self, request):
        state = []

        def start_response(status, headers, exc_info=None):
            if exc_info is not None:
                try:
                    if state and state[0][2]:
                        raise exc_info[1].with_traceback(exc_info[2])
                finally:
                    exc_info = None
            elif state and state[0][2]:
                raise AssertionError("start_response called twice without exc_info")
            state[:] = [[status, headers, False]]
            return write

        chunks = []

        def write(data):
            if not state:
                raise AssertionError("write() called before start_response")
            state[0][2] = True
            chunks.append(bytes(data))

        result = self.app(environ_for(request), start_response)
        try:
            for data in result:
                if data:
                    if not state:
                        raise AssertionError("the WSGI app yielded a body before start_response")
                    state[0][2] = True
                    chunks.append(bytes(data))
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if not state:
            raise RuntimeError("the WSGI app returned without calling start_response")
        status, headers, _ = state[0]
        try:
            code = int(status.split(" ", 1)[0])
        except ValueError:
            raise RuntimeError("the WSGI app gave a malformed status %r" % status) from None
        resp = Response.__new__(Response)
        resp.status = code
        resp.headers = Headers._from_list([(str(k), str(v)) for k, v in headers])
        resp.body = b"".join(chunks)
        return resp
