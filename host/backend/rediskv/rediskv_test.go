package rediskv

import (
	"bytes"
	"context"
	"errors"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wasmcorn/wasmcorn/host"
	"github.com/wasmcorn/wasmcorn/host/backend/redisconn"
	"github.com/wasmcorn/wasmcorn/internal/testsvc"
)

func newStore(t testing.TB, cfg Config) (*Store, *testsvc.Redis) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	srv := testsvc.StartRedis(t)
	cfg.Addrs = []string{srv.Addr()}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, srv
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero is standalone localhost", Config{}, true},
		{"sentinel", Config{Conn: redisconn.Conn{Mode: ModeSentinel, MasterName: "m", Addrs: []string{"a:1", "b:1"}}}, true},
		{"sentinel without master", Config{Conn: redisconn.Conn{Mode: ModeSentinel}}, false},
		{"cluster", Config{Conn: redisconn.Conn{Mode: ModeCluster, Addrs: []string{"a:1", "b:1"}}}, true},
		{"cluster with db", Config{Conn: redisconn.Conn{Mode: ModeCluster, DB: 2}}, false},
		{"standalone with two addrs", Config{Conn: redisconn.Conn{Addrs: []string{"a:1", "b:1"}}}, false},
		{"unknown mode", Config{Conn: redisconn.Conn{Mode: "ring"}}, false},
		{"negative db", Config{Conn: redisconn.Conn{DB: -1}}, false},
		{"negative pool", Config{Conn: redisconn.Conn{PoolSize: -1}}, false},
		{"negative timeout", Config{Conn: redisconn.Conn{ReadTimeout: -time.Second}}, false},
		{"unordered retry", Config{LockRetryMin: time.Second, LockRetryMax: time.Millisecond}, false},
		{"empty addr", Config{Conn: redisconn.Conn{Addrs: []string{""}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok %v", err, tt.ok)
			}
			s, err := New(tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("New() = %v, want ok %v", err, tt.ok)
			}
			if s != nil {
				s.Close()
			}
		})
	}
}

func TestCacheOps(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, Config{KeyPrefix: "t:"})
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Get(ctx, "a"); ok || err != nil {
		t.Fatalf("Get missing = %v, %v", ok, err)
	}
	if err := s.Set(ctx, "a", []byte("hello"), 0); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := s.Get(ctx, "a"); !ok || err != nil || string(v) != "hello" {
		t.Fatalf("Get = %q, %v, %v", v, ok, err)
	}
	// The key really carries the prefix and the cache sub-prefix.
	if v, err := s.rdb.Get(ctx, "t:cache:a").Result(); err != nil || v != "hello" {
		t.Fatalf("raw GET t:cache:a = %q, %v", v, err)
	}
	if err := s.Set(ctx, "empty", nil, 0); err != nil {
		t.Fatal(err)
	}
	if v, ok, _ := s.Get(ctx, "empty"); !ok || len(v) != 0 {
		t.Fatalf("empty value = %q, %v; want a hit", v, ok)
	}
	got, err := s.GetMany(ctx, []string{"a", "missing", "empty"})
	if err != nil || len(got) != 3 || string(got[0]) != "hello" || got[1] != nil || got[2] == nil {
		t.Fatalf("GetMany = %q, %v", got, err)
	}
	if got, err := s.GetMany(ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("GetMany(nil) = %q, %v", got, err)
	}
	if existed, err := s.Delete(ctx, "a"); !existed || err != nil {
		t.Fatalf("Delete = %v, %v", existed, err)
	}
	if existed, _ := s.Delete(ctx, "a"); existed {
		t.Fatal("second Delete reported present")
	}
	if added, _ := s.Add(ctx, "x", []byte("1"), 0); !added {
		t.Fatal("Add absent = false")
	}
	if added, _ := s.Add(ctx, "x", []byte("2"), 0); added {
		t.Fatal("Add present = true")
	}
	if v, _, _ := s.Get(ctx, "x"); string(v) != "1" {
		t.Fatalf("after Add twice value = %q", v)
	}
}

