"""Host calls: the one way the SDK reaches the server.

Inside the guest the transport is the shim's builtin module ``_wasmcorn``
(``call(op, args) -> reply``). Natively (tests, tools) there is none until
``set_transport`` installs one, for example a fake host written in Python.
"""

from . import _abi

try:  # inside the wasm guest
    import _wasmcorn

    _transport = _wasmcorn.call
    # The shim's C codec for argument and reply values (None in a runtime
    # built before it existed).
    _call_values = getattr(_wasmcorn, "call_values", None)
    DeadlineExceeded = _wasmcorn.DeadlineExceeded
    IN_GUEST = True
except ImportError:  # native Python
    _wasmcorn = None
    _transport = None
    _call_values = None
    IN_GUEST = False

    class DeadlineExceeded(BaseException):
        """Raised inside a handler when its request deadline has passed."""


class HostError(Exception):
    """A host call failed. op is the op number, code the ABI reply code,
    message the host's explanation. Subclasses name the common codes."""

    code = _abi.ERR_INTERNAL

    def __init__(self, op, code, message):
        super().__init__("%s: %s: %s" % (_abi.op_name(op), _abi.code_name(code), message))
        self.op = op
        self.code = code
        self.message = message


class NotFound(HostError):
    """The key, row or config entry does not exist."""


class Denied(HostError):
    """The plugin's manifest does not grant this (a database, a queue...)."""


class Unavailable(HostError):
    """The backend is down or overloaded; retrying later may work."""


class InvalidArgument(HostError):
    """The host rejected the call's arguments."""


class HostTimeout(HostError, TimeoutError):
    """The operation or the request deadline ran out."""


class Conflict(HostError):
    """A lock is held by someone else, or a token does not match."""


class TooLarge(HostError):
    """A value or reply is over the host's limit."""


class UnknownOp(HostError):
    """The host does not implement this operation (an older server)."""


class SQLError(HostError):
    """The database rejected the statement."""


_ERRORS = {
    _abi.ERR_NOT_FOUND: NotFound,
    _abi.ERR_DENIED: Denied,
    _abi.ERR_UNAVAILABLE: Unavailable,
    _abi.ERR_INVALID: InvalidArgument,
    _abi.ERR_TIMEOUT: HostTimeout,
    _abi.ERR_CONFLICT: Conflict,
    _abi.ERR_TOO_LARGE: TooLarge,
    _abi.ERR_UNKNOWN_OP: UnknownOp,
    _abi.ERR_SQL: SQLError,
}


def error_for(op, code, message):
    """Return the HostError subclass instance for a reply code. Unknown
    codes are treated as internal, as ABI.md requires."""
    return _ERRORS.get(code, HostError)(op, code, message)


def set_transport(fn):
    """Install fn(op: int, args: bytes) -> bytes as the host transport and
    return the previous one. Only for native use (tests, tools): inside the
    guest the shim's transport is fixed."""
    global _transport
    if IN_GUEST:
        raise RuntimeError("wasmcorn: the host transport is fixed inside the guest")
    prev, _transport = _transport, fn
    return prev


def call_raw(op, args):
    """Send encoded args, return the reply's values; raise HostError."""
    return _reply_values(op, _roundtrip(op, args))


def _roundtrip(op, payload):
    if _transport is None:
        raise RuntimeError("wasmcorn: no host (not running inside wasmcorn, and no transport set)")
    return _transport(op, payload)


def _send(op, args):
    # The reply to op: in the guest the shim encodes the common cases and
    # decodes an OK reply in C (call_values in sdk-python/shim/shim.c; the
    # same encoding), returning the values as a list; otherwise, and for
    # error replies, the reply's bytes.
    if _call_values is not None:
        r = _call_values(op, args)
        if r is not None:
            return r
    return _roundtrip(op, _abi.encode_values(args))


def _reply_values(op, reply):
    if reply[:1] == b"\x00":
        return _abi.decode_values(reply, 1)
    code, msg = _abi.split_reply(op, reply)
    raise error_for(op, code, msg)


def call(op, *args):
    """Run host operation op with args (None, bool, int, float, str, bytes)
    and return the reply values as a list; raise HostError on failure."""
    r = _send(op, args)
    return r if r.__class__ is list else _reply_values(op, r)


def call_or(op, missing, *args):
    """Like call, but a NOT_FOUND reply returns missing instead of raising
    (a cache miss is common, and an exception costs)."""
    r = _send(op, args)
    if r.__class__ is list:
        return r
    if r[:1] == _NOT_FOUND_B:
        return missing
    return _reply_values(op, r)


_NOT_FOUND_B = bytes([_abi.ERR_NOT_FOUND])
