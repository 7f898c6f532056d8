"""The App object: routes, job handlers and error handlers."""

import re

from ._http import HTTPError, Response, make_response

_CONVERTERS = {
    "str": (r"[^/]+", str),
    "int": (r"-?[0-9]+", int),
    "float": (r"-?[0-9]+(?:\.[0-9]+)?", float),
    "path": (r".+", str),
}

_PARAM = re.compile(r"<(?:(?P<conv>[a-z]+):)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)>|\{(?P<name2>[A-Za-z_][A-Za-z0-9_]*)\}")


class Route:
    """One route: a path pattern, its methods and its handler."""

    __slots__ = ("pattern", "methods", "handler", "regex", "converters", "static")

    def __init__(self, pattern, methods, handler):
        if not pattern.startswith("/"):
            raise ValueError("route %r: a pattern starts with '/'" % pattern)
        self.pattern = pattern
        # None: every method.
        self.methods = None if methods is None else frozenset(m.upper() for m in methods)
        self.handler = handler
        self.converters = {}
        regex = []
        pos = 0
        for m in _PARAM.finditer(pattern):
            regex.append(re.escape(pattern[pos:m.start()]))
            name = m.group("name") or m.group("name2")
            conv = m.group("conv") or "str"
            if conv not in _CONVERTERS:
                raise ValueError("route %r: unknown converter %r (known: %s)"
                                 % (pattern, conv, ", ".join(sorted(_CONVERTERS))))
            if name in self.converters:
                raise ValueError("route %r: parameter %r appears twice" % (pattern, name))
            part, fn = _CONVERTERS[conv]
            regex.append("(?P<%s>%s)" % (name, part))
            self.converters[name] = fn
            pos = m.end()
        regex.append(re.escape(pattern[pos:]))
        self.static = not self.converters
        self.regex = re.compile("".join(regex) + r"\Z")

    def match(self, path):
        """Return the converted parameters when path matches, else None."""
        m = self.regex.match(path)
        if m is None:
            return None
        try:
            return {k: self.converters[k](v) for k, v in m.groupdict().items()}
        except ValueError:
            return None

    def allows(self, method):
        """Whether the route answers method (GET routes answer HEAD too)."""
        m = self.methods
        return m is None or method in m or (method == "HEAD" and "GET" in m)

    def __repr__(self):
        return "Route(%r, %s)" % (self.pattern, "*" if self.methods is None else sorted(self.methods))


class Job:
    """One queued job as a job handler sees it: queue, id, attempt (1 on
    the first run) and payload (bytes); text and json decode the payload."""

    __slots__ = ("queue", "id", "attempt", "payload")

    def __init__(self, queue, id, attempt, payload):
        self.queue = queue
        self.id = id
        self.attempt = attempt
        self.payload = payload

    @property
    def text(self):
        """The payload decoded as UTF-8."""
        return self.payload.decode("utf-8", "replace")

    def json(self):
        """The payload parsed as JSON."""
        import json

        return json.loads(self.payload)

    def __repr__(self):
        return "<Job %s/%s attempt %d>" % (self.queue, self.id, self.attempt)


class RetryJob(Exception):
    """Raise in a job handler to ask for a retry with backoff (the server
    dead-letters the job after its maximum attempts). Any other exception
    does the same and also logs its traceback."""


class FailJob(Exception):
    """Raise in a job handler to fail the job permanently (dead-letter it
    now, no more attempts)."""


