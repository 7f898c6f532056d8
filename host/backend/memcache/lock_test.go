package memcache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/host"
)

func newLocker(t testing.TB) *Locker {
	l := NewLocker(-1)
	t.Cleanup(func() { l.Close() })
	return l
}

func TestLockBasics(t *testing.T) {
	ctx := context.Background()
	l := newLocker(t)
	tok, err := l.Acquire(ctx, "k", time.Hour, 0)
	if err != nil || tok == "" {
		t.Fatalf("Acquire = %q, %v", tok, err)
	}
	if _, err := l.Acquire(ctx, "k", time.Hour, 0); !errors.Is(err, host.ErrLockHeld) {
		t.Fatalf("second Acquire = %v, want ErrLockHeld", err)
	}
	if _, err := l.Acquire(ctx, "other", time.Hour, 0); err != nil {
		t.Fatalf("Acquire of another key: %v", err)
	}
	if ok, _ := l.Release(ctx, "k", "not-the-token"); ok {
		t.Fatal("Release with a wrong token succeeded")
	}
	if ok, _ := l.Extend(ctx, "k", "not-the-token", time.Hour); ok {
		t.Fatal("Extend with a wrong token succeeded")
	}
	if ok, _ := l.Extend(ctx, "k", tok, time.Hour); !ok {
		t.Fatal("Extend by the holder failed")
	}
	if ok, _ := l.Release(ctx, "k", tok); !ok {
		t.Fatal("Release by the holder failed")
	}
	if ok, _ := l.Release(ctx, "k", tok); ok {
		t.Fatal("second Release succeeded")
	}
	tok2, err := l.Acquire(ctx, "k", time.Hour, 0)
	if err != nil || tok2 == tok {
		t.Fatalf("re-Acquire = %q, %v; want a fresh token", tok2, err)
	}
	if n := l.Held(); n != 2 {
		t.Fatalf("Held = %d, want 2", n)
	}
	for _, ttl := range []time.Duration{0, -time.Second} {
		if _, err := l.Acquire(ctx, "z", ttl, 0); err == nil {
			t.Fatalf("Acquire with ttl %v succeeded", ttl)
		}
	}
}

func TestLockExpiry(t *testing.T) {
	ctx := context.Background()
	l := newLocker(t)
	var now atomic.Pointer[time.Time]
	t0 := time.Unix(1000, 0)
	now.Store(&t0)
	l.now = func() time.Time { return *now.Load() }
	advance := func(d time.Duration) { n := now.Load().Add(d); now.Store(&n) }

	tok, _ := l.Acquire(ctx, "k", time.Second, 0)
	advance(time.Second)
	if ok, _ := l.Extend(ctx, "k", tok, time.Hour); ok {
		t.Fatal("Extend of an expired lease succeeded")
	}
	tok2, err := l.Acquire(ctx, "k", time.Second, 0)
	if err != nil {
		t.Fatalf("Acquire after expiry: %v", err)
	}
	if ok, _ := l.Release(ctx, "k", tok); ok {
		t.Fatal("the expired holder released the new lease")
	}
	advance(time.Second)
	l.sweep()
	if n := l.Held(); n != 0 {
		t.Fatalf("Held after sweep = %d", n)
	}
	if ok, _ := l.Release(ctx, "k", tok2); ok {
		t.Fatal("Release of a swept lease succeeded")
	}
}

func TestLockWaitWakesOnRelease(t *testing.T) {
	ctx := context.Background()
	l := newLocker(t)
	tok, _ := l.Acquire(ctx, "k", time.Hour, 0)
	got := make(chan error, 1)
	go func() {
		_, err := l.Acquire(ctx, "k", time.Hour, time.Hour)
		got <- err
	}()
	waitForWaiter(t, l, "k")
	l.Release(ctx, "k", tok)
	if err := <-got; err != nil {
		t.Fatalf("waiting Acquire: %v", err)
	}
}

func TestLockWaitTakesExpiredLease(t *testing.T) {
	ctx := context.Background()
	l := newLocker(t)
	l.Acquire(ctx, "k", 20*time.Millisecond, 0) // never released
	if _, err := l.Acquire(ctx, "k", time.Hour, time.Hour); err != nil {
		t.Fatalf("Acquire waiting for an abandoned lease: %v", err)
	}
}