func TestTooLarge(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, Config{MaxValueBytes: 8})
	if err := s.Set(ctx, "k", make([]byte, 9), 0); !errors.Is(err, host.ErrValueTooLarge) {
		t.Fatalf("Set = %v, want ErrValueTooLarge", err)
	}
	if _, err := s.Add(ctx, "k", make([]byte, 9), 0); !errors.Is(err, host.ErrValueTooLarge) {
		t.Fatalf("Add = %v, want ErrValueTooLarge", err)
	}
}

func TestTTL(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, Config{})
	s.Set(ctx, "short", []byte("v"), 30*time.Millisecond)
	s.Set(ctx, "forever", []byte("v"), 0)
	s.Incr(ctx, "counter", 1, 30*time.Millisecond)
	s.Add(ctx, "added", []byte("v"), 30*time.Millisecond)
	for _, k := range []string{"short", "counter", "added"} {
		for {
			if _, ok, _ := s.Get(ctx, k); !ok {
				break
			}
			time.Sleep(5 * time.Millisecond) // the test timeout bounds this
		}
	}
	if _, ok, _ := s.Get(ctx, "forever"); !ok {
		t.Fatal("key without TTL expired")
	}
	if ttl := s.rdb.PTTL(ctx, "cache:forever").Val(); ttl != -1 {
		t.Fatalf("PTTL of key without TTL = %v, want -1", ttl)
	}
}

func TestIncr(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, Config{})
	if n, err := s.Incr(ctx, "n", 5, 0); n != 5 || err != nil {
		t.Fatalf("Incr = %d, %v", n, err)
	}
	if n, err := s.Incr(ctx, "n", -7, time.Hour); n != -2 || err != nil {
		t.Fatalf("Incr = %d, %v", n, err)
	}
	if ttl := s.rdb.PTTL(ctx, "cache:n").Val(); ttl != -1 {
		t.Fatalf("incr with ttl on an existing key changed its expiry to %v", ttl)
	}
	if n, err := s.Incr(ctx, "w", 1, time.Hour); n != 1 || err != nil {
		t.Fatalf("Incr creating with ttl = %d, %v", n, err)
	}
	if ttl := s.rdb.PTTL(ctx, "cache:w").Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("PTTL of created counter = %v, want (0, 1h]", ttl)
	}
	s.Set(ctx, "text", []byte("abc"), 0)
	s.Set(ctx, "max", []byte(strconv.FormatInt(math.MaxInt64, 10)), 0)
	for _, tc := range []struct {
		key string
		ttl time.Duration
	}{{"text", 0}, {"text", time.Hour}, {"max", 0}, {"max", time.Hour}} {
		if _, err := s.Incr(ctx, tc.key, 1, tc.ttl); !errors.Is(err, host.ErrNotInteger) || errors.Is(err, host.ErrBackendDown) {
			t.Fatalf("Incr %s ttl %v = %v, want ErrNotInteger", tc.key, tc.ttl, err)
		}
	}
	const workers, iters = 8, 200
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range iters {
				if _, err := s.Incr(ctx, "hammer", 1, time.Hour); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if v, _, _ := s.Get(ctx, "hammer"); string(v) != strconv.Itoa(workers*iters) {
		t.Fatalf("counter = %s, want %d", v, workers*iters)
	}
}

func TestServerErrorIsNotDown(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, Config{})
	s.rdb.LPush(ctx, "cache:list", "x")
	_, _, err := s.Get(ctx, "list")
	if err == nil || errors.Is(err, host.ErrBackendDown) {
		t.Fatalf("Get on a list = %v, want a WRONGTYPE error that is not ErrBackendDown", err)
	}
}

