"""The wasmcorn ABI, version 1, in pure Python (abi/ABI.md is normative).

This mirrors abi/abi.go and abi/codec.go exactly: the same constants, the
same encodings, and decoders that reject the same inputs (a field running
past the end, bytes left over, a bool byte other than 0 or 1, an unknown
value kind, a response status outside 100..999, an unknown job status).
It runs inside the guest and natively (the SDK's tests replay
abi/testdata/vectors.json with it).

Byte fields of decoded messages are ``bytes``. String values decode to
``str`` (UTF-8; invalid bytes are kept as surrogate escapes, so encoding
them back gives the same bytes), bytes values to ``bytes``.
"""

import struct
from collections import namedtuple

VERSION = 1

# Guest exports and host imports (names only; the shim implements them).
EXPORT_VERSION = "wasmcorn_abi_version"
EXPORT_ALLOC = "wasmcorn_alloc"
EXPORT_HANDLE = "wasmcorn_handle"
EXPORT_JOB = "wasmcorn_job"
IMPORT_MODULE = "wasmcorn"

# Host operations.
OP_LOG = 0x01
OP_CONFIG_GET = 0x02
OP_DB_QUERY = 0x10
OP_DB_EXEC = 0x11
OP_DB_BEGIN = 0x12
OP_DB_COMMIT = 0x13
OP_DB_ROLLBACK = 0x14
OP_DB_PREPARE = 0x15
OP_DB_STMT_QUERY = 0x16
OP_DB_STMT_EXEC = 0x17
OP_DB_STMT_CLOSE = 0x18
OP_CACHE_GET = 0x20
OP_CACHE_SET = 0x21
OP_CACHE_DELETE = 0x22
OP_CACHE_GET_MANY = 0x23
OP_CACHE_INCR = 0x24
OP_CACHE_ADD = 0x25
OP_LOCK_ACQUIRE = 0x30
OP_LOCK_RELEASE = 0x31
OP_LOCK_EXTEND = 0x32
OP_QUEUE_SUBMIT = 0x40

OP_NAMES = {
    OP_LOG: "log", OP_CONFIG_GET: "config.get",
    OP_DB_QUERY: "db.query", OP_DB_EXEC: "db.exec", OP_DB_BEGIN: "db.begin",
    OP_DB_COMMIT: "db.commit", OP_DB_ROLLBACK: "db.rollback", OP_DB_PREPARE: "db.prepare",
    OP_DB_STMT_QUERY: "db.stmt_query", OP_DB_STMT_EXEC: "db.stmt_exec",
    OP_DB_STMT_CLOSE: "db.stmt_close",
    OP_CACHE_GET: "cache.get", OP_CACHE_SET: "cache.set", OP_CACHE_DELETE: "cache.delete",
    OP_CACHE_GET_MANY: "cache.get_many", OP_CACHE_INCR: "cache.incr", OP_CACHE_ADD: "cache.add",
    OP_LOCK_ACQUIRE: "lock.acquire", OP_LOCK_RELEASE: "lock.release",
    OP_LOCK_EXTEND: "lock.extend", OP_QUEUE_SUBMIT: "queue.submit",
}


def op_name(op):
    """Return the op's name as written in ABI.md, e.g. "cache.get"."""
    return OP_NAMES.get(op, "op(0x%x)" % op)


# Reply codes.
OK = 0
ERR_NOT_FOUND = 1
ERR_DENIED = 2
ERR_UNAVAILABLE = 3
ERR_INVALID = 4
ERR_TIMEOUT = 5
ERR_INTERNAL = 6
ERR_CONFLICT = 7
ERR_TOO_LARGE = 8
ERR_UNKNOWN_OP = 9
ERR_SQL = 10

CODE_NAMES = ("ok", "not_found", "denied", "unavailable", "invalid", "timeout",
              "internal", "conflict", "too_large", "unknown_op", "sql")


