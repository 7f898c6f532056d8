"""cache, lock, queue, config and log against the fake host."""

import logging

import pytest

import wasmcorn
from wasmcorn import _abi, cache, config, log, queue


@pytest.fixture
def host(clock):
    with wasmcorn.testing.FakeHost(queues=("emails",), config={"greeting": "hej"}, clock=clock) as h:
        yield h


import wasmcorn.testing  # noqa: E402


def test_cache_roundtrip_and_ttl(host, clock):
    assert cache.get("k") is None
    assert cache.get("k", b"d") == b"d"
    cache.set("k", "vålue", ttl=1.5)
    assert cache.get("k") == "vålue".encode()
    assert cache.get_str("k") == "vålue"
    assert host.calls[-1][1] == ["k"]
    set_args = [v for op, v in host.calls if op == _abi.OP_CACHE_SET][0]
    assert set_args == ["k", "vålue".encode(), 1500]
    clock.t += 2
    assert cache.get("k") is None
    cache.set_json("j", {"a": [1, 2]})
    assert cache.get_json("j") == {"a": [1, 2]}
    assert cache.delete("j") is True and cache.delete("j") is False
    with pytest.raises(TypeError):
        cache.set("x", 5)
    with pytest.raises(ValueError):
        cache.set("x", b"", ttl=-1)
    # A tiny positive TTL still expires (0 would mean never).
    cache.set("tiny", b"v", ttl=0.0004)
    assert [v for op, v in host.calls if op == _abi.OP_CACHE_SET][-1] == ["tiny", b"v", 1]
    clock.t += 1
    assert cache.get("tiny") is None


def test_cache_many_incr_add(host):
    cache.set("a", b"1")
    cache.set("c", b"3")
    assert cache.get_many(["a", "b", "c"]) == {"a": b"1", "c": b"3"}
    assert cache.get_many([]) == {}
    assert cache.incr("n") == 1 and cache.incr("n", 5) == 6
    assert cache.add("once", b"x") is True and cache.add("once", b"y") is False
    assert cache.get("once") == b"x"


def test_cache_degrades_when_down(host):
    host.down = True
    cache.set("k", b"v")
    assert cache.get("k") is None
    assert cache.get_many(["k"]) == {}
    with pytest.raises(wasmcorn.Unavailable):
        cache.incr("n")


def test_cached_decorator(host):
    calls = []

    @cache.cached("page", ttl=10)
    def page():
        calls.append(1)
        return "<p>hi</p>"

    assert page() == b"<p>hi</p>" and page() == b"<p>hi</p>"
    assert len(calls) == 1


def test_lock(host, clock):
    with wasmcorn.lock("job", ttl=5) as lk:
        assert lk.held
        with pytest.raises(wasmcorn.LockTimeout):
            wasmcorn.lock("job").acquire()
        assert lk.extend(10) is True
    assert not lk.held and "job" not in host.locks
    other = wasmcorn.lock("job", ttl=1).acquire()
    clock.t += 2  # the lease expired
    assert other.release() is False
    host.down = True
    with pytest.raises(wasmcorn.Unavailable):
        wasmcorn.lock("x").acquire()


def test_queue(host):
    job_id = queue.submit("emails", {"to": "a@example.com"}, delay=2)
    assert host.jobs == [("emails", job_id, b'{"to":"a@example.com"}', 2000)]
    queue.submit("emails", "text")
    assert host.jobs[-1][2] == b"text"
    with pytest.raises(wasmcorn.Denied):
        queue.submit("other", b"")


def test_config(host):
    assert config.get("greeting") == "hej"
    assert config.get("missing", "dflt") == "dflt"


def test_log_and_logging_bridge(host):
    log.info("started", port=8080, ratio=0.5, ok=True, nothing=None, obj=[1, 2], big=1 << 70)
    assert host.logs[-1] == (log.INFO, "started", {"port": 8080, "ratio": 0.5, "ok": True, "nothing": None,
                                                   "obj": "[1, 2]", "big": str(1 << 70)})
    logger = logging.getLogger("test.bridge")
    logger.propagate = False
    logger.addHandler(log.Handler())
    try:
        try:
            raise ValueError("bad")
        except ValueError:
            logger.exception("failed %s", "here")
    finally:
        logger.handlers.clear()
    level, msg, attrs = host.logs[-1]
    assert (level, msg, attrs["logger"]) == (log.ERROR, "failed here", "test.bridge")
    assert "ValueError: bad" in attrs["traceback"]


def test_log_never_raises_without_host():
    prev = wasmcorn._host.set_transport(None)
    try:
        log.error("nobody listens")
    finally:
        wasmcorn._host.set_transport(prev)


def test_host_errors(host):
    with pytest.raises(wasmcorn.UnknownOp):
        wasmcorn._host.call(0x7F)
    err = wasmcorn._host.error_for(1, 200, "future")
    assert type(err) is wasmcorn.HostError and err.code == 200


def test_call_or(host):
    # A miss answers the default without an exception; other errors still raise.
    assert wasmcorn._host.call_or(_abi.OP_CACHE_GET, "missing", "nope") == "missing"
    cache.set("there", b"v")
    assert wasmcorn._host.call_or(_abi.OP_CACHE_GET, "missing", "there") == [b"v"]
    with pytest.raises(wasmcorn.UnknownOp):
        wasmcorn._host.call_or(0x7F, "missing")
    prev = wasmcorn._host.set_transport(None)
    try:
        with pytest.raises(RuntimeError, match="no host"):
            wasmcorn._host.call_or(_abi.OP_CACHE_GET, None, "k")
    finally:
        wasmcorn._host.set_transport(prev)
