"""Replay abi/testdata/vectors.json (the vectors the Go host and SDK replay
too) against the pure-Python codec: valid messages decode to their readable
form and encode back to the same bytes; malformed ones fail with the
vector's error class (truncated, trailing or invalid)."""

import json
import math
import os
import struct

import pytest

from conftest import REPO
from wasmcorn import _abi

VECTORS = os.path.join(REPO, "abi", "testdata", "vectors.json")


def load():
    with open(VECTORS, encoding="utf-8") as f:
        return json.load(f)


def readable_bytes(b):
    """A byte string in the vectors' readable form."""
    if isinstance(b, str):
        b = b.encode("utf-8", "surrogateescape")
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return {"hex": b.hex()}


def from_readable_bytes(r):
    if isinstance(r, str):
        return r.encode("utf-8")
    return bytes.fromhex(r["hex"])


def readable_value(v):
    if v is None:
        return {"kind": "null"}
    if isinstance(v, bool):
        return {"kind": "bool", "value": v}
    if isinstance(v, int):
        return {"kind": "int", "value": v}
    if isinstance(v, float):
        out = {"kind": "float", "bits": struct.pack(">d", v).hex()}
        if math.isfinite(v):
            out["value"] = v
        return out
    if isinstance(v, str):
        return {"kind": "string", "value": readable_bytes(v)}
    return {"kind": "bytes", "value": readable_bytes(v)}


def value_from_readable(r):
    k = r["kind"]
    if k == "null":
        return None
    if k in ("int", "bool"):
        return r["value"]
    if k == "float":
        return struct.unpack(">d", bytes.fromhex(r["bits"]))[0]
    b = from_readable_bytes(r["value"])
    return b.decode("utf-8", "surrogateescape") if k == "string" else b


def headers(hs):
    return [[readable_bytes(n), readable_bytes(v)] for n, v in hs]


def decode(kind, b):
    """Decode with the SDK's codec and return the readable form."""
    if kind == "request":
        m = _abi.decode_request(b)
        return {"method": readable_bytes(m.method), "scheme": readable_bytes(m.scheme),
                "host": readable_bytes(m.host), "path": readable_bytes(m.path),
                "raw_query": readable_bytes(m.raw_query), "remote_addr": readable_bytes(m.remote_addr),
                "request_id": readable_bytes(m.request_id), "headers": headers(m.headers),
                "body": readable_bytes(m.body)}
    if kind == "response":
        m = _abi.decode_response(b)
        return {"status": m.status, "headers": headers(m.headers), "body": readable_bytes(m.body)}
    if kind == "job":
        m = _abi.decode_job(b)
        return {"queue": readable_bytes(m.queue), "id": readable_bytes(m.id), "attempt": m.attempt,
                "payload": readable_bytes(m.payload)}
    if kind == "job_result":
        m = _abi.decode_job_result(b)
        return {"status": m.status, "name": ("ok", "retry", "fail")[m.status], "error": readable_bytes(m.error)}
    if kind == "values":
        return [readable_value(v) for v in _abi.decode_values(b)]
    if kind == "reply":
        code, v = _abi.split_reply(0, b)
        if code == _abi.OK:
            out = {"code": 0, "name": "ok"}
            if v:
                out["values"] = [readable_value(x) for x in v]
            return out
        return {"code": code, "name": _abi.code_name(code), "message": readable_bytes(v)}
    raise AssertionError("unknown kind " + kind)


def encode(kind, r):
    """Encode a readable form with the SDK's codec."""
    rb = from_readable_bytes
    if kind == "request":
        return _abi.encode_request(_abi.RequestMsg(
            rb(r["method"]), rb(r["scheme"]), rb(r["host"]), rb(r["path"]), rb(r["raw_query"]),
            rb(r["remote_addr"]), rb(r["request_id"]), [(rb(n), rb(v)) for n, v in r["headers"]], rb(r["body"])))
    if kind == "response":
        return _abi.encode_response(r["status"], [(rb(n), rb(v)) for n, v in r["headers"]], rb(r["body"]))
    if kind == "job":
        return _abi.encode_job(rb(r["queue"]), rb(r["id"]), r["attempt"], rb(r["payload"]))
    if kind == "job_result":
        return _abi.encode_job_result(r["status"], rb(r["error"]))
    if kind == "values":
        return _abi.encode_values([value_from_readable(x) for x in r])
    if kind == "reply":
        if r["code"] == 0:
            return _abi.encode_reply_ok([value_from_readable(x) for x in r.get("values", [])])
        return _abi.encode_reply_error(r["code"], rb(r["message"]))
    raise AssertionError("unknown kind " + kind)


def error_class(e):
    if isinstance(e, _abi.ShortError):
        return "truncated"
    if isinstance(e, _abi.TrailingError):
        return "trailing"
    return "invalid"


def normalize(x):
    # Compare floats by bits (vectors carry NaN payloads and -0.0).
    return json.loads(json.dumps(x))


ALL = load()


def test_vectors_cover_every_kind():
    assert {v["kind"] for v in ALL} == {"request", "response", "job", "job_result", "values", "reply"}
    assert any("error" in v for v in ALL) and any("decoded" in v for v in ALL)


@pytest.mark.parametrize("vec", ALL, ids=[v["name"] for v in ALL])
def test_vector(vec):
    msg = bytes.fromhex(vec["hex"])
    if "error" in vec:
        with pytest.raises(_abi.ABIError) as info:
            decode(vec["kind"], msg)
        assert error_class(info.value) == vec["error"], "%s: %s" % (vec.get("reason"), info.value)
        return
    got = decode(vec["kind"], msg)
    assert normalize(got) == normalize(vec["decoded"])
    assert encode(vec["kind"], vec["decoded"]) == msg


def test_decoders_reject_mutations_cleanly():
    """Decoders raise ABIError and nothing else on mutated and truncated
    vectors (a deterministic stand-in for the Go fuzz targets)."""
    import random

    rng = random.Random(1)
    decoders = {"request": _abi.decode_request, "response": _abi.decode_response, "job": _abi.decode_job,
                "job_result": _abi.decode_job_result, "values": _abi.decode_values,
                "reply": lambda b: _abi.split_reply(0, b)}
    for vec in ALL:
        msg = bytes.fromhex(vec["hex"])
        for _ in range(200):
            b = bytearray(msg)
            op = rng.randrange(3)
            if op == 0 and b:
                b[rng.randrange(len(b))] = rng.randrange(256)
            elif op == 1:
                del b[rng.randrange(len(b) + 1):]
            else:
                b.insert(rng.randrange(len(b) + 1), rng.randrange(256))
            try:
                decoders[vec["kind"]](bytes(b))
            except _abi.ABIError:
                pass
