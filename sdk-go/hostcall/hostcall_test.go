package hostcall

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/sdk-go/internal/testhost"
)

// echoHost replies OK with the arguments as bytes, or the error code given
// as the first int argument.
func echoHost(op abi.Op, args []byte) []byte {
	if op == abi.OpCacheGet {
		return abi.AppendReplyError(nil, abi.ErrNotFound, "miss")
	}
	return abi.AppendBytesValue(abi.AppendReplyOK(nil), args)
}

func TestCallSizes(t *testing.T) {
	t.Cleanup(testhost.Set(echoHost))
	for _, n := range []int{0, 10, initialReply - 6, initialReply - 5, initialReply, maxKeptReply, 3 * maxKeptReply} {
		arg := bytes.Repeat([]byte{'a'}, n)
		vs, err := Call(abi.OpLog, arg)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		b, err := vs.Bytes("echo")
		if err != nil || !bytes.Equal(b, arg) || vs.More() {
			t.Fatalf("%d bytes: got %d bytes, %v", n, len(b), err)
		}
	}
	mu.Lock()
	kept := cap(shared)
	mu.Unlock()
	if kept > maxKeptReply {
		t.Fatalf("shared reply buffer of %d bytes kept", kept)
	}
}

func TestCallBuf(t *testing.T) {
	t.Cleanup(testhost.Set(echoHost))
	buf := make([]byte, 16)
	vs, buf2, err := CallBuf(abi.OpLog, []byte("hi"), buf)
	if err != nil {
		t.Fatal(err)
	}
	if &buf2[0] != &buf[0] {
		t.Fatal("a reply that fits did not use the caller's buffer")
	}
	if b, _ := vs.Bytes("v"); string(b) != "hi" {
		t.Fatalf("reply %q", b)
	}
	big := bytes.Repeat([]byte("z"), 100)
	vs, buf3, err := CallBuf(abi.OpLog, big, buf2)
	if err != nil {
		t.Fatal(err)
	}
	if len(buf3) < 100 {
		t.Fatalf("grown buffer %d bytes", len(buf3))
	}
	// The reply survives later calls, unlike Call's.
	if _, err := Call(abi.OpLog, []byte("other")); err != nil {
		t.Fatal(err)
	}
	if b, _ := vs.Bytes("v"); !bytes.Equal(b, big) {
		t.Fatal("CallBuf reply overwritten by a later call")
	}
	if _, _, err := CallBuf(abi.OpLog, nil, nil); err != nil {
		t.Fatalf("nil buffer: %v", err)
	}
}

func TestCallErrors(t *testing.T) {
	restore := testhost.Set(nil)
	if _, err := Call(abi.OpLog, nil); !errors.Is(err, ErrNoHost) {
		t.Fatalf("no host: %v", err)
	}
	if _, _, err := CallBuf(abi.OpLog, nil, nil); !errors.Is(err, ErrNoHost) {
		t.Fatalf("no host: %v", err)
	}
	restore()
	t.Cleanup(testhost.Set(echoHost))
	_, err := Call(abi.OpCacheGet, nil)
	var re *abi.ReplyError
	if !errors.As(err, &re) || re.Code != abi.ErrNotFound || re.Op != abi.OpCacheGet || re.Msg != "miss" {
		t.Fatalf("error reply: %v", err)
	}
	testhost.Set(func(abi.Op, []byte) []byte { return nil })
	if _, err := Call(abi.OpLog, nil); !errors.Is(err, abi.ErrShort) {
		t.Fatalf("empty reply: %v", err)
	}
}

func TestAppendAny(t *testing.T) {
	cases := []struct {
		in   any
		want abi.Value
	}{
		{nil, abi.Value{Kind: abi.KindNull}},
		{true, abi.Value{Kind: abi.KindBool, I: 1}},
		{false, abi.Value{Kind: abi.KindBool}},
		{int(-1), abi.Value{Kind: abi.KindInt, I: -1}},
		{int8(-8), abi.Value{Kind: abi.KindInt, I: -8}},
		{int16(16), abi.Value{Kind: abi.KindInt, I: 16}},
		{int32(32), abi.Value{Kind: abi.KindInt, I: 32}},
		{int64(math.MinInt64), abi.Value{Kind: abi.KindInt, I: math.MinInt64}},
		{uint(5), abi.Value{Kind: abi.KindInt, I: 5}},
		{uint8(8), abi.Value{Kind: abi.KindInt, I: 8}},
		{uint16(16), abi.Value{Kind: abi.KindInt, I: 16}},
		{uint32(math.MaxUint32), abi.Value{Kind: abi.KindInt, I: math.MaxUint32}},
		{uint64(math.MaxInt64), abi.Value{Kind: abi.KindInt, I: math.MaxInt64}},
		{float32(1.5), abi.Value{Kind: abi.KindFloat, F: 1.5}},
		{2.25, abi.Value{Kind: abi.KindFloat, F: 2.25}},
		{"s", abi.Value{Kind: abi.KindString, B: []byte("s")}},
		{[]byte{0, 1}, abi.Value{Kind: abi.KindBytes, B: []byte{0, 1}}},
		{abi.Value{Kind: abi.KindInt, I: 9}, abi.Value{Kind: abi.KindInt, I: 9}},
	}
	for _, c := range cases {
		b, err := AppendAny(nil, c.in)
		if err != nil {
			t.Errorf("AppendAny(%#v): %v", c.in, err)
			continue
		}
		if want := abi.AppendValue(nil, c.want); !bytes.Equal(b, want) {
			t.Errorf("AppendAny(%#v) = %x, want %x", c.in, b, want)
		}
	}
	for _, bad := range []any{uint64(math.MaxUint64), uint(math.MaxUint64), struct{}{}, []int{1}, abi.Value{Kind: 9}} {
		if b, err := AppendAny([]byte("keep"), bad); err == nil || string(b) != "keep" {
			t.Errorf("AppendAny(%#v) = %q, %v; want an error and dst unchanged", bad, b, err)
		}
	}
}

func TestArgsPool(t *testing.T) {
	a := AcquireArgs()
	if len(a.B) != 0 {
		t.Fatalf("acquired non-empty args: %d bytes", len(a.B))
	}
	a.B = abi.AppendString(a.B, "x")
	a.Release()
	b := AcquireArgs()
	if len(b.B) != 0 {
		t.Fatal("released args not reset")
	}
	b.B = make([]byte, 0, 2*maxKeptReply)
	b.Release() // dropped, not pooled; nothing to observe but no panic
}
