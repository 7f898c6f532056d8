"""The Django cache backend (wasmcorn.django.cache.HostCache) against the
fake host: Django's cache API, expiry, integers through the host's atomic
incr, the cache session engine, and an unavailable cache."""

import pytest

django = pytest.importorskip("django")

from conftest import configure_django  # noqa: E402
from wasmcorn import Unavailable  # noqa: E402
from wasmcorn.testing import FakeHost  # noqa: E402


@pytest.fixture
def env(clock):
    configure_django()
    from django.core.cache import caches

    with FakeHost(clock=clock) as host:
        c = caches["default"]
        yield c, host, clock


def test_values_round_trip(env):
    c, host, _ = env
    for key, value in [("s", "text"), ("d", {"a": [1, 2.5, None]}), ("i", 42), ("neg", -7), ("b", True),
                       ("f", 1.5), ("bytes", b"\x80raw"), ("none", None)]:
        c.set(key, value)
        got = c.get(key, "missing")
        assert got == value and type(got) is type(value), key
    assert c.get("absent") is None and c.get("absent", 5) == 5
    # Integers are decimal text in the host's cache; the key carries
    # Django's prefix and version.
    assert host.cache["t:1:i"][0] == b"42"


def test_timeouts(env):
    c, host, clock = env
    c.set("default", 1)  # TIMEOUT's default: 300 s
    c.set("short", 1, timeout=10)
    c.set("forever", 1, timeout=None)
    assert host.cache["t:1:forever"][1] is None
    clock.t += 11
    assert c.get("short") is None and c.get("default") == 1
    clock.t += 300
    assert c.get("default") is None and c.get("forever") == 1
    c.set("forever", 2, timeout=0)  # 0: not stored, and the old value is gone
    assert c.get("forever") is None
    assert c.add("zero", 1, timeout=0) is True and not c.has_key("zero")


def test_add_touch_delete_has_key(env):
    c, _, clock = env
    assert c.add("k", "first") is True
    assert c.add("k", "second") is False
    assert c.get("k") == "first" and c.has_key("k")
    assert c.touch("k", timeout=1000) is True and c.touch("nope") is False
    clock.t += 500  # past the default 300 s, inside the touched 1000 s
    assert c.get("k") == "first"
    assert c.delete("k") is True and c.delete("k") is False
    assert not c.has_key("k")


def test_incr_decr(env):
    c, _, _ = env
    c.set("n", 10)
    assert c.incr("n") == 11 and c.incr("n", 5) == 16 and c.decr("n", 20) == -4
    assert c.get("n") == -4
    with pytest.raises(ValueError, match="not found"):
        c.incr("missing")
    c.set("text", "ten")
    with pytest.raises(TypeError, match="does not hold an integer"):
        c.incr("text")


def test_many_versions_and_get_or_set(env):
    c, _, _ = env
    assert c.set_many({"a": 1, "b": [2]}) == []
    assert c.get_many(["a", "b", "c"]) == {"a": 1, "b": [2]}
    c.delete_many(["a", "b"])
    assert c.get_many(["a", "b"]) == {}
    c.set("v", "one", version=1)
    c.set("v", "two", version=2)
    assert c.get("v", version=1) == "one" and c.get("v", version=2) == "two"
    assert c.get_or_set("g", lambda: "made") == "made" and c.get_or_set("g", "other") == "made"


def test_clear_is_refused(env):
    c, _, _ = env
    with pytest.raises(NotImplementedError, match="KEY_PREFIX or VERSION"):
        c.clear()


def test_cache_session_engine(env):
    from django.contrib.sessions.backends.cache import SessionStore

    s = SessionStore()
    s["user"] = 42
    s.save()
    again = SessionStore(session_key=s.session_key)
    assert again["user"] == 42
    again.flush()
    assert SessionStore(session_key=s.session_key).get("user") is None


def test_cache_down(env):
    c, host, _ = env
    c.set("k", 1)
    host.down = True
    assert c.get("k", "miss") == "miss" and c.get_many(["k"]) == {}
    c.set("k", 2)  # nothing stored, no error
    with pytest.raises(Unavailable):
        c.add("other", 1)
    host.down = False
    assert c.get("k") == 1