def code_name(code):
    """Return the reply code's name, e.g. "not_found"."""
    return CODE_NAMES[code] if 0 <= code < len(CODE_NAMES) else "code(%d)" % code


# Log levels (log/slog's numbers).
LEVEL_DEBUG = -4
LEVEL_INFO = 0
LEVEL_WARN = 4
LEVEL_ERROR = 8

# Job outcomes.
JOB_OK = 0
JOB_RETRY = 1
JOB_FAIL = 2

# Value kinds.
KIND_NULL = 0
KIND_INT = 1
KIND_FLOAT = 2
KIND_STRING = 3
KIND_BYTES = 4
KIND_BOOL = 5

MAX_HEADERS = 1 << 16

_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")
_F64 = struct.Struct("<d")
_u32 = _U32.unpack_from
_i64 = _I64.unpack_from
_f64 = _F64.unpack_from
_pack_u32 = _U32.pack


class ABIError(ValueError):
    """A message does not follow the ABI encoding."""


class ShortError(ABIError):
    """A message ends before one of its fields does (abi.ErrShort)."""


class TrailingError(ABIError):
    """Bytes remain after the last field of a message (abi.ErrTrailing)."""


RequestMsg = namedtuple("RequestMsg", "method scheme host path raw_query remote_addr request_id headers body")
RequestMsg.__doc__ = "A decoded Request: byte-string fields, headers a list of (name, value) bytes pairs."
ResponseMsg = namedtuple("ResponseMsg", "status headers body")
ResponseMsg.__doc__ = "A decoded Response."
JobMsg = namedtuple("JobMsg", "queue id attempt payload")
JobMsg.__doc__ = "A decoded Job."
JobResultMsg = namedtuple("JobResultMsg", "status error")
JobResultMsg.__doc__ = "A decoded JobResult."


class _Reader:
    __slots__ = ("b", "off")

    def __init__(self, b):
        self.b = b
        self.off = 0

    def u32(self, field):
        off = self.off
        if len(self.b) - off < 4:
            raise ShortError("abi: message truncated: reading %s at offset %d of %d" % (field, off, len(self.b)))
        self.off = off + 4
        return _u32(self.b, off)[0]

    def bytes(self, field):
        n = self.u32(field)
        off = self.off
        if n > len(self.b) - off:
            self.off = off - 4
            raise ShortError("abi: message truncated: reading %s at offset %d of %d" % (field, off - 4, len(self.b)))
        self.off = off + n
        return bytes(self.b[off:off + n])

    def headers(self):
        n = self.u32("header count")
        remaining = len(self.b) - self.off
        if n > MAX_HEADERS or n * 8 > remaining:
            raise ShortError("abi: message truncated: header count %d does not fit in %d remaining bytes"
                             % (n, remaining))
        rd = self.bytes
        return [(rd("header name"), rd("header value")) for _ in range(n)]

    def done(self, what):
        if self.off != len(self.b):
            raise TrailingError("decode %s: abi: trailing bytes after message (%d bytes)"
                                % (what, len(self.b) - self.off))


def _decode(what, fn, b):
    r = _Reader(b)
    try:
        v = fn(r)
    except ShortError as e:
        raise ShortError("decode %s: %s" % (what, e)) from None
    r.done(what)
    return v


def _str_field(s, latin1=False):
    """Bytes of a field given as str or bytes. HTTP-ish text (method, host,
    query, header names and values) is Latin-1, as the decoders read it,
    falling back to UTF-8 for text Latin-1 cannot hold; paths, bodies and
    other text are UTF-8."""
    if isinstance(s, str):
        if latin1:
            try:
                return s.encode("latin-1")
            except UnicodeEncodeError:
                pass
        return s.encode("utf-8", "surrogateescape")
    return bytes(s)


def _append_bytes(parts, b, latin1=False):
    b = _str_field(b, latin1)
    parts.append(_pack_u32(len(b)))
    parts.append(b)