func TestLockWaitRunsOut(t *testing.T) {
	ctx := context.Background()
	l := newLocker(t)
	l.Acquire(ctx, "k", time.Hour, 0)
	if _, err := l.Acquire(ctx, "k", time.Hour, 10*time.Millisecond); !errors.Is(err, host.ErrLockHeld) {
		t.Fatalf("Acquire = %v, want ErrLockHeld", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	got := make(chan error, 1)
	go func() {
		_, err := l.Acquire(cctx, "k", time.Hour, time.Hour)
		got <- err
	}()
	waitForWaiter(t, l, "k")
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire with cancelled ctx = %v, want context.Canceled", err)
	}
}

// waitForWaiter returns once some Acquire is sleeping on key.
func waitForWaiter(t *testing.T, l *Locker, key string) {
	t.Helper()
	s := l.shard(key)
	for {
		s.mu.Lock()
		c := s.m[key]
		waiting := c != nil && c.freed != nil
		s.mu.Unlock()
		if waiting {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLockHammer checks mutual exclusion: goroutines increment a plain
// counter inside the lock and flag any overlap.
func TestLockHammer(t *testing.T) {
	ctx := context.Background()
	l := NewLocker(time.Millisecond)
	defer l.Close()
	const workers, iters = 8, 300
	var (
		inside  atomic.Int32
		overlap atomic.Int32
		counter int
		wg      sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range iters {
				tok, err := l.Acquire(ctx, "counter", time.Minute, time.Minute)
				if err != nil {
					t.Errorf("Acquire: %v", err)
					return
				}
				if inside.Add(1) != 1 {
					overlap.Add(1)
				}
				counter++
				inside.Add(-1)
				if ok, err := l.Release(ctx, "counter", tok); !ok || err != nil {
					t.Errorf("Release = %v, %v", ok, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if overlap.Load() != 0 || counter != workers*iters {
		t.Fatalf("overlaps %d, counter %d (want 0 and %d)", overlap.Load(), counter, workers*iters)
	}
	if n := l.Held(); n != 0 {
		t.Fatalf("Held after hammer = %d", n)
	}
}

func BenchmarkLockAcquireRelease(b *testing.B) {
	ctx := context.Background()
	l := newLocker(b)
	b.ReportAllocs()
	for b.Loop() {
		tok, _ := l.Acquire(ctx, "k", time.Minute, 0)
		l.Release(ctx, "k", tok)
	}
}

// TestLockTableBounded: leases of distinct keys cannot fill the host's
// memory: past the table's bound Acquire fails as an unavailable backend,
// and released leases make room again.
func TestLockTableBounded(t *testing.T) {
	ctx := context.Background()
	l := newLocker(t)
	pad := strings.Repeat("k", 1000)
	type held struct{ key, tok string }
	var hs []held
	refused := 0
	limit := lockShards*maxLockShardBytes/(1000+8+leaseOverhead) + lockShards
	for i := 0; i < limit+1000 && refused < 100; i++ {
		key := fmt.Sprintf("%08d", i) + pad
		tok, err := l.Acquire(ctx, key, time.Hour, 0)
		if err != nil {
			if !errors.Is(err, host.ErrBackendDown) {
				t.Fatalf("acquire %d: %v, want ErrBackendDown", i, err)
			}
			refused++
			continue
		}
		hs = append(hs, held{key, tok})
	}
	if refused == 0 || len(hs) > limit {
		t.Fatalf("%d leases of 1 KiB keys held, %d refused: the table is not bounded near %d MiB", len(hs), refused, lockShards*maxLockShardBytes>>20)
	}
	for _, h := range hs {
		if ok, err := l.Release(ctx, h.key, h.tok); !ok || err != nil {
			t.Fatalf("release: %v, %v", ok, err)
		}
	}
	if _, err := l.Acquire(ctx, "after"+pad, time.Hour, 0); err != nil {
		t.Fatalf("acquire after releasing every lease: %v", err)
	}
}
