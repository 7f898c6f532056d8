"""Host calls: the one way the SDK reaches the server.

Inside the guest the transport is the shim's builtin module ``_wasmcorn``
(``call(op, args) -> reply``). Natively (tests, tools) there is none until
``set_transport`` installs one, for example a fake host written in Python.
"""

from . import _abi

try:  # inside the wasm guest
    import _wasmcorn

    _transport = _wasmcorn.call
    DeadlineExceeded = _wasmcorn.DeadlineExceeded
    IN_GUEST = True
except ImportError:  # native Python
    _wasmcorn = None
    _transport = None
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
    if _transport is None:
        raise RuntimeError("wasmcorn: no host (not running inside wasmcorn, and no transport set)")
    reply = _transport(op, args)
    if reply[:1] == b"\x00":
        return _abi.decode_values(reply, 1)
    code, msg = _abi.split_reply(op, reply)
    raise error_for(op, code, msg)


def call(op, *args):
    """Run host operation op with args (None, bool, int, float, str, bytes)
    and return the reply values as a list; raise HostError on failure."""
    return call_raw(op, _abi.encode_values(args))
