"""Django's cache framework over the host's cache: BACKEND
"wasmcorn.django.cache.HostCache".

    CACHES = {"default": {"BACKEND": "wasmcorn.django.cache.HostCache"}}

django.core.cache.cache, @cache_page, {% cache %} and the "cache" session
engine then use the server's cache (in memory or Redis, as the server is
configured): one cache for every instance of the plugin, kept across hot
reloads. Keys go through Django's KEY_PREFIX, VERSION and KEY_FUNCTION, then
the host puts them in the plugin's namespace (the manifest's
grants.cache_namespace), so plugins never see each other's keys. TIMEOUT
(default 300 s) is the default expiry; None means no expiry, 0 or less means
the value is not stored.

Values: an int is stored as its decimal text, so that incr and decr are the
host's atomic cache.incr; anything else is pickled, as Django's own backends
do. Only this plugin can write its namespace, so pickles are only ever read
back from the plugin's own code.

Where it differs from Django's built-in backends, because of what the host
offers:
- clear() raises NotImplementedError: the host has no "delete every key of a
  namespace". Change KEY_PREFIX or VERSION to start afresh.
- touch() is a get followed by a set: a set by another request between the
  two is overwritten with the value read.
- incr() and decr() check that the key exists (Django raises ValueError for
  a missing key) and then increment: a key that expires between the two host
  calls is recreated with delta as its value.
- When the cache backend is down, get and get_many miss, set and delete do
  nothing (the server logs it), add, incr and decr raise
  wasmcorn.Unavailable.
"""

import pickle

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache

from .. import _host
from .. import cache as _cache

# Every pickle of protocol 2 or later starts with the PROTO opcode.
_PICKLE = b"\x80"


def _encode(value):
    if type(value) is int:  # not bool: True must come back as True
        return str(value).encode()
    return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)


def _decode(key, raw):
    if raw[:1] == _PICKLE:
        return pickle.loads(raw)
    try:
        return int(raw)
    except ValueError:
        raise ValueError("cache key %r holds %d bytes that wasmcorn.django.cache did not write "
                         "(neither a pickle nor an integer)" % (key, len(raw))) from None


class HostCache(BaseCache):
    """A Django cache backend storing in the host's cache (see the module
    docstring). LOCATION is not used."""

    def __init__(self, location, params):
        super().__init__(params)

    def _key(self, key, version):
        key = self.make_key(key, version=version)
        self.validate_key(key)
        return key

    def _ttl(self, timeout):
        """Seconds for the host (0: no expiry), or None: do not store."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            return 0
        return timeout if timeout > 0 else None

    def _put(self, k, raw, timeout):
        """Store raw at made key k for timeout (see _ttl): a timeout that
        stores nothing deletes what k held."""
        ttl = self._ttl(timeout)
        if ttl is None:
            _cache.delete(k)
        else:
            _cache.set(k, raw, ttl)

    def get(self, key, default=None, version=None):
        k = self._key(key, version)
        raw = _cache.get(k)
        return default if raw is None else _decode(k, raw)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        self._put(self._key(key, version), _encode(value), timeout)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        k = self._key(key, version)
        ttl = self._ttl(timeout)
        if ttl is None:  # stored and expired at once: added if it was absent
            return _cache.get(k) is None
        return _cache.add(k, _encode(value), ttl)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        k = self._key(key, version)
        raw = _cache.get(k)
        if raw is None:
            return False
        self._put(k, raw, timeout)
        return True

    def delete(self, key, version=None):
        return bool(_cache.delete(self._key(key, version)))

    def has_key(self, key, version=None):
        return _cache.get(self._key(key, version)) is not None

    def incr(self, key, delta=1, version=None):
        k = self._key(key, version)
        if _cache.get(k) is None:
            raise ValueError("Key '%s' not found" % key)
        try:
            return _cache.incr(k, delta)
        except _host.InvalidArgument as e:
            raise TypeError("cache key %r does not hold an integer: %s" % (key, e)) from None

    def get_many(self, keys, version=None):
        made = {self._key(key, version): key for key in keys}
        return {made[k]: _decode(k, raw) for k, raw in _cache.get_many(made).items()}

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        for key, value in data.items():
            self.set(key, value, timeout, version)
        return []

    def delete_many(self, keys, version=None):
        for key in keys:
            self.delete(key, version)

    def clear(self):
        raise NotImplementedError(
            "wasmcorn.django.cache: the host cache cannot delete every key of a namespace; "
            "change the cache's KEY_PREFIX or VERSION to start afresh")
