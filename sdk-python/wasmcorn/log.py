"""Logging into the server's structured log (host op "log").

    from wasmcorn import log
    log.info("order placed", order=42, total=9.5)

Each call is one slog record on the server, with the plugin's name and the
request id attached by the host, and the keyword arguments as attributes
(None, bool, int, float, str and bytes as they are, anything else as its
str()). The standard logging module is routed here too: the runtime
installs a Handler on the root logger at INFO, so
``logging.getLogger(__name__).warning(...)`` lands in the same log.
"""

import sys

from . import _abi, _host

DEBUG = _abi.LEVEL_DEBUG
INFO = _abi.LEVEL_INFO
WARN = _abi.LEVEL_WARN
ERROR = _abi.LEVEL_ERROR

_PLAIN = (type(None), bool, int, float, str, bytes)


def _attr(v):
    if isinstance(v, _PLAIN):
        if isinstance(v, int) and not isinstance(v, bool) and not -(1 << 63) <= v < (1 << 63):
            return str(v)
        return v
    return str(v)


def log(level, msg, **attrs):
    """Write one record at level (DEBUG, INFO, WARN, ERROR or any slog
    level number) with attrs as key/value attributes. A failure to log is
    swallowed: logging never breaks a request."""
    args = [int(level), str(msg)]
    for k, v in attrs.items():
        args.append(k)
        args.append(_attr(v))
    try:
        _host.call(_abi.OP_LOG, *args)
    except Exception:  # noqa: BLE001 - the log is best effort by design
        pass


def debug(msg, **attrs):
    """Log at DEBUG."""
    log(DEBUG, msg, **attrs)


def info(msg, **attrs):
    """Log at INFO."""
    log(INFO, msg, **attrs)


def warning(msg, **attrs):
    """Log at WARN."""
    log(WARN, msg, **attrs)


warn = warning


def error(msg, **attrs):
    """Log at ERROR."""
    log(ERROR, msg, **attrs)


def _level(levelno):
    if levelno >= 40:  # logging.ERROR
        return ERROR
    if levelno >= 30:  # logging.WARNING
        return WARN
    if levelno >= 20:  # logging.INFO
        return INFO
    return DEBUG


def _handler_class():
    import logging

    class Handler(logging.Handler):
        """A logging.Handler that sends records to the server's log, with
        the logger's name as attribute "logger" and any traceback as
        "traceback"."""

        def emit(self, record):
            try:
                attrs = {"logger": record.name}
                if record.exc_info:
                    attrs["traceback"] = logging.Formatter().formatException(record.exc_info)
                if record.stack_info:
                    attrs["stack"] = record.stack_info
                log(_level(record.levelno), record.getMessage(), **attrs)
            except Exception:  # noqa: BLE001 - as logging.Handler.handleError would
                self.handleError(record)

    return Handler


def __getattr__(name):
    # Handler is built on first use so that importing wasmcorn.log does not
    # import the logging package (and threading) into every instance.
    if name == "Handler":
        cls = _handler_class()
        globals()["Handler"] = cls
        return cls
    raise AttributeError("module 'wasmcorn.log' has no attribute %r" % name)


def install(level=20, force=False):
    """Route the root logger of the logging package to the server's log
    (at INFO by default) unless it already has handlers. The runtime calls
    this after importing the app, when the app has imported logging; an app
    that imports logging only later still has its warnings and errors on
    stderr, which the server logs too. force=True imports logging."""
    if "logging" not in sys.modules and not force:
        return
    import logging

    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(__getattr__("Handler")())
        root.setLevel(level)