func TestCallerContext(t *testing.T) {
	s, _ := newStore(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := s.Get(ctx, "k")
	if !errors.Is(err, context.Canceled) || errors.Is(err, host.ErrBackendDown) {
		t.Fatalf("Get with cancelled ctx = %v, want context.Canceled and not ErrBackendDown", err)
	}
}

func TestSlowServerIsDown(t *testing.T) {
	ctx := context.Background()
	s, srv := newStore(t, Config{Conn: redisconn.Conn{ReadTimeout: 50 * time.Millisecond}})
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()
	// Pause every client's commands for longer than the read timeout.
	if err := admin.Do(ctx, "CLIENT", "PAUSE", 300, "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	defer admin.Do(ctx, "CLIENT", "UNPAUSE")
	if _, _, err := s.Get(ctx, "k"); !errors.Is(err, host.ErrBackendDown) {
		t.Fatalf("Get from a paused server = %v, want ErrBackendDown", err)
	}
	// When the caller's deadline is what ran out, that is the cause.
	dctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	s2, err := New(Config{Conn: redisconn.Conn{Addrs: []string{srv.Addr()}, ReadTimeout: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, _, err := s2.Get(dctx, "k"); !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, host.ErrBackendDown) {
		t.Fatalf("Get past the caller's deadline = %v, want DeadlineExceeded and not ErrBackendDown", err)
	}
}

func TestPrefixesIsolate(t *testing.T) {
	ctx := context.Background()
	s, srv := newStore(t, Config{KeyPrefix: "one:"})
	other, err := New(Config{Conn: redisconn.Conn{Addrs: []string{srv.Addr()}}, KeyPrefix: "two:"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	s.Set(ctx, "k", []byte("1"), 0)
	if _, ok, _ := other.Get(ctx, "k"); ok {
		t.Fatal("a store with another prefix sees the key")
	}
	// A lock and a cache entry with the same key are independent.
	if _, err := s.Acquire(ctx, "k", time.Minute, 0); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := s.Get(ctx, "k"); string(v) != "1" {
		t.Fatalf("cache value after locking the same key = %q", v)
	}
}

func TestLocks(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, Config{})
	tok, err := s.Acquire(ctx, "k", time.Minute, 0)
	if err != nil || tok == "" {
		t.Fatalf("Acquire = %q, %v", tok, err)
	}
	if _, err := s.Acquire(ctx, "k", time.Minute, 20*time.Millisecond); !errors.Is(err, host.ErrLockHeld) {
		t.Fatalf("Acquire held = %v, want ErrLockHeld", err)
	}
	if ok, _ := s.Release(ctx, "k", "wrong"); ok {
		t.Fatal("Release with wrong token succeeded")
	}
	if ok, _ := s.Extend(ctx, "k", "wrong", time.Hour); ok {
		t.Fatal("Extend with wrong token succeeded")
	}
	if ok, err := s.Extend(ctx, "k", tok, time.Hour); !ok || err != nil {
		t.Fatalf("Extend = %v, %v", ok, err)
	}
	if ttl := s.rdb.PTTL(ctx, "lock:k").Val(); ttl <= time.Minute {
		t.Fatalf("PTTL after extend to 1h = %v", ttl)
	}
	if ok, err := s.Release(ctx, "k", tok); !ok || err != nil {
		t.Fatalf("Release = %v, %v", ok, err)
	}
	if ok, _ := s.Release(ctx, "k", tok); ok {
		t.Fatal("second Release succeeded")
	}
	if _, err := s.Acquire(ctx, "k", 0, 0); err == nil {
		t.Fatal("Acquire with ttl 0 succeeded")
	}

	// A waiter gets the lock once the holder releases it.
	tok, _ = s.Acquire(ctx, "w", time.Minute, 0)
	got := make(chan error, 1)
	go func() {
		_, err := s.Acquire(ctx, "w", time.Minute, time.Minute)
		got <- err
	}()
	time.Sleep(10 * time.Millisecond) // let the waiter try once; correctness does not depend on it
	s.Release(ctx, "w", tok)
	if err := <-got; err != nil {
		t.Fatalf("waiting Acquire: %v", err)
	}

	// An abandoned lease expires and a waiter takes it.
	s.Acquire(ctx, "abandoned", 30*time.Millisecond, 0)
	if _, err := s.Acquire(ctx, "abandoned", time.Minute, time.Minute); err != nil {
		t.Fatalf("Acquire after expiry: %v", err)
	}

	// A cancelled context ends the wait.
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := s.Acquire(cctx, "w", time.Minute, time.Minute); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire past ctx deadline = %v, want DeadlineExceeded", err)
	}
}

func TestLockHammer(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, Config{LockRetryMax: 4 * time.Millisecond})
	const workers, iters = 6, 40
	var (
		inside, overlap atomic.Int32
		counter         int
		wg              sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range iters {
				tok, err := s.Acquire(ctx, "c", time.Minute, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if inside.Add(1) != 1 {
					overlap.Add(1)
				}
				counter++
				inside.Add(-1)
				if ok, err := s.Release(ctx, "c", tok); !ok || err != nil {
					t.Errorf("Release = %v, %v", ok, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if overlap.Load() != 0 || counter != workers*iters {
		t.Fatalf("overlaps %d, counter %d; want 0 and %d", overlap.Load(), counter, workers*iters)
	}
}

// TestOutageAndRecovery kills Redis: every operation fails fast with
// ErrBackendDown; after a restart the same Store works again by itself.
func TestOutageAndRecovery(t *testing.T) {
	ctx := context.Background()
	s, srv := newStore(t, Config{Conn: redisconn.Conn{PoolSize: 4}})
	s.Set(ctx, "k", []byte("v"), 0)
	tok, _ := s.Acquire(ctx, "l", time.Minute, 0)
	srv.Kill()

	checks := map[string]func() error{
		"get":      func() error { _, _, err := s.Get(ctx, "k"); return err },
		"get_many": func() error { _, err := s.GetMany(ctx, []string{"k"}); return err },
		"set":      func() error { return s.Set(ctx, "k", []byte("v"), 0) },
		"delete":   func() error { _, err := s.Delete(ctx, "k"); return err },
		"add":      func() error { _, err := s.Add(ctx, "k", []byte("v"), 0); return err },
		"incr":     func() error { _, err := s.Incr(ctx, "n", 1, time.Second); return err },
		"acquire":  func() error { _, err := s.Acquire(ctx, "l2", time.Minute, 0); return err },
		"release":  func() error { _, err := s.Release(ctx, "l", tok); return err },
		"extend":   func() error { _, err := s.Extend(ctx, "l", tok, time.Minute); return err },
		"ping":     func() error { return s.Ping(ctx) },
	}
	for round := range 3 { // stale pooled connections, then fresh dials, then the breaker
		for name, f := range checks {
			if err := f(); !errors.Is(err, host.ErrBackendDown) {
				t.Fatalf("round %d: %s while Redis is down = %v, want ErrBackendDown", round, name, err)
			}
		}
	}

	srv.Start()
	for {
		if err := s.Set(ctx, "k2", []byte("back"), 0); err == nil {
			break
		} else if !errors.Is(err, host.ErrBackendDown) {
			t.Fatalf("Set after restart = %v", err)
		}
		time.Sleep(50 * time.Millisecond) // go-redis re-probes once a second
	}
	if v, ok, err := s.Get(ctx, "k2"); !ok || err != nil || string(v) != "back" {
		t.Fatalf("Get after recovery = %q, %v, %v", v, ok, err)
	}
	if _, err := s.Acquire(ctx, "l", time.Minute, 0); err != nil {
		t.Fatalf("Acquire after recovery (no persistence: the old lease is gone): %v", err)
	}
}

func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	s, _ := newStore(b, Config{})
	s.Set(ctx, "page", bytes.Repeat([]byte("x"), 512), 0)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := s.Get(ctx, "page"); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

func BenchmarkAcquireRelease(b *testing.B) {
	ctx := context.Background()
	s, _ := newStore(b, Config{})
	b.ReportAllocs()
	for b.Loop() {
		tok, err := s.Acquire(ctx, "k", time.Minute, 0)
		if err != nil {
			b.Fatal(err)
		}
		s.Release(ctx, "k", tok)
	}
}