def _append_headers(parts, headers):
    parts.append(_pack_u32(len(headers)))
    for name, value in headers:
        _append_bytes(parts, name, True)
        _append_bytes(parts, value, True)


def encode_request(m):
    """Encode a RequestMsg (fields may be str or bytes) to bytes."""
    parts = []
    for i, f in enumerate(m[:7]):
        _append_bytes(parts, f, i != 3)  # the path (field 3) is UTF-8
    _append_headers(parts, m.headers)
    _append_bytes(parts, m.body)
    return b"".join(parts)


def _read_request(r):
    rd = r.bytes
    method = rd("method")
    scheme = rd("scheme")
    host = rd("host")
    path = rd("path")
    raw_query = rd("raw query")
    remote_addr = rd("remote address")
    request_id = rd("request id")
    headers = r.headers()
    body = rd("body")
    return RequestMsg(method, scheme, host, path, raw_query, remote_addr, request_id, headers, body)


def decode_request(b):
    """Decode an encoded Request into a RequestMsg; raises ABIError."""
    return _decode("request", _read_request, b)


def encode_response(status, headers, body):
    """Encode a Response. headers is a sequence of (name, value), str or bytes."""
    parts = [_pack_u32(status)]
    _append_headers(parts, headers)
    _append_bytes(parts, body)
    return b"".join(parts)


def _read_response(r):
    return ResponseMsg(r.u32("status"), r.headers(), r.bytes("body"))


def decode_response(b):
    """Decode an encoded Response; a status outside 100..999 is an ABIError."""
    m = _decode("response", _read_response, b)
    if not 100 <= m.status <= 999:
        raise ABIError("decode response: status %d outside 100..999" % m.status)
    return m


def encode_job(queue, id, attempt, payload):
    """Encode a Job."""
    parts = []
    _append_bytes(parts, queue)
    _append_bytes(parts, id)
    parts.append(_pack_u32(attempt))
    _append_bytes(parts, payload)
    return b"".join(parts)


def _read_job(r):
    return JobMsg(r.bytes("queue"), r.bytes("id"), r.u32("attempt"), r.bytes("payload"))


def decode_job(b):
    """Decode an encoded Job into a JobMsg."""
    return _decode("job", _read_job, b)


def encode_job_result(status, error=b""):
    """Encode a JobResult."""
    parts = [_pack_u32(status)]
    _append_bytes(parts, error)
    return b"".join(parts)


def _read_job_result(r):
    return JobResultMsg(r.u32("status"), r.bytes("error"))


def decode_job_result(b):
    """Decode an encoded JobResult; an unknown status is an ABIError."""
    m = _decode("job result", _read_job_result, b)
    if m.status > JOB_FAIL:
        raise ABIError("decode job result: unknown status %d" % m.status)
    return m


# --- values -------------------------------------------------------------

_KIND_INT_B = bytes([KIND_INT])
_KIND_FLOAT_B = bytes([KIND_FLOAT])
_KIND_STRING_B = bytes([KIND_STRING])
_KIND_BYTES_B = bytes([KIND_BYTES])
_NULL_B = bytes([KIND_NULL])
_TRUE_B = bytes([KIND_BOOL, 1])
_FALSE_B = bytes([KIND_BOOL, 0])
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1


def _append_value(parts, v):
    if v is None:
        parts.append(_NULL_B)
    elif v is True:
        parts.append(_TRUE_B)
    elif v is False:
        parts.append(_FALSE_B)
    elif isinstance(v, int):
        if not _I64_MIN <= v <= _I64_MAX:
            raise OverflowError("int %d does not fit in the ABI's i64" % v)
        parts.append(_KIND_INT_B)
        parts.append(_I64.pack(v))
    elif isinstance(v, float):
        parts.append(_KIND_FLOAT_B)
        parts.append(_F64.pack(v))
    elif isinstance(v, str):
        b = v.encode("utf-8", "surrogateescape")
        parts.append(_KIND_STRING_B)
        parts.append(_pack_u32(len(b)))
        parts.append(b)
    elif isinstance(v, (bytes, bytearray, memoryview)):
        b = bytes(v)
        parts.append(_KIND_BYTES_B)
        parts.append(_pack_u32(len(b)))
        parts.append(b)
    else:
        raise TypeError("cannot encode %s as an ABI value (use None, bool, int, float, str or bytes)"
                        % type(v).__name__)


