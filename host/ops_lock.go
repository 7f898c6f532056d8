package host

import (
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/internal/metrics"
)

func init() {
	registerOp(abi.OpLockAcquire, opLockAcquire)
	registerOp(abi.OpLockRelease, opLockRelease)
	registerOp(abi.OpLockExtend, opLockExtend)
}

// MaxLockTTL bounds a lease's ttl_ms: a lock is a lease, and a lease that
// outlives a day is a lost lock rather than a lock.
const MaxLockTTL = 24 * time.Hour

var kvLockWait [kvNOutcomes]interface{ Observe(float64) }

func init() {
	for i, o := range kvOutcomeNames {
		kvLockWait[i] = metrics.LockWait.WithLabelValues(o)
	}
}

// lockTTL reads a lock lease in milliseconds, 1..MaxLockTTL.
func (a *kvArgs) lockTTL() time.Duration { return a.millis("ttl_ms", 1, MaxLockTTL.Milliseconds()) }

// opLockAcquire: (string key, int ttl_ms, int wait_ms) -> (string token) |
// conflict. The wait never runs past the call's deadline: when the deadline
// is nearer than wait_ms, the op gives up at the deadline with conflict (or
// timeout if the deadline itself interrupted the backend). A down backend
// is abi.ErrUnavailable: a lock cannot be pretended.
func opLockAcquire(c *Call, args *abi.Values, reply []byte) []byte {
	const op = abi.OpLockAcquire
	locker := c.Services.kvLocker()
	key, buf, a, ok := kvStart(c, op, args, reply, locker != nil, "lock")
	if !ok {
		return buf
	}
	ttl := a.lockTTL()
	wait := a.ttl("wait_ms")
	if err := a.end(); err != nil {
		return kvFail(op, buf, abi.ErrInvalid, err.Error())
	}
	ctx := kvCtx(c)
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < wait {
			wait = max(left, 0)
		}
	}
	start := time.Now()
	tok, err := locker.Acquire(ctx, key, ttl, wait)
	took := time.Since(start).Seconds()
	if err != nil {
		reply = kvBackendErr(c, op, buf, err)
		kvLockWait[kvOutcome(abi.Code(reply[0]))].Observe(took)
		return reply
	}
	kvLockWait[kvOutOK].Observe(took)
	kvCount(op, kvOutOK)
	return abi.AppendString(abi.AppendReplyOK(buf), tok)
}

// opLockRelease: (string key, string token) -> (bool released). false when
// the token does not hold the lock (another holder, or the lease expired).
func opLockRelease(c *Call, args *abi.Values, reply []byte) []byte {
	const op = abi.OpLockRelease
	locker := c.Services.kvLocker()
	key, buf, a, ok := kvStart(c, op, args, reply, locker != nil, "lock")
	if !ok {
		return buf
	}
	tok := a.bytes("token")
	if err := a.end(); err != nil {
		return kvFail(op, buf, abi.ErrInvalid, err.Error())
	}
	released, err := locker.Release(kvCtx(c), key, string(tok))
	if err != nil {
		return kvBackendErr(c, op, buf, err)
	}
	kvCount(op, kvOutOK)
	return abi.AppendBool(abi.AppendReplyOK(buf), released)
}

// opLockExtend: (string key, string token, int ttl_ms) -> (bool extended).
// false when the token no longer holds the lock.
func opLockExtend(c *Call, args *abi.Values, reply []byte) []byte {
	const op = abi.OpLockExtend
	locker := c.Services.kvLocker()
	key, buf, a, ok := kvStart(c, op, args, reply, locker != nil, "lock")
	if !ok {
		return buf
	}
	tok := a.bytes("token")
	ttl := a.lockTTL()
	if err := a.end(); err != nil {
		return kvFail(op, buf, abi.ErrInvalid, err.Error())
	}
	extended, err := locker.Extend(kvCtx(c), key, string(tok), ttl)
	if err != nil {
		return kvBackendErr(c, op, buf, err)
	}
	kvCount(op, kvOutOK)
	return abi.AppendBool(abi.AppendReplyOK(buf), extended)
}
