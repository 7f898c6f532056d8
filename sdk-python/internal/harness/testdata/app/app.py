"""The harness's test plugin: one route per behaviour the Go tests check."""

import os
import random

import wasmcorn
from wasmcorn import cache, config

app = wasmcorn.App()


@app.get("/hello")
def hello(request):
    return {"message": "hello"}


@app.get("/work")
def work_route(request):
    # A request with some Python work in it (loops, dicts, JSON), for the
    # deadline-mode measurement.
    rows = [{"id": i, "name": "item-%d" % i, "price": i * 1.5} for i in range(50)]
    rows.sort(key=lambda r: -r["price"])
    return {"total": sum(r["price"] for r in rows), "rows": rows[:10]}


@app.get("/boom")
def boom(request):
    return {"ratio": 1 / int(request.query.get("d", "0"))}


@app.get("/spin")
def spin(request):
    while True:
        pass


@app.get("/spin-c")
def spin_c(request):
    # One C call that never reaches CPython's eval breaker.
    return {"sum": sum(range(10**15))}


@app.get("/swallow")
def swallow(request):
    # A handler that catches everything: only the hard stop ends it.
    while True:
        try:
            while True:
                pass
        except BaseException:
            pass


@app.get("/cache")
def cache_roundtrip(request):
    key = request.query["k"]
    size = int(request.query.get("size", "0"))
    value = request.query.get("v", "").encode() or os.urandom(size // 2).hex().encode()
    cache.set(key, value)
    got = cache.get(key)
    return {"same": got == value, "len": len(got), "missing": cache.get("nope-" + key)}


@app.get("/config")
def conf(request):
    return {"greeting": config.get("greeting"), "missing": config.get("missing", "dflt")}


@app.get("/random")
def rnd(request):
    return {"random": random.random(), "hash": hash("wasmcorn")}


@app.get("/env")
def env(request):
    return {"value": os.environ.get("WASMCORN_TEST")}


@app.route("/echo/<path:rest>", methods=None)
def echo(request, rest):
    return {"method": request.method, "scheme": request.scheme, "host": request.host, "path": request.path,
            "raw_path": request.raw_path.hex(), "query": request.query_string, "remote": request.remote_addr,
            "request_id": request.request_id, "headers": request.headers.items(), "body": request.body.hex()}


@app.get("/header")
def header(request):
    return wasmcorn.Response(b"x", headers={"X-Latin": "caf\u00e9", "X-Wide": "\u8def"})


@app.get("/moved/<path:rest>")
def moved(request, rest):
    return wasmcorn.Response(b"", 302, headers={"Location": request.path + "/"})


@app.get("/values")
def values(request):
    # Host call values through the shim's C codec against wasmcorn._abi,
    # the reference: the test's host echoes its arguments (op "echo"),
    # answers malformed replies (op "bad", by case number) or an error.
    import enum

    from wasmcorn import _abi, _host

    class Color(enum.IntEnum):
        RED = 7

    class Name(str):
        pass

    echo, bad = int(request.query["echo"]), int(request.query["bad"])
    cases = [(), (None,), (True, False), (0, 1, -1, 2**63 - 1, -2**63), (1.5, -0.0, float("inf"), float("nan")),
             ("", "abc", "\u00e9\u20ac\U0001d11e", "a\udcffb"), (b"", b"\x00\xff", bytearray(b"ab"), memoryview(b"cd")),
             (Color.RED, Name("n"), "x" * 40000), (b"y" * 100000, 3)]
    out = []
    for vals in cases:
        fast = _host.call(echo, *vals)
        ref = _host.call_raw(echo, _abi.encode_values(vals))
        out.append({"fast": repr(fast), "ref": repr(ref),
                    "types": [type(v).__name__ for v in fast] == [type(v).__name__ for v in ref]})
    errors = []
    for i in range(int(request.query["bad_cases"])):
        try:
            errors.append("no error: %r" % _host.call(bad, i))
        except Exception as e:  # noqa: BLE001 - the class and message are the result
            errors.append("%s: %s" % (type(e).__name__, e))
    try:
        _host.call(echo, 2**63)
        errors.append("no error")
    except OverflowError as e:
        errors.append("OverflowError: %s" % e)
    return {"c": _host._call_values is not None, "cases": out, "errors": errors}


@app.job("work")
def work(job):
    data = job.json()
    if data.get("fail"):
        raise wasmcorn.FailJob("told to fail")
    cache.set("job:" + job.id, str(data["n"] * 2))
