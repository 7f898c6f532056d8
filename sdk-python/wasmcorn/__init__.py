"""wasmcorn: write HTTP handlers and job handlers in Python for the
wasmcorn application server, or run an unchanged WSGI app.

A plugin's entry module (app.py by default) defines one of:

- a wasmcorn.App with routes and job handlers::

      import wasmcorn
      app = wasmcorn.App()

      @app.route("/hello/<name>")
      def hello(request, name):
          return {"hello": name}

- a WSGI application named app or application (Flask, Django...);
- a function handle(request) returning a response.

Host services: wasmcorn.db (PEP 249), wasmcorn.cache, wasmcorn.lock,
wasmcorn.queue, wasmcorn.config and wasmcorn.log.
"""

import importlib as _importlib

from ._app import App, FailJob, Job, RetryJob, Route
from ._host import (
    Conflict,
    DeadlineExceeded,
    Denied,
    HostError,
    HostTimeout,
    InvalidArgument,
    NotFound,
    SQLError,
    TooLarge,
    Unavailable,
    UnknownOp,
)
from ._http import Headers, HTTPError, MultiDict, Request, Response, UploadedFile, abort, dumps, make_response
from ._lock import Lock, LockTimeout

lock = Lock
"""lock(key, ttl=30, wait=0): a distributed lock, usable as a context manager."""

__version__ = "0.1.0"

_SUBMODULES = {"cache", "config", "db", "log", "queue", "wsgi", "testing"}


def __getattr__(name):
    # Submodules load on first use: a plugin that never touches the
    # database does not pay for importing wasmcorn.db (and datetime) in
    # every instance's memory.
    if name in _SUBMODULES:
        return _importlib.import_module("." + name, __name__)
    raise AttributeError("module 'wasmcorn' has no attribute %r" % name)

__all__ = [
    "App", "Route", "Job", "RetryJob", "FailJob",
    "Request", "Response", "Headers", "MultiDict", "UploadedFile", "HTTPError", "abort", "make_response", "dumps",
    "HostError", "NotFound", "Denied", "Unavailable", "InvalidArgument", "HostTimeout", "Conflict",
    "TooLarge", "UnknownOp", "SQLError", "DeadlineExceeded",
    "Lock", "LockTimeout", "lock",
    "cache", "config", "db", "log", "queue", "wsgi",
]
