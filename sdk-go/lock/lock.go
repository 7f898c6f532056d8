// Package lock gives a plugin lease locks held by the host: mutual
// exclusion between every instance of the plugin (and, with the Redis
// backend, between every wasmcorn process sharing that Redis).
//
//	err := lock.With("user:"+name, 5*time.Second, time.Second, func() error {
//		return login(name)
//	})
//	if errors.Is(err, lock.ErrHeld) {
//		// someone else held it for the whole second
//	}
//
// A lock is a lease: it ends after its TTL unless extended, so a plugin
// that crashes or times out never leaves a key locked forever. Only the
// holder's token can release or extend it. Choose a TTL longer than the
// work it guards, or Extend it while working; when a lease runs out, the
// next waiter may take the lock while the old holder still runs.
//
// Keys are namespaced per plugin like cache keys (see the cache package)
// and do not collide with cache entries of the same name.
//
// Waiting is bounded twice: by the wait argument and by the request's
// deadline. Acquire never waits past either. If the lock backend is down,
// every operation fails with code unavailable: a lock cannot be pretended.
package lock

import (
	"errors"
	"fmt"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/sdk-go/hostcall"
)

// ErrHeld is returned (wrapped) by Acquire and With when another holder
// kept the lock for the whole wait.
var ErrHeld = errors.New("wasmcorn lock: held by another holder")

// ErrLost is returned (wrapped) by With when the lease ran out before the
// function returned: another holder may have run concurrently with it.
var ErrLost = errors.New("wasmcorn lock: lease expired before release")

// Lock is a held lease. Its methods are safe for concurrent use, but a Lock
// is meant to be used by the code that acquired it, within one request or
// job.
type Lock struct {
	key   string
	token string
}

// Key returns the key the lock was acquired on (without the namespace).
func (l *Lock) Key() string { return l.key }

// Token returns the lease's token, a random string only the holder knows.
func (l *Lock) Token() string { return l.token }

// millis converts d to whole milliseconds, rounding a positive duration up.
func millis(what string, d time.Duration) (int64, error) {
	if d < 0 {
		return 0, fmt.Errorf("wasmcorn lock: negative %s %v", what, d)
	}
	ms := int64(d / time.Millisecond)
	if d%time.Millisecond != 0 {
		ms++
	}
	return ms, nil
}

// Acquire takes the lock on key for ttl (at least 1ms, at most 24h). When
// another holder has it, Acquire waits up to wait (0: do not wait) for it
// to be released or to expire; if it is still held then, the error wraps
// ErrHeld. Other failures are *abi.ReplyError values (errors.As): code
// unavailable (backend down), invalid (bad ttl or key), timeout (the
// request's deadline ran out while waiting).
func Acquire(key string, ttl, wait time.Duration) (*Lock, error) {
	ttlMs, err := millis("ttl", ttl)
	if err != nil {
		return nil, err
	}
	waitMs, err := millis("wait", wait)
	if err != nil {
		return nil, err
	}
	a := hostcall.AcquireArgs()
	defer a.Release()
	a.B = abi.AppendString(a.B, key)
	a.B = abi.AppendInt(a.B, ttlMs)
	a.B = abi.AppendInt(a.B, waitMs)
	vs, err := hostcall.Call(abi.OpLockAcquire, a.B)
	if err != nil {
		var re *abi.ReplyError
		if errors.As(err, &re) && re.Code == abi.ErrConflict {
			return nil, fmt.Errorf("%w: %q (%s)", ErrHeld, key, re.Msg)
		}
		return nil, err
	}
	tok, err := vs.Bytes("token")
	if err != nil || len(tok) == 0 {
		return nil, fmt.Errorf("wasmcorn lock: acquire %q: bad reply: token %q, %v", key, tok, err)
	}
	return &Lock{key: key, token: string(tok)}, nil
}

// Release ends the lease and reports whether it did: false means the lease
// had already run out (and perhaps been taken by someone else).
func (l *Lock) Release() (bool, error) {
	a := hostcall.AcquireArgs()
	defer a.Release()
	a.B = abi.AppendString(a.B, l.key)
	a.B = abi.AppendString(a.B, l.token)
	return boolReply(abi.OpLockRelease, a.B, "released")
}

// Extend makes the lease end ttl from now and reports whether it did: false
// means the lease had already run out; the lock is then lost.
func (l *Lock) Extend(ttl time.Duration) (bool, error) {
	ms, err := millis("ttl", ttl)
	if err != nil {
		return false, err
	}
	a := hostcall.AcquireArgs()
	defer a.Release()
	a.B = abi.AppendString(a.B, l.key)
	a.B = abi.AppendString(a.B, l.token)
	a.B = abi.AppendInt(a.B, ms)
	return boolReply(abi.OpLockExtend, a.B, "extended")
}

// With runs f while holding the lock on key: Acquire(key, ttl, wait), f,
// then Release, even if f panics. It returns Acquire's error (f does not
// run), else f's error; if f succeeded but the lease had run out before
// the release, it returns an error wrapping ErrLost, and if the release
// itself failed, that error.
func With(key string, ttl, wait time.Duration, f func() error) (err error) {
	l, err := Acquire(key, ttl, wait)
	if err != nil {
		return err
	}
	defer func() {
		released, rerr := l.Release()
		if err != nil {
			return
		}
		if rerr != nil {
			err = fmt.Errorf("wasmcorn lock: release %q: %w", key, rerr)
		} else if !released {
			err = fmt.Errorf("%w: %q after %v", ErrLost, key, ttl)
		}
	}()
	return f()
}

func boolReply(op abi.Op, args []byte, name string) (bool, error) {
	vs, err := hostcall.Call(op, args)
	if err != nil {
		return false, err
	}
	b, err := vs.Bool(name)
	if err != nil {
		return false, fmt.Errorf("wasmcorn %s: bad reply: %w", op, err)
	}
	return b, nil
}
