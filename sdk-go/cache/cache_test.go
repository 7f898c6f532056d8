package cache

import (
	"bytes"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/sdk-go/internal/testhost"
)

// fakeHost is an in-memory cache behind testhost. It decodes arguments
// strictly, as the real host does, and records the last call's bytes.
type fakeHost struct {
	mu       sync.Mutex
	data     map[string][]byte
	ttls     map[string]int64
	lastOp   abi.Op
	lastArgs []byte
	fail     abi.Code // when non-zero, every call replies this error
}

func install(t *testing.T) *fakeHost {
	h := &fakeHost{data: map[string][]byte{}, ttls: map[string]int64{}}
	t.Cleanup(testhost.Set(h.serve))
	return h
}

func (h *fakeHost) serve(op abi.Op, args []byte) []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastOp, h.lastArgs = op, append([]byte(nil), args...)
	if h.fail != 0 {
		return abi.AppendReplyError(nil, h.fail, "injected")
	}
	vs := abi.NewValues(args)
	bad := func(err error) []byte { return abi.AppendReplyError(nil, abi.ErrInvalid, err.Error()) }
	ok := abi.AppendReplyOK(nil)
	switch op {
	case abi.OpCacheGet:
		k, err := vs.Bytes("key")
		if err != nil || vs.More() {
			return bad(errors.New("bad get args"))
		}
		v, found := h.data[string(k)]
		if !found {
			return abi.AppendReplyError(nil, abi.ErrNotFound, "miss")
		}
		return abi.AppendBytesValue(ok, v)
	case abi.OpCacheSet, abi.OpCacheAdd:
		k, err1 := vs.Bytes("key")
		v, err2 := vs.Next()
		ttl, err3 := vs.Int("ttl")
		if err := errors.Join(err1, err2, err3); err != nil || vs.More() || v.Kind != abi.KindBytes {
			return bad(errors.New("bad set/add args"))
		}
		if _, found := h.data[string(k)]; found && op == abi.OpCacheAdd {
			return abi.AppendBool(ok, false)
		}
		h.data[string(k)] = append([]byte{}, v.B...)
		h.ttls[string(k)] = ttl
		if op == abi.OpCacheAdd {
			return abi.AppendBool(ok, true)
		}
		return ok
	case abi.OpCacheDelete:
		k, err := vs.Bytes("key")
		if err != nil || vs.More() {
			return bad(errors.New("bad delete args"))
		}
		_, found := h.data[string(k)]
		delete(h.data, string(k))
		return abi.AppendBool(ok, found)
	case abi.OpCacheGetMany:
		for vs.More() {
			k, err := vs.Bytes("key")
			if err != nil {
				return bad(err)
			}
			if v, found := h.data[string(k)]; found {
				ok = abi.AppendBytesValue(ok, v)
			} else {
				ok = abi.AppendNull(ok)
			}
		}
		return ok
	case abi.OpCacheIncr:
		k, err1 := vs.Bytes("key")
		d, err2 := vs.Int("delta")
		ttl, err3 := vs.Int("ttl")
		if err := errors.Join(err1, err2, err3); err != nil || vs.More() {
			return bad(errors.New("bad incr args"))
		}
		cur := int64(0)
		if v, found := h.data[string(k)]; found {
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return abi.AppendReplyError(nil, abi.ErrInvalid, "not an integer")
			}
			cur = n
		} else {
			h.ttls[string(k)] = ttl
		}
		h.data[string(k)] = strconv.AppendInt(nil, cur+d, 10)
		return abi.AppendInt(ok, cur+d)
	}
	return abi.AppendReplyError(nil, abi.ErrUnknownOp, op.String())
}

