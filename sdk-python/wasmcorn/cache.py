"""The shared cache (host ops cache.*): in memory or Redis, per the server.

    from wasmcorn import cache
    page = cache.get("home")
    if page is None:
        page = render()
        cache.set("home", page, ttl=30)

Keys are str; the host prefixes them with the plugin's namespace, so two
plugins never see each other's keys. Values are bytes (str is stored as
UTF-8; get_str and get_json decode). TTLs are in seconds (float allowed;
0 or None means no expiry).

When the cache backend is down, get and get_many report misses and set and
delete do nothing (the server logs it); incr and add raise Unavailable.
"""

import json as _json

from . import _abi, _host


def _ms(ttl):
    if ttl is None:
        return 0
    ttl = float(ttl)
    if ttl < 0:
        raise ValueError("ttl must be >= 0 seconds, got %r" % ttl)
    # 0 means no expiry: a positive TTL under half a millisecond is 1 ms.
    return max(int(round(ttl * 1000)), 1) if ttl > 0 else 0


def _value(v):
    if isinstance(v, str):
        return v.encode("utf-8")
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    raise TypeError("cache values are bytes or str, not %s (use set_json for objects)" % type(v).__name__)


def get(key, default=None):
    """Return the bytes stored at key, or default on a miss."""
    v = _host.call_or(_abi.OP_CACHE_GET, None, key)
    return default if v is None else v[0]


def get_str(key, default=None):
    """Return the value at key decoded as UTF-8, or default on a miss."""
    v = get(key)
    return default if v is None else v.decode("utf-8", "replace")


def get_json(key, default=None):
    """Return the value at key parsed as JSON, or default on a miss."""
    v = get(key)
    return default if v is None else _json.loads(v)


def set(key, value, ttl=0):  # noqa: A001 - cache.set is the natural name
    """Store value (bytes or str) at key for ttl seconds (0: no expiry)."""
    _host.call(_abi.OP_CACHE_SET, key, _value(value), _ms(ttl))


def set_json(key, obj, ttl=0):
    """Store obj as JSON at key."""
    set(key, _json.dumps(obj, separators=(",", ":")), ttl)


def delete(key):
    """Delete key; return whether it existed."""
    return _host.call(_abi.OP_CACHE_DELETE, key)[0]


def get_many(keys):
    """Return a dict of key -> bytes for the keys that hit (misses are left out)."""
    keys = list(keys)
    if not keys:
        return {}
    values = _host.call(_abi.OP_CACHE_GET_MANY, *keys)
    if len(values) != len(keys):
        raise _host.HostError(_abi.OP_CACHE_GET_MANY, _abi.ERR_INTERNAL,
                              "%d values for %d keys" % (len(values), len(keys)))
    return {k: v for k, v in zip(keys, values) if v is not None}


def incr(key, delta=1, ttl=0):
    """Add delta to the integer at key (missing counts as 0) and return the
    new value; ttl applies when the key is created."""
    return _host.call(_abi.OP_CACHE_INCR, key, int(delta), _ms(ttl))[0]


def add(key, value, ttl=0):
    """Store value at key only if key is absent; return whether it was stored."""
    return _host.call(_abi.OP_CACHE_ADD, key, _value(value), _ms(ttl))[0]


def cached(key, ttl=60):
    """Decorator for a function of no arguments returning bytes or str:
    return the cached value when present, else call it and cache the result."""

    def deco(fn):
        def wrapper():
            v = get(key)
            if v is not None:
                return v
            v = _value(fn())
            set(key, v, ttl)
            return v

        wrapper.__name__ = getattr(fn, "__name__", "cached")
        wrapper.__doc__ = fn.__doc__
        return wrapper

    return deco