def encode_values(values):
    """Encode a sequence of Python values: None, bool, int (i64), float, str, bytes."""
    parts = []
    for v in values:
        _append_value(parts, v)
    return b"".join(parts)


def decode_values(b, off=0):
    """Decode a value sequence (from offset off) into a list of Python values."""
    out = []
    n = len(b)
    while off < n:
        k = b[off]
        if k == KIND_NULL:
            out.append(None)
            off += 1
        elif k == KIND_INT or k == KIND_FLOAT:
            if n - off - 1 < 8:
                raise ShortError("abi: message truncated: %s value at offset %d" % (_kind_name(k), off))
            out.append((_i64 if k == KIND_INT else _f64)(b, off + 1)[0])
            off += 9
        elif k == KIND_STRING or k == KIND_BYTES:
            if n - off - 1 < 4:
                raise ShortError("abi: message truncated: %s length at offset %d" % (_kind_name(k), off))
            ln = _u32(b, off + 1)[0]
            if ln > n - off - 5:
                raise ShortError("abi: message truncated: %s of %d bytes at offset %d, %d remain"
                                 % (_kind_name(k), ln, off, n - off - 5))
            raw = bytes(b[off + 5:off + 5 + ln])
            out.append(raw.decode("utf-8", "surrogateescape") if k == KIND_STRING else raw)
            off += 5 + ln
        elif k == KIND_BOOL:
            if n - off - 1 < 1:
                raise ShortError("abi: message truncated: bool at offset %d" % off)
            v = b[off + 1]
            if v > 1:
                raise ABIError("abi: bool byte %d at offset %d is not 0 or 1" % (v, off))
            out.append(v == 1)
            off += 2
        else:
            raise ABIError("abi: unknown value kind %d at offset %d" % (k, off))
    return out


def _kind_name(k):
    return ("null", "int", "float", "string", "bytes", "bool")[k] if 0 <= k <= 5 else "kind(%d)" % k


# --- replies ------------------------------------------------------------


class ReplyError(Exception):
    """A non-OK host-call reply (abi.ReplyError): op, code and message."""

    def __init__(self, op, code, message):
        super().__init__("wasmcorn %s: %s: %s" % (op_name(op), code_name(code), message))
        self.op = op
        self.code = code
        self.message = message


def encode_reply_ok(values=()):
    """Encode an OK reply carrying values."""
    return bytes([OK]) + encode_values(values)


def encode_reply_error(code, message):
    """Encode an error reply; OK is turned into internal, as in Go."""
    if code == OK:
        code = ERR_INTERNAL
    parts = [bytes([code])]
    _append_bytes(parts, message)
    return b"".join(parts)


def split_reply(op, b):
    """Split a reply into (code, values or message) without raising for
    error codes: (OK, [values...]) or (code, message str)."""
    if len(b) == 0:
        raise ShortError("decode %s reply: abi: message truncated: empty" % op_name(op))
    code = b[0]
    if code == OK:
        return OK, decode_values(b, 1)
    r = _Reader(memoryview(b)[1:])
    try:
        msg = r.bytes("error message")
    except ShortError as e:
        raise ShortError("decode %s reply: %s" % (op_name(op), e)) from None
    r.done(op_name(op) + " reply")
    return code, msg.decode("utf-8", "surrogateescape")


def decode_reply(op, b):
    """Return the values of an OK reply; raise ReplyError for any other code."""
    code, v = split_reply(op, b)
    if code != OK:
        raise ReplyError(op, code, v)
    return v