class App:
    """A wasmcorn application: routes and job handlers.

    Create one at module level in the plugin's entry module::

        app = wasmcorn.App()

        @app.route("/items/<int:id>", methods=["GET"])
        def get_item(request, id):
            return {"id": id}

    Handlers receive the Request and the route parameters as keyword
    arguments, and return a Response or anything make_response accepts.
    An App is built at import time and only read while serving.

    prefix, when given (e.g. "/py-hello"), is where the app is mounted:
    routes are written relative to it, and paths outside it are 404.
    """

    def __init__(self, name=None, prefix=""):
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ValueError("prefix %r must start with '/' and not end with one" % prefix)
        self.name = name
        self.prefix = prefix
        self.routes = []
        self._static = {}
        self.jobs = {}
        self.error_handlers = {}
        self.before = []
        self.after = []

    # --- registration ---------------------------------------------------

    def route(self, pattern, methods=("GET",)):
        """Register the decorated function for pattern and methods.

        Patterns are paths with parameters: <name> (one segment), <int:name>,
        <float:name>, <path:name> (the rest, slashes included); {name} is
        the same as <name>. GET routes also answer HEAD; methods=None
        answers every method.
        """
        if isinstance(methods, str):
            methods = (methods,)

        def deco(fn):
            r = Route(pattern, methods, fn)
            self.routes.append(r)
            if r.static:
                self._static.setdefault(pattern, []).append(r)
            return fn

        return deco

    def get(self, pattern):
        """Shorthand for route(pattern, methods=["GET"])."""
        return self.route(pattern, ("GET",))

    def post(self, pattern):
        """Shorthand for route(pattern, methods=["POST"])."""
        return self.route(pattern, ("POST",))

    def put(self, pattern):
        """Shorthand for route(pattern, methods=["PUT"])."""
        return self.route(pattern, ("PUT",))

    def patch(self, pattern):
        """Shorthand for route(pattern, methods=["PATCH"])."""
        return self.route(pattern, ("PATCH",))

    def delete(self, pattern):
        """Shorthand for route(pattern, methods=["DELETE"])."""
        return self.route(pattern, ("DELETE",))

    def job(self, queue):
        """Register the decorated function as the handler of queue's jobs
        (queued with wasmcorn.queue.submit, or periodic jobs the manifest
        declares). It receives a Job; returning acknowledges the job,
        raising RetryJob or any exception retries it, FailJob dead-letters
        it."""

        def deco(fn):
            if queue in self.jobs:
                raise ValueError("queue %r already has a job handler" % queue)
            self.jobs[queue] = fn
            return fn

        return deco

    def errorhandler(self, status):
        """Register the decorated function(request, error) to build the
        response for HTTPError status (404 and 405 from routing included)."""

        def deco(fn):
            self.error_handlers[status] = fn
            return fn

        return deco

    def before_request(self, fn):
        """Register fn(request), run before each handler; a non-None return
        value is used as the response and the handler is skipped."""
        self.before.append(fn)
        return fn

    def after_request(self, fn):
        """Register fn(request, response) -> response, run after each handler."""
        self.after.append(fn)
        return fn

    # --- dispatch -------------------------------------------------------

    def _find(self, method, path):
        if self.prefix:
            if path == self.prefix:
                path = "/"
            elif path.startswith(self.prefix) and path[len(self.prefix)] == "/":
                path = path[len(self.prefix):]
            else:
                raise HTTPError(404)
        allowed = set()
        for r in self._static.get(path, ()):
            if r.allows(method):
                return r, {}
            allowed |= r.methods
        for r in self.routes:
            if r.static:
                continue
            params = r.match(path)
            if params is None:
                continue
            if r.allows(method):
                return r, params
            allowed |= r.methods
        if allowed:
            if "GET" in allowed:
                allowed.add("HEAD")
            raise HTTPError(405, headers=[("Allow", ", ".join(sorted(allowed)))])
        raise HTTPError(404)

    def dispatch(self, request):
        """Route request and return a Response. HTTPError becomes its
        response (through errorhandler if one is registered); other
        exceptions propagate to the runtime, which logs them and answers 500."""
        try:
            resp = None
            for fn in self.before:
                rv = fn(request)
                if rv is not None:
                    # Short-circuits the handler, not the after_request
                    # functions (as Flask, and as an abort() here does).
                    resp = make_response(rv)
                    break
            if resp is None:
                route, params = self._find(request.method, request.path)
                if params:
                    request._set_route_params(params)
                    resp = make_response(route.handler(request, **params))
                else:
                    resp = make_response(route.handler(request))
        except HTTPError as e:
            h = self.error_handlers.get(e.status)
            resp = make_response(h(request, e)) if h is not None else e.response()
        if self.after:
            for fn in self.after:
                resp = fn(request, resp)
                if not isinstance(resp, Response):
                    raise TypeError("after_request function %r did not return a Response" % fn)
        if request.method == "HEAD":
            # The server sends no body for HEAD, and this length (a GET's).
            if resp.body and "content-length" not in resp.headers:
                resp.headers.set("Content-Length", str(len(resp.body)))
            resp.body = b""
        return resp

    def run_job(self, job):
        """Run job's handler; raises LookupError when its queue has none."""
        fn = self.jobs.get(job.queue)
        if fn is None:
            raise LookupError("no job handler for queue %r (known: %s)"
                              % (job.queue, ", ".join(sorted(self.jobs)) or "none"))
        fn(job)

    def test_client(self):
        """Return a TestClient that calls this app natively (for tests)."""
        from .testing import TestClient

        return TestClient(self)
