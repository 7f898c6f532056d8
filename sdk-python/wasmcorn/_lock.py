"""Distributed locks (host ops lock.*): leases in memory or in Redis.

    from wasmcorn import lock

    with lock("report:42", ttl=10, wait=2):
        build_report(42)

A lock is a lease: it expires after ttl seconds unless extended, so a
crashed holder cannot block others forever. Acquiring waits up to wait
seconds and raises LockTimeout when the lock stays held by someone else.
Keys are namespaced per plugin by the host.
"""

from . import _abi, _host


class LockTimeout(_host.Conflict):
    """The lock stayed held by someone else for the whole wait."""


class Lock:
    """One lock on key. Use it as a context manager, or call acquire and
    release. Not reentrant. The token proving ownership is kept in the
    object; a Lock belongs to the call that acquired it."""

    def __init__(self, key, ttl=30, wait=0):
        self.key = key
        self.ttl = ttl
        self.wait = wait
        self.token = None

    def acquire(self):
        """Take the lock, waiting up to wait seconds; raise LockTimeout."""
        if self.token is not None:
            raise RuntimeError("lock %r is already held by this object" % self.key)
        try:
            self.token = _host.call(_abi.OP_LOCK_ACQUIRE, self.key, _ms(self.ttl), _ms(self.wait))[0]
        except _host.Conflict as e:
            raise LockTimeout(e.op, e.code, e.message) from None
        return self

    def release(self):
        """Release the lock; return False when it had already expired or
        been taken over."""
        if self.token is None:
            return False
        token, self.token = self.token, None
        return _host.call(_abi.OP_LOCK_RELEASE, self.key, token)[0]

    def extend(self, ttl=None):
        """Extend the lease to ttl seconds from now (default: the lock's
        ttl); return False when the lock was lost."""
        if self.token is None:
            return False
        return _host.call(_abi.OP_LOCK_EXTEND, self.key, self.token, _ms(self.ttl if ttl is None else ttl))[0]

    @property
    def held(self):
        """Whether this object holds the lock (as far as it knows)."""
        return self.token is not None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False

    def __repr__(self):
        return "<wasmcorn.lock %r %s>" % (self.key, "held" if self.token else "free")


def _ms(seconds):
    ms = int(round(float(seconds) * 1000))
    if ms < 0:
        raise ValueError("durations must be >= 0 seconds, got %r" % seconds)
    return ms
