package host_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host"
)

func TestLockOps(t *testing.T) {
	kvSuite(t, map[string]func(*testing.T, kvBackend){
		"AcquireReleaseExtend": testLockAcquireRelease,
		"WaitRunsOut":          testLockWaitRunsOut,
		"WaitBoundedByCall":    testLockWaitBoundedByDeadline,
		"WaiterGetsLock":       testLockWaiterGetsLock,
		"Namespaces":           testLockNamespaces,
		"Hammer":               testLockHammer,
	})
}

// acquire runs lock.acquire and returns the token. It is safe to call
// from any goroutine: a malformed reply is an error, not a t.Fatal.
func acquire(_ testing.TB, c *host.Call, key string, ttlMs, waitMs int) (string, error) {
	vs, err := kvCall(c, abi.OpLockAcquire, key, ttlMs, waitMs)
	if err != nil {
		return "", err
	}
	tok, err := vs.Bytes("token")
	if err != nil || len(tok) == 0 || vs.More() {
		return "", fmt.Errorf("lock.acquire reply: token %q, %v", tok, err)
	}
	return string(tok), nil
}

func testLockAcquireRelease(t *testing.T, b kvBackend) {
	c := newKVCall(b, "app")
	tok, err := acquire(t, c, "user:1", 60_000, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = acquire(t, c, "user:1", 60_000, 0)
	wantCode(t, err, abi.ErrConflict)
	if mustBool(t, mustOK(t, c, abi.OpLockRelease, "user:1", "wrong-token")) {
		t.Fatal("release with a wrong token succeeded")
	}
	if mustBool(t, mustOK(t, c, abi.OpLockExtend, "user:1", "wrong-token", 60_000)) {
		t.Fatal("extend with a wrong token succeeded")
	}
	if !mustBool(t, mustOK(t, c, abi.OpLockExtend, "user:1", tok, 120_000)) {
		t.Fatal("extend by the holder failed")
	}
	// Still held after the wrong-token attempts.
	_, err = acquire(t, c, "user:1", 60_000, 0)
	wantCode(t, err, abi.ErrConflict)
	if !mustBool(t, mustOK(t, c, abi.OpLockRelease, "user:1", tok)) {
		t.Fatal("release by the holder failed")
	}
	if mustBool(t, mustOK(t, c, abi.OpLockRelease, "user:1", tok)) {
		t.Fatal("second release succeeded")
	}
	tok2, err := acquire(t, c, "user:1", 60_000, 0)
	if err != nil || tok2 == tok {
		t.Fatalf("re-acquire = %q, %v; want a fresh token", tok2, err)
	}

	// A lease that runs out can be taken, and its old holder can no longer
	// extend or release it.
	old, _ := acquire(t, c, "lease", 30, 0)
	next, err := acquire(t, c, "lease", 60_000, 60_000)
	if err != nil {
		t.Fatalf("acquire waiting for an expiring lease: %v", err)
	}
	if mustBool(t, mustOK(t, c, abi.OpLockExtend, "lease", old, 60_000)) {
		t.Fatal("expired holder extended the new lease")
	}
	if mustBool(t, mustOK(t, c, abi.OpLockRelease, "lease", old)) {
		t.Fatal("expired holder released the new lease")
	}
	if !mustBool(t, mustOK(t, c, abi.OpLockRelease, "lease", next)) {
		t.Fatal("new holder could not release")
	}
}

func testLockWaitRunsOut(t *testing.T, b kvBackend) {
	c := newKVCall(b, "app")
	if _, err := acquire(t, c, "k", 60_000, 0); err != nil {
		t.Fatal(err)
	}
	_, err := acquire(t, c, "k", 60_000, 30)
	wantCode(t, err, abi.ErrConflict)
}

// testLockWaitBoundedByDeadline: a wait longer than the call's deadline
// ends at the deadline (the test would time out otherwise).
func testLockWaitBoundedByDeadline(t *testing.T, b kvBackend) {
	c := newKVCall(b, "app")
	if _, err := acquire(t, c, "k", 60_000, 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	c.Ctx = ctx
	_, err := acquire(t, c, "k", 60_000, 3_600_000)
	var code abi.Code
	if re, ok := err.(*abi.ReplyError); ok {
		code = re.Code
	}
	if code != abi.ErrConflict && code != abi.ErrTimeout {
		t.Fatalf("acquire past the deadline = %v, want conflict or timeout", err)
	}
}

func testLockWaiterGetsLock(t *testing.T, b kvBackend) {
	holder, waiter := newKVCall(b, "app"), newKVCall(b, "app")
	tok, err := acquire(t, holder, "k", 60_000, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		_, err := acquire(t, waiter, "k", 60_000, 60_000)
		got <- err
	}()
	time.Sleep(10 * time.Millisecond) // likely start waiting first; not required for correctness
	mustOK(t, holder, abi.OpLockRelease, "k", tok)
	if err := <-got; err != nil {
		t.Fatalf("waiting acquire: %v", err)
	}
}

func testLockNamespaces(t *testing.T, b kvBackend) {
	a, other := newKVCall(b, "a"), newKVCall(b, "b")
	tok, err := acquire(t, a, "k", 60_000, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acquire(t, other, "k", 60_000, 0); err != nil {
		t.Fatalf("plugin b cannot take its own k while a holds a's k: %v", err)
	}
	if mustBool(t, mustOK(t, other, abi.OpLockRelease, "k", tok)) {
		t.Fatal("plugin b released plugin a's lock with a's token")
	}
	// A lock and a cache entry of the same key are independent.
	mustOK(t, a, abi.OpCacheSet, "k", []byte("v"), 0)
	if v, ok := getValue(t, a, "k"); !ok || v != "v" {
		t.Fatalf("cache k beside lock k = %q, %v", v, ok)
	}
	if !mustBool(t, mustOK(t, a, abi.OpLockRelease, "k", tok)) {
		t.Fatal("release after a cache write on the same key failed")
	}
}

// testLockHammer: goroutines, each with its own Call, increment a plain
// counter under the lock; any overlap is detected.
func testLockHammer(t *testing.T, b kvBackend) {
	workers, iters := 8, 200
	if b.redis != nil {
		workers, iters = 6, 40
	}
	var (
		inside, overlap atomic.Int32
		counter         int
		wg              sync.WaitGroup
	)
	for range workers {
		c := newKVCall(b, "app")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range iters {
				tok, err := acquire(t, c, "counter", 60_000, 60_000)
				if err != nil {
					t.Error(err)
					return
				}
				if inside.Add(1) != 1 {
					overlap.Add(1)
				}
				counter++
				inside.Add(-1)
				if vs, err := kvCall(c, abi.OpLockRelease, "counter", tok); err != nil {
					t.Error(err)
					return
				} else if ok, _ := vs.Bool("released"); !ok {
					t.Error("release by the holder returned false")
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
