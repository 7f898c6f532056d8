package host_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host"
	"github.com/wasmcorn/wasmcorn/host/backend/memcache"
	"github.com/wasmcorn/wasmcorn/host/backend/redisconn"
	"github.com/wasmcorn/wasmcorn/host/backend/rediskv"
	"github.com/wasmcorn/wasmcorn/internal/metrics"
	"github.com/wasmcorn/wasmcorn/internal/testsvc"
)

// kvArgs encodes Go values as an argument message.
func kvArgs(vals ...any) []byte {
	var b []byte
	for _, v := range vals {
		switch v := v.(type) {
		case nil:
			b = abi.AppendNull(b)
		case int:
			b = abi.AppendInt(b, int64(v))
		case int64:
			b = abi.AppendInt(b, v)
		case string:
			b = abi.AppendString(b, v)
		case []byte:
			b = abi.AppendBytesValue(b, v)
		case bool:
			b = abi.AppendBool(b, v)
		default:
			panic("kvArgs: unsupported type")
		}
	}
	return b
}

// kvBackend is one configured pair of backends under test.
type kvBackend struct {
	name     string
	services *host.Services
	redis    *testsvc.Redis // nil for the embedded backend
}

const testMaxValue = 4 << 10

func memBackend(t testing.TB) kvBackend {
	c, err := memcache.New(memcache.Config{MaxBytes: 1 << 20, MaxValueBytes: testMaxValue, SweepInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	l := memcache.NewLocker(5 * time.Millisecond)
	t.Cleanup(func() { c.Close(); l.Close() })
	return kvBackend{name: "memory", services: &host.Services{Cache: c, Locker: l}}
}

func redisBackend(t testing.TB) kvBackend {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	srv := testsvc.StartRedis(t)
	s, err := rediskv.New(rediskv.Config{Conn: redisconn.Conn{Addrs: []string{srv.Addr()}, PoolSize: 8}, MaxValueBytes: testMaxValue})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return kvBackend{name: "redis", services: &host.Services{Cache: s, Locker: s}, redis: srv}
}

// kvSuite runs each test against both backends, each test on fresh ones.
func kvSuite(t *testing.T, tests map[string]func(*testing.T, kvBackend)) {
	backends := []struct {
		name string
		mk   func(testing.TB) kvBackend
	}{{"memory", memBackend}, {"redis", redisBackend}}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			for name, f := range tests {
				t.Run(name, func(t *testing.T) { f(t, be.mk(t)) })
			}
		})
	}
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// countingHandler counts log records at warn and above.
type countingHandler struct {
	mu sync.Mutex
	n  int
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.mu.Lock()
		h.n++
		h.mu.Unlock()
	}
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }
func (h *countingHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

func newKVCall(b kvBackend, plugin string) *host.Call {
	return &host.Call{Ctx: context.Background(), Plugin: plugin, Grants: &host.Grants{}, Services: b.services, Log: quietLog}
}

func kvCall(c *host.Call, op abi.Op, vals ...any) (abi.Values, error) {
	return abi.DecodeReply(op, host.DispatchKV(c, op, kvArgs(vals...), nil))
}

// wantCode fails unless err is a reply error with code.
func wantCode(t testing.TB, err error, code abi.Code) {
	t.Helper()
	var re *abi.ReplyError
	if !errors.As(err, &re) || re.Code != code {
		t.Fatalf("reply = %v, want code %s", err, code)
	}
}

func mustOK(t testing.TB, c *host.Call, op abi.Op, vals ...any) abi.Values {
	t.Helper()
	vs, err := kvCall(c, op, vals...)
	if err != nil {
		t.Fatalf("%s%v: %v", op, vals, err)
	}
	return vs
}

func getValue(t testing.TB, c *host.Call, key string) (string, bool) {
	t.Helper()
	vs, err := kvCall(c, abi.OpCacheGet, key)
	var re *abi.ReplyError
	if errors.As(err, &re) && re.Code == abi.ErrNotFound {
		return "", false
	}
	if err != nil {
		t.Fatalf("cache.get %q: %v", key, err)
	}
	v, err := vs.Bytes("value")
	if err != nil || vs.More() {
		t.Fatalf("cache.get %q reply: %v (more: %v)", key, err, vs.More())
	}
	return string(v), true
}

func mustBool(t testing.TB, vs abi.Values) bool {
	t.Helper()
	b, err := vs.Bool("result")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustInt(t testing.TB, vs abi.Values) int64 {
	t.Helper()
	n, err := vs.Int("result")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCacheOps(t *testing.T) {
	kvSuite(t, map[string]func(*testing.T, kvBackend){
		"GetSetDelete": testGetSetDelete,
		"TTL":          testCacheTTL,
		"GetMany":      testGetMany,
		"Incr":         testIncr,
		"Add":          testAdd,
		"Namespaces":   testNamespaces,
		"Limits":       testLimits,
		"BadArgs":      testBadArgs,
	})
}

func testGetSetDelete(t *testing.T, b kvBackend) {
	c := newKVCall(b, "app")
	if _, ok := getValue(t, c, "k"); ok {
		t.Fatal("hit on an empty cache")
	}
	mustOK(t, c, abi.OpCacheSet, "k", []byte("value"), 0)
	if v, ok := getValue(t, c, "k"); !ok || v != "value" {
		t.Fatalf("get = %q, %v", v, ok)
	}
	mustOK(t, c, abi.OpCacheSet, "k", []byte(""), 0)
	if v, ok := getValue(t, c, "k"); !ok || v != "" {
		t.Fatalf("empty value: get = %q, %v; want a hit", v, ok)
	}
	if !mustBool(t, mustOK(t, c, abi.OpCacheDelete, "k")) {
		t.Fatal("delete of a present key = false")
	}
	if mustBool(t, mustOK(t, c, abi.OpCacheDelete, "k")) {
		t.Fatal("delete of an absent key = true")
	}
	if _, ok := getValue(t, c, "k"); ok {
		t.Fatal("hit after delete")
	}
}

func testCacheTTL(t *testing.T, b kvBackend) {
	c := newKVCall(b, "app")
	mustOK(t, c, abi.OpCacheSet, "short", []byte("v"), 30)
	mustOK(t, c, abi.OpCacheSet, "long", []byte("v"), 3_600_000)
	for {
		if _, ok := getValue(t, c, "short"); !ok {
			break
		}
		time.Sleep(5 * time.Millisecond) // the test timeout bounds this
	}
	if _, ok := getValue(t, c, "long"); !ok {
		t.Fatal("a key with a one hour TTL expired")
	}
}

func testGetMany(t *testing.T, b kvBackend) {
	c := newKVCall(b, "app")
	mustOK(t, c, abi.OpCacheSet, "a", []byte("1"), 0)
	mustOK(t, c, abi.OpCacheSet, "c", []byte("3"), 0)
	vs := mustOK(t, c, abi.OpCacheGetMany, "a", "b", "c")
	want := []any{"1", nil, "3"}
	for i, w := range want {
		v, err := vs.Next()
		if err != nil {
			t.Fatalf("value %d: %v", i, err)
		}
		if w == nil {
			if v.Kind != abi.KindNull {
				t.Fatalf("value %d = %s %q, want null", i, v.Kind, v.B)
			}
		} else if v.Kind != abi.KindBytes || string(v.B) != w {
			t.Fatalf("value %d = %s %q, want bytes %q", i, v.Kind, v.B, w)
		}
	}
	if vs.More() {
		t.Fatal("extra values in the reply")
	}
	if vs := mustOK(t, c, abi.OpCacheGetMany); vs.More() {
		t.Fatal("get_many of no keys returned values")
	}
}

func testIncr(t *testing.T, b kvBackend) {
	c := newKVCall(b, "app")
	if n := mustInt(t, mustOK(t, c, abi.OpCacheIncr, "n", 5, 0)); n != 5 {
		t.Fatalf("incr = %d, want 5", n)
	}
	if n := mustInt(t, mustOK(t, c, abi.OpCacheIncr, "n", -7, 0)); n != -2 {
		t.Fatalf("incr = %d, want -2", n)
	}
	if v, _ := getValue(t, c, "n"); v != "-2" {
		t.Fatalf("counter reads %q, want \"-2\"", v)
	}
	mustOK(t, c, abi.OpCacheSet, "text", []byte("abc"), 0)
	_, err := kvCall(c, abi.OpCacheIncr, "text", 1, 0)
	wantCode(t, err, abi.ErrInvalid)
	mustInt(t, mustOK(t, c, abi.OpCacheIncr, "window", 1, 30))
	for {
		if _, ok := getValue(t, c, "window"); !ok {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testAdd(t *testing.T, b kvBackend) {
	c := newKVCall(b, "app")
	if !mustBool(t, mustOK(t, c, abi.OpCacheAdd, "k", []byte("first"), 0)) {
		t.Fatal("add on an absent key = false")
	}
	if mustBool(t, mustOK(t, c, abi.OpCacheAdd, "k", []byte("second"), 0)) {
		t.Fatal("add on a present key = true")
	}
	if v, _ := getValue(t, c, "k"); v != "first" {
		t.Fatalf("value = %q, want first", v)
	}
}

func testNamespaces(t *testing.T, b kvBackend) {
	a, other := newKVCall(b, "a"), newKVCall(b, "b")
	mustOK(t, a, abi.OpCacheSet, "k", []byte("from a"), 0)
	if _, ok := getValue(t, other, "k"); ok {
		t.Fatal("plugin b reads plugin a's key")
	}
	// A key cannot climb out of its namespace.
	if _, ok := getValue(t, other, "a:k"); ok {
		t.Fatal("plugin b reads a:k")
	}
	if mustBool(t, mustOK(t, other, abi.OpCacheDelete, "k")) {
		t.Fatal("plugin b deleted plugin a's key")
	}
	if v, _ := getValue(t, a, "k"); v != "from a" {
		t.Fatalf("a's value = %q after b's writes", v)
	}
	// Plugins granted the same namespace share it.
	s1, s2 := newKVCall(b, "x"), newKVCall(b, "y")
	s1.Grants.CacheNamespace, s2.Grants.CacheNamespace = "shared", "shared"
	mustOK(t, s1, abi.OpCacheSet, "k", []byte("s"), 0)
	if v, ok := getValue(t, s2, "k"); !ok || v != "s" {
		t.Fatalf("shared namespace: %q, %v", v, ok)
	}
	// A namespace with the separator is refused.
	bad := newKVCall(b, "a:b")
	_, err := kvCall(bad, abi.OpCacheGet, "k")
	wantCode(t, err, abi.ErrDenied)
	_, err = kvCall(bad, abi.OpCacheGetMany, "k")
	wantCode(t, err, abi.ErrDenied)
}

func testLimits(t *testing.T, b kvBackend) {
	c := newKVCall(b, "app")
	_, err := kvCall(c, abi.OpCacheSet, "big", make([]byte, testMaxValue+1), 0)
	wantCode(t, err, abi.ErrTooLarge)
	_, err = kvCall(c, abi.OpCacheAdd, "big", make([]byte, testMaxValue+1), 0)
	wantCode(t, err, abi.ErrTooLarge)
	mustOK(t, c, abi.OpCacheSet, "big", make([]byte, testMaxValue), 0)

	long := strings.Repeat("k", host.MaxCacheKeyBytes+1)
	for _, op := range []abi.Op{abi.OpCacheGet, abi.OpCacheDelete, abi.OpCacheGetMany} {
		_, err = kvCall(c, op, long)
		wantCode(t, err, abi.ErrInvalid)
		_, err = kvCall(c, op, "")
		wantCode(t, err, abi.ErrInvalid)
	}
	mustOK(t, c, abi.OpCacheSet, long[1:], []byte("v"), 0)

	many := make([]any, host.MaxCacheGetMany+1)
	for i := range many {
		many[i] = "k"
	}
	_, err = kvCall(c, abi.OpCacheGetMany, many...)
	wantCode(t, err, abi.ErrInvalid)
	mustOK(t, c, abi.OpCacheGetMany, many[1:]...)
}

func testBadArgs(t *testing.T, b kvBackend) {
	c := newKVCall(b, "app")
	tests := []struct {
		name string
		op   abi.Op
		args []any
	}{
		{"get without key", abi.OpCacheGet, nil},
		{"get int key", abi.OpCacheGet, []any{1}},
		{"get trailing", abi.OpCacheGet, []any{"k", 1}},
		{"set without ttl", abi.OpCacheSet, []any{"k", []byte("v")}},
		{"set negative ttl", abi.OpCacheSet, []any{"k", []byte("v"), -1}},
		{"set huge ttl", abi.OpCacheSet, []any{"k", []byte("v"), int64(1) << 62}},
		{"set ttl as string", abi.OpCacheSet, []any{"k", []byte("v"), "10"}},
		{"incr without delta", abi.OpCacheIncr, []any{"k"}},
		{"add trailing", abi.OpCacheAdd, []any{"k", []byte("v"), 0, 0}},
		{"delete trailing", abi.OpCacheDelete, []any{"k", "x"}},
		{"acquire zero ttl", abi.OpLockAcquire, []any{"k", 0, 0}},
		{"acquire ttl over a day", abi.OpLockAcquire, []any{"k", int64(25 * time.Hour / time.Millisecond), 0}},
		{"acquire negative wait", abi.OpLockAcquire, []any{"k", 1000, -1}},
		{"release without token", abi.OpLockRelease, []any{"k"}},
		{"extend without ttl", abi.OpLockExtend, []any{"k", "tok"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := kvCall(c, tt.op, tt.args...)
			wantCode(t, err, abi.ErrInvalid)
		})
	}
	// A truncated message is invalid, never a panic.
	reply := host.DispatchKV(c, abi.OpCacheSet, []byte{byte(abi.KindString), 9, 0, 0, 0, 'k'}, nil)
	_, err := abi.DecodeReply(abi.OpCacheSet, reply)
	wantCode(t, err, abi.ErrInvalid)
}

func TestCacheNotConfigured(t *testing.T) {
	c := &host.Call{Ctx: context.Background(), Plugin: "app", Services: &host.Services{}, Log: quietLog}
	for _, op := range []abi.Op{abi.OpCacheGet, abi.OpCacheSet, abi.OpCacheDelete, abi.OpCacheGetMany,
		abi.OpCacheIncr, abi.OpCacheAdd, abi.OpLockAcquire, abi.OpLockRelease, abi.OpLockExtend} {
		_, err := kvCall(c, op, "k")
		wantCode(t, err, abi.ErrUnavailable)
	}
}

// TestCacheRedisOutage kills Redis under the host ops: reads are misses and
// writes no-ops (never a failure), incr/add/locks are unavailable, every
// degraded answer is counted; after a restart new values are readable
// without touching the backend.
func TestCacheRedisOutage(t *testing.T) {
	b := redisBackend(t)
	c := newKVCall(b, "app")
	mustOK(t, c, abi.OpCacheSet, "k", []byte("v"), 0)
	tok := mustOK(t, c, abi.OpLockAcquire, "l", 60_000, 0)
	token, _ := tok.Bytes("token")
	getDegraded := testutil.ToFloat64(metrics.CacheDegraded.WithLabelValues("cache.get"))
	logs := &countingHandler{}
	c.Log = slog.New(logs)
	b.redis.Kill()

	for i := range 20 {
		if _, ok := getValue(t, c, "k"); ok {
			t.Fatalf("round %d: get hit while Redis is down", i)
		}
		mustOK(t, c, abi.OpCacheSet, "k", []byte("v2"), 0)
		if mustBool(t, mustOK(t, c, abi.OpCacheDelete, "k")) {
			t.Fatalf("round %d: delete while down reported existed", i)
		}
		vs := mustOK(t, c, abi.OpCacheGetMany, "k", "k2")
		for j := 0; j < 2; j++ {
			if v, err := vs.Next(); err != nil || v.Kind != abi.KindNull {
				t.Fatalf("round %d: get_many value %d while down = %v, %v; want null", i, j, v, err)
			}
		}
		for _, call := range []struct {
			op   abi.Op
			args []any
		}{
			{abi.OpCacheIncr, []any{"n", 1, 0}},
			{abi.OpCacheAdd, []any{"a", []byte("v"), 0}},
			{abi.OpLockAcquire, []any{"l2", 1000, 0}},
			{abi.OpLockRelease, []any{"l", string(token)}},
			{abi.OpLockExtend, []any{"l", string(token), 1000}},
		} {
			_, err := kvCall(c, call.op, call.args...)
			wantCode(t, err, abi.ErrUnavailable)
		}
	}
	if got := testutil.ToFloat64(metrics.CacheDegraded.WithLabelValues("cache.get")) - getDegraded; got != 20 {
		t.Fatalf("wasmcorn_cache_degraded_total{op=cache.get} grew by %v, want 20", got)
	}
	// 180 degraded answers over 9 ops: at most one log line per op.
	if n := logs.count(); n > 9 {
		t.Fatalf("%d log lines for 180 degraded answers; want at most one per op", n)
	}

	b.redis.Start()
	for {
		mustOK(t, c, abi.OpCacheSet, "k", []byte("after"), 0)
		if v, ok := getValue(t, c, "k"); ok {
			if v != "after" {
				t.Fatalf("after restart get = %q", v)
			}
			break
		}
		time.Sleep(50 * time.Millisecond) // go-redis re-probes once a second
	}
	mustOK(t, c, abi.OpLockAcquire, "l2", 1000, 0)
}

// TestCacheGetHitAllocs: a cache.get hit on the embedded backend, with a
// reply buffer that already has room, allocates nothing.
func TestCacheGetHitAllocs(t *testing.T) {
	b := memBackend(t)
	c := newKVCall(b, "app")
	mustOK(t, c, abi.OpCacheSet, "page:42", bytes.Repeat([]byte("x"), 2048), 60_000)
	in := kvArgs("page:42")
	reply := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(1000, func() {
		reply = host.DispatchKV(c, abi.OpCacheGet, in, reply)
		if reply[0] != byte(abi.OK) {
			t.Fatal("miss")
		}
	})
	if allocs != 0 {
		t.Fatalf("cache.get hit allocates %.1f times per op, want 0", allocs)
	}
}

func BenchmarkOpCacheGetHit(b *testing.B) {
	be := memBackend(b)
	c := newKVCall(be, "app")
	mustOK(b, c, abi.OpCacheSet, "page:42", bytes.Repeat([]byte("x"), 2048), 60_000)
	in := kvArgs("page:42")
	reply := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		reply = host.DispatchKV(c, abi.OpCacheGet, in, reply)
	}
}

func BenchmarkOpCacheSet(b *testing.B) {
	be := memBackend(b)
	c := newKVCall(be, "app")
	in := kvArgs("page:42", bytes.Repeat([]byte("x"), 2048), 60_000)
	reply := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		reply = host.DispatchKV(c, abi.OpCacheSet, in, reply)
	}
}

// FuzzCacheOps feeds arbitrary argument messages to every cache and lock op
// on the embedded backends: the host never panics and always answers a
// well-formed reply.
func FuzzCacheOps(f *testing.F) {
	f.Add(uint8(0), kvArgs("k"))
	f.Add(uint8(1), kvArgs("k", []byte("v"), 10))
	f.Add(uint8(3), kvArgs("a", "b", "c"))
	f.Add(uint8(4), kvArgs("n", 1, 0))
	f.Add(uint8(6), kvArgs("l", 100, 0))
	f.Add(uint8(7), kvArgs("l", "tok"))
	f.Add(uint8(8), kvArgs("l", "tok", 100))
	f.Add(uint8(2), []byte{byte(abi.KindString), 0xff, 0xff, 0xff, 0xff})
	ops := []abi.Op{abi.OpCacheGet, abi.OpCacheSet, abi.OpCacheDelete, abi.OpCacheGetMany,
		abi.OpCacheIncr, abi.OpCacheAdd, abi.OpLockAcquire, abi.OpLockRelease, abi.OpLockExtend}
	b := memBackend(f)
	f.Fuzz(func(t *testing.T, which uint8, in []byte) {
		op := ops[int(which)%len(ops)]
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		c := newKVCall(b, "fuzz")
		c.Ctx = ctx
		reply := host.DispatchKV(c, op, in, nil)
		if len(reply) == 0 {
			t.Fatal("empty reply")
		}
		_, err := abi.DecodeReply(op, reply)
		var re *abi.ReplyError
		if err != nil && !errors.As(err, &re) {
			t.Fatalf("malformed reply %x: %v", reply, err)
		}
		if err == nil {
			if _, err := abi.DecodeValues(nil, reply[1:]); err != nil {
				t.Fatalf("malformed ok reply values: %v", err)
			}
		}
	})
}
