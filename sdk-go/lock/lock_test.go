package lock

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

// fakeHost holds locks in a map (no waiting, no expiry unless expire is
// called) and decodes arguments strictly.
type fakeHost struct {
	mu       sync.Mutex
	held     map[string]string // key -> token
	next     int
	lastOp   abi.Op
	lastArgs []byte
	ttls     []int64
	fail     abi.Code
}

func install(t *testing.T) *fakeHost {
	h := &fakeHost{held: map[string]string{}}
	t.Cleanup(testhost.Set(h.serve))
	return h
}

// expire drops key's lease as if its TTL ran out.
func (h *fakeHost) expire(key string) {
	h.mu.Lock()
	delete(h.held, key)
	h.mu.Unlock()
}

func (h *fakeHost) serve(op abi.Op, args []byte) []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastOp, h.lastArgs = op, append([]byte(nil), args...)
	if h.fail != 0 {
		return abi.AppendReplyError(nil, h.fail, "injected")
	}
	vs := abi.NewValues(args)
	bad := abi.AppendReplyError(nil, abi.ErrInvalid, "bad args")
	ok := abi.AppendReplyOK(nil)
	key, err := vs.Bytes("key")
	if err != nil {
		return bad
	}
	k := string(key)
	switch op {
	case abi.OpLockAcquire:
		ttl, err1 := vs.Int("ttl")
		_, err2 := vs.Int("wait")
		if err1 != nil || err2 != nil || vs.More() {
			return bad
		}
		h.ttls = append(h.ttls, ttl)
		if _, taken := h.held[k]; taken {
			return abi.AppendReplyError(nil, abi.ErrConflict, "lock "+k+" held")
		}
		h.next++
		tok := "tok" + strconv.Itoa(h.next)
		h.held[k] = tok
		return abi.AppendString(ok, tok)
	case abi.OpLockRelease, abi.OpLockExtend:
		tok, err := vs.Bytes("token")
		if err != nil {
			return bad
		}
		if op == abi.OpLockExtend {
			ttl, err := vs.Int("ttl")
			if err != nil {
				return bad
			}
			h.ttls = append(h.ttls, ttl)
		}
		if vs.More() {
			return bad
		}
		mine := h.held[k] == string(tok)
		if mine && op == abi.OpLockRelease {
			delete(h.held, k)
		}
		return abi.AppendBool(ok, mine)
	}
	return abi.AppendReplyError(nil, abi.ErrUnknownOp, op.String())
}

func TestEncodingGolden(t *testing.T) {
	h := install(t)
	l, err := Acquire("k", 2*time.Second, 3*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		3, 1, 0, 0, 0, 'k',
		1, 0xd0, 0x07, 0, 0, 0, 0, 0, 0, // ttl 2000
		1, 3, 0, 0, 0, 0, 0, 0, 0, // wait 3
	}
	if h.lastOp != abi.OpLockAcquire || !bytes.Equal(h.lastArgs, want) {
		t.Fatalf("lock.acquire args = %s %x, want %x", h.lastOp, h.lastArgs, want)
	}
	l.Release()
	want = []byte{3, 1, 0, 0, 0, 'k', 3, 4, 0, 0, 0, 't', 'o', 'k', '1'}
	if h.lastOp != abi.OpLockRelease || !bytes.Equal(h.lastArgs, want) {
		t.Fatalf("lock.release args = %s %x, want %x", h.lastOp, h.lastArgs, want)
	}
}

