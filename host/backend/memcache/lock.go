package memcache

import (
	"context"
	"crypto/rand"
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"time"

	"github.com/wasmcorn/wasmcorn/host"
)

const lockShards = 32

// maxLockShardBytes bounds each shard's leases (keys plus leaseOverhead
// each): 64 MiB over all shards. Leases live up to the host's maximum TTL
// and need no grant, so without a bound one plugin acquiring distinct keys
// could fill the host's memory. Past it, Acquire fails as an unavailable
// backend would.
const (
	maxLockShardBytes = 2 << 20
	leaseOverhead     = 128
)

// Locker is the in-process host.Locker: lease locks keyed by string, each
// held by one random token until released or until its TTL runs out.
//
// A waiting Acquire sleeps on a channel that the holder's Release closes,
// with a timer set to the earlier of the lease's expiry and the end of its
// wait, so it neither spins nor misses a lease that simply ran out. A release
// wakes every waiter of that key and one of them wins; waiters of one key
// are expected to be few. It is safe for concurrent use; Close stops its
// sweeper. Create it with NewLocker.
type Locker struct {
	shards [lockShards]lockShard
	seed   maphash.Seed
	now    func() time.Time // replaced by tests

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

var _ host.Locker = (*Locker)(nil)

type lockShard struct {
	mu    sync.Mutex
	m     map[string]*lease
	bytes int // keys and leaseOverhead of the leases in m
	_     [64]byte
}

// remove deletes key's lease and wakes its waiters; s.mu is held.
func (s *lockShard) remove(key string, l *lease) {
	delete(s.m, key)
	s.bytes -= len(key) + leaseOverhead
	l.end()
}

type lease struct {
	token string
	exp   time.Time
	// freed is created by the first waiter and closed when the lease ends
	// by Release (or is dropped after it expired); nil when nobody waits.
	freed chan struct{}
}

// end closes l's wake channel, if any waiter made one.
func (l *lease) end() {
	if l.freed != nil {
		close(l.freed)
		l.freed = nil
	}
}

// NewLocker returns a running Locker whose sweeper drops expired leases
// every sweepInterval (0 means DefaultSweepInterval; negative disables it,
// leaving expired leases to be replaced lazily by the next Acquire).
func NewLocker(sweepInterval time.Duration) *Locker {
	if sweepInterval == 0 {
		sweepInterval = DefaultSweepInterval
	}
	l := &Locker{seed: maphash.MakeSeed(), now: time.Now, stop: make(chan struct{}), done: make(chan struct{})}
	for i := range l.shards {
		l.shards[i].m = make(map[string]*lease)
	}
	if sweepInterval > 0 {
		go l.sweeper(sweepInterval)
	} else {
		close(l.done)
	}
	return l
}

// Close stops the sweeper; the Locker keeps working. Idempotent, returns nil.
func (l *Locker) Close() error {
	l.closeOnce.Do(func() { close(l.stop) })
	<-l.done
	return nil
}

func (l *Locker) shard(key string) *lockShard {
	return &l.shards[maphash.String(l.seed, key)%lockShards]
}

// Acquire takes key for ttl and returns its token. When another token holds
// it, Acquire waits up to wait for a release or the lease's expiry, then
// fails with an error wrapping host.ErrLockHeld; a done ctx ends the wait
// with ctx's error. ttl must be positive.
func (l *Locker) Acquire(ctx context.Context, key string, ttl, wait time.Duration) (string, error) {
	if ttl <= 0 {
		return "", fmt.Errorf("memcache: acquire lock %q: ttl %v is not positive", key, ttl)
	}
	s := l.shard(key)
	giveUp := l.now().Add(wait)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		s.mu.Lock()
		now := l.now()
		cur := s.m[key]
		if cur == nil || !now.Before(cur.exp) {
			tok := rand.Text()
			if cur == nil {
				if s.bytes+len(key)+leaseOverhead > maxLockShardBytes {
					s.mu.Unlock()
					return "", fmt.Errorf("memcache: acquire lock %q: too many locks held (%d MiB of leases): %w", key, lockShards*maxLockShardBytes>>20, host.ErrBackendDown)
				}
				// Clone: the key may alias a buffer the caller reuses.
				s.m[strings.Clone(key)] = &lease{token: tok, exp: now.Add(ttl)}
				s.bytes += len(key) + leaseOverhead
			} else {
				// Take over an expired lease, keeping its waiters' channel.
				cur.token, cur.exp = tok, now.Add(ttl)
			}
			s.mu.Unlock()
			return tok, nil
		}
		left := giveUp.Sub(now)
		if left <= 0 {
			s.mu.Unlock()
			return "", fmt.Errorf("memcache: acquire lock %q: %w", key, host.ErrLockHeld)
		}
		if cur.freed == nil {
			cur.freed = make(chan struct{})
		}
		freed := cur.freed
		if d := cur.exp.Sub(now); d < left {
			left = d
		}
		s.mu.Unlock()

		if timer == nil {
			timer = time.NewTimer(left)
		} else {
			timer.Reset(left)
		}
		select {
		case <-freed:
		case <-timer.C:
		case <-ctx.Done():
			return "", fmt.Errorf("memcache: acquire lock %q: %w", key, ctx.Err())
		}
	}
}

// Release ends the lease on key if token holds it and it has not expired,
// waking its waiters, and reports whether it did.
func (l *Locker) Release(_ context.Context, key, token string) (bool, error) {
	s := l.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.m[key]
	if cur == nil {
		return false, nil
	}
	if !l.now().Before(cur.exp) {
		s.remove(key, cur)
		return false, nil
	}
	if cur.token != token {
		return false, nil
	}
	s.remove(key, cur)
	return true, nil
}

// Extend sets the lease on key to end ttl from now if token holds it and it
// has not expired yet, and reports whether it did. A lease that ran out is
// lost: extending it fails even if nobody took it since.
func (l *Locker) Extend(_ context.Context, key, token string, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, fmt.Errorf("memcache: extend lock %q: ttl %v is not positive", key, ttl)
	}
	s := l.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.m[key]
	now := l.now()
	if cur == nil || cur.token != token || !now.Before(cur.exp) {
		return false, nil
	}
	cur.exp = now.Add(ttl)
	return true, nil
}

// Held returns the number of unexpired leases, for tests and status pages.
func (l *Locker) Held() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		now := l.now()
		for _, c := range s.m {
			if now.Before(c.exp) {
				n++
			}
		}
		s.mu.Unlock()
	}
	return n
}

func (l *Locker) sweeper(interval time.Duration) {
	defer close(l.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.sweep()
		}
	}
}

// sweep drops expired leases, waking anyone still waiting on them.
func (l *Locker) sweep() {
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		now := l.now()
		for k, c := range s.m {
			if !now.Before(c.exp) {
				s.remove(k, c)
			}
		}
		s.mu.Unlock()
	}
}