func TestEncodingGolden(t *testing.T) {
	h := install(t)
	if err := Set("k", []byte("v"), 1500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	want := []byte{
		3, 1, 0, 0, 0, 'k', // string "k"
		4, 1, 0, 0, 0, 'v', // bytes "v"
		1, 0xdc, 0x05, 0, 0, 0, 0, 0, 0, // int 1500
	}
	if h.lastOp != abi.OpCacheSet || !bytes.Equal(h.lastArgs, want) {
		t.Fatalf("cache.set args = %s %x, want %x", h.lastOp, h.lastArgs, want)
	}
}

func TestMillis(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want int64
		err  bool
	}{
		{0, 0, false},
		{time.Nanosecond, 1, false},
		{time.Millisecond, 1, false},
		{1500 * time.Microsecond, 2, false},
		{time.Hour, 3_600_000, false},
		{1<<63 - 1, (1<<63-1)/int64(time.Millisecond) + 1, false},
		{-time.Nanosecond, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in.String(), func(t *testing.T) {
			got, err := millis("ttl", tt.in)
			if (err != nil) != tt.err || got != tt.want {
				t.Fatalf("millis(%v) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.err)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	h := install(t)
	if _, ok, err := Get("a"); ok || err != nil {
		t.Fatalf("Get miss = %v, %v", ok, err)
	}
	if err := Set("a", []byte("1"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if h.ttls["a"] != 60_000 {
		t.Fatalf("ttl sent = %d ms, want 60000", h.ttls["a"])
	}
	v, ok, err := Get("a")
	if !ok || err != nil || string(v) != "1" {
		t.Fatalf("Get = %q, %v, %v", v, ok, err)
	}
	// The value is the caller's copy, not the SDK's shared reply buffer.
	Set("b", []byte("2"), 0)
	Get("b")
	if string(v) != "1" {
		t.Fatalf("value changed under the caller after another call: %q", v)
	}
	many, err := GetMany("a", "nope", "b")
	if err != nil || len(many) != 3 || string(many[0]) != "1" || many[1] != nil || string(many[2]) != "2" {
		t.Fatalf("GetMany = %q, %v", many, err)
	}
	if many, err := GetMany(); err != nil || len(many) != 0 {
		t.Fatalf("GetMany() = %q, %v", many, err)
	}
	if existed, err := Delete("a"); !existed || err != nil {
		t.Fatalf("Delete = %v, %v", existed, err)
	}
	if added, err := Add("x", []byte("1"), time.Second); !added || err != nil {
		t.Fatalf("Add = %v, %v", added, err)
	}
	if added, _ := Add("x", []byte("2"), 0); added {
		t.Fatal("second Add = true")
	}
	if n, err := Incr("n", 3, time.Second); n != 3 || err != nil {
		t.Fatalf("Incr = %d, %v", n, err)
	}
	if n, _ := Incr("n", -5, 0); n != -2 {
		t.Fatalf("Incr = %d, want -2", n)
	}
	Set("t", []byte("abc"), 0)
	_, err = Incr("t", 1, 0)
	var re *abi.ReplyError
	if !errors.As(err, &re) || re.Code != abi.ErrInvalid {
		t.Fatalf("Incr on text = %v, want invalid", err)
	}
}

func TestErrors(t *testing.T) {
	h := install(t)
	if err := Set("k", nil, -time.Second); err == nil {
		t.Fatal("Set with negative ttl succeeded")
	}
	if _, err := Incr("k", 1, -1); err == nil {
		t.Fatal("Incr with negative ttl succeeded")
	}
	if _, err := Add("k", nil, -1); err == nil {
		t.Fatal("Add with negative ttl succeeded")
	}
	h.fail = abi.ErrUnavailable
	var re *abi.ReplyError
	checks := map[string]error{}
	_, _, checks["get"] = Get("k")
	checks["set"] = Set("k", nil, 0)
	_, checks["delete"] = Delete("k")
	_, checks["get_many"] = GetMany("k")
	_, checks["incr"] = Incr("k", 1, 0)
	_, checks["add"] = Add("k", nil, 0)
	for name, err := range checks {
		if !errors.As(err, &re) || re.Code != abi.ErrUnavailable {
			t.Errorf("%s = %v, want unavailable", name, err)
		}
	}
}

func TestBadReplies(t *testing.T) {
	replies := map[abi.Op][]byte{
		abi.OpCacheGet:     abi.AppendInt(abi.AppendReplyOK(nil), 1),
		abi.OpCacheDelete:  abi.AppendReplyOK(nil),
		abi.OpCacheIncr:    abi.AppendString(abi.AppendReplyOK(nil), "1"),
		abi.OpCacheGetMany: abi.AppendInt(abi.AppendReplyOK(nil), 1),
	}
	t.Cleanup(testhost.Set(func(op abi.Op, _ []byte) []byte { return replies[op] }))
	if _, _, err := Get("k"); err == nil {
		t.Error("Get accepted an int reply")
	}
	if _, err := Delete("k"); err == nil {
		t.Error("Delete accepted an empty reply")
	}
	if _, err := Incr("k", 1, 0); err == nil {
		t.Error("Incr accepted a string reply")
	}
	if _, err := GetMany("k"); err == nil {
		t.Error("GetMany accepted an int value")
	}
	if _, err := GetMany("k", "l"); err == nil {
		t.Error("GetMany accepted too few values")
	}
}

func TestAppendGet(t *testing.T) {
	install(t)
	Set("a", []byte("123"), 0)
	dst := []byte("x:")
	got, ok, err := AppendGet(dst, "a")
	if !ok || err != nil || string(got) != "x:123" {
		t.Fatalf("AppendGet hit = %q, %v, %v", got, ok, err)
	}
	got, ok, err = AppendGet(got[:2], "missing")
	if ok || err != nil || string(got) != "x:" {
		t.Fatalf("AppendGet miss = %q, %v, %v", got, ok, err)
	}
	// An empty value is a hit: Get returns it non-nil, a miss nil.
	Set("empty", nil, 0)
	if v, ok, _ := Get("empty"); !ok || v == nil || len(v) != 0 {
		t.Fatalf("Get empty value = %q (nil %v), %v", v, v == nil, ok)
	}
	if v, ok, _ := Get("missing"); ok || v != nil {
		t.Fatalf("Get miss = %q, %v", v, ok)
	}
}

// TestAppendGetAllocs: with a reused dst, a hit allocates nothing in the
// SDK (a count, not a timing). A miss costs the host's reply error.
func TestAppendGetAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector (make test runs this without it)")
	}
	reply := abi.AppendBytesValue(abi.AppendReplyOK(nil), []byte("value"))
	t.Cleanup(testhost.Set(func(abi.Op, []byte) []byte { return reply }))
	dst := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { dst, _, _ = AppendGet(dst[:0], "k") }); n != 0 {
		t.Fatalf("%.0f allocations per AppendGet hit", n)
	}
	if string(dst) != "value" {
		t.Fatalf("dst %q", dst)
	}
}