func TestAcquireReleaseExtend(t *testing.T) {
	h := install(t)
	l, err := Acquire("k", time.Second, 0)
	if err != nil || l.Key() != "k" || l.Token() == "" {
		t.Fatalf("Acquire = %+v, %v", l, err)
	}
	if _, err := Acquire("k", time.Second, 0); !errors.Is(err, ErrHeld) {
		t.Fatalf("second Acquire = %v, want ErrHeld", err)
	}
	if ok, err := l.Extend(1500 * time.Microsecond); !ok || err != nil {
		t.Fatalf("Extend = %v, %v", ok, err)
	}
	if got := h.ttls[len(h.ttls)-1]; got != 2 {
		t.Fatalf("extend ttl sent = %d ms, want 2 (rounded up)", got)
	}
	if ok, err := l.Release(); !ok || err != nil {
		t.Fatalf("Release = %v, %v", ok, err)
	}
	if ok, _ := l.Release(); ok {
		t.Fatal("second Release = true")
	}
	if ok, _ := l.Extend(time.Second); ok {
		t.Fatal("Extend after Release = true")
	}
	for _, d := range [][2]time.Duration{{-1, 0}, {time.Second, -1}} {
		if _, err := Acquire("z", d[0], d[1]); err == nil {
			t.Fatalf("Acquire(ttl %v, wait %v) succeeded", d[0], d[1])
		}
	}
	if _, err := l.Extend(-1); err == nil {
		t.Fatal("Extend with negative ttl succeeded")
	}
}

func TestWith(t *testing.T) {
	h := install(t)
	ran := false
	err := With("k", time.Second, 0, func() error {
		ran = true
		if _, err := Acquire("k", time.Second, 0); !errors.Is(err, ErrHeld) {
			t.Errorf("inside With, Acquire = %v, want ErrHeld", err)
		}
		return nil
	})
	if err != nil || !ran {
		t.Fatalf("With = %v, ran %v", err, ran)
	}
	if len(h.held) != 0 {
		t.Fatalf("With left locks held: %v", h.held)
	}

	// f's error comes back and the lock is released.
	boom := errors.New("boom")
	if err := With("k", time.Second, 0, func() error { return boom }); err != boom {
		t.Fatalf("With = %v, want f's error", err)
	}
	if len(h.held) != 0 {
		t.Fatal("lock held after f failed")
	}

	// A held lock: f does not run.
	other, _ := Acquire("k", time.Second, 0)
	if err := With("k", time.Second, 0, func() error { t.Error("f ran without the lock"); return nil }); !errors.Is(err, ErrHeld) {
		t.Fatalf("With on a held lock = %v, want ErrHeld", err)
	}
	other.Release()

	// The lease ran out during f.
	if err := With("k", time.Second, 0, func() error { h.expire("k"); return nil }); !errors.Is(err, ErrLost) {
		t.Fatalf("With whose lease expired = %v, want ErrLost", err)
	}

	// A panicking f still releases.
	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic did not propagate")
			}
		}()
		With("k", time.Second, 0, func() error { panic("f") })
	}()
	if len(h.held) != 0 {
		t.Fatal("lock held after f panicked")
	}
}

func TestUnavailable(t *testing.T) {
	h := install(t)
	l, _ := Acquire("k", time.Second, 0)
	h.fail = abi.ErrUnavailable
	var re *abi.ReplyError
	if _, err := Acquire("j", time.Second, 0); !errors.As(err, &re) || re.Code != abi.ErrUnavailable || errors.Is(err, ErrHeld) {
		t.Fatalf("Acquire = %v, want unavailable", err)
	}
	if _, err := l.Release(); !errors.As(err, &re) || re.Code != abi.ErrUnavailable {
		t.Fatalf("Release = %v, want unavailable", err)
	}
	if _, err := l.Extend(time.Second); !errors.As(err, &re) || re.Code != abi.ErrUnavailable {
		t.Fatalf("Extend = %v, want unavailable", err)
	}
	h.fail = 0
	// Release failing inside With is reported when f succeeded.
	err := With("w", time.Second, 0, func() error { h.mu.Lock(); h.fail = abi.ErrUnavailable; h.mu.Unlock(); return nil })
	if !errors.As(err, &re) || re.Code != abi.ErrUnavailable {
		t.Fatalf("With whose release failed = %v, want unavailable", err)
	}
}

func TestBadReply(t *testing.T) {
	t.Cleanup(testhost.Set(func(op abi.Op, _ []byte) []byte {
		return abi.AppendInt(abi.AppendReplyOK(nil), 7)
	}))
	if _, err := Acquire("k", time.Second, 0); err == nil {
		t.Fatal("Acquire accepted an int token")
	}
	l := &Lock{key: "k", token: "t"}
	if _, err := l.Release(); err == nil {
		t.Fatal("Release accepted an int reply")
	}
}
