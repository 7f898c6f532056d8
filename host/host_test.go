package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host/engine"
)

func testdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newTestRuntime(t testing.TB) *Runtime {
	t.Helper()
	rt, err := NewRuntime(RuntimeOptions{
		CacheDir: t.TempDir(),
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	return rt
}

func load(t testing.TB, rt *Runtime, name string, mod func(*PluginSpec)) *Plugin {
	t.Helper()
	spec := PluginSpec{Name: name, Wasm: testdata(t, name), Pool: DefaultPoolConfig(), Limits: DefaultLimits()}
	if mod != nil {
		mod(&spec)
	}
	p, err := rt.Load(context.Background(), spec)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	t.Cleanup(func() { p.Drain(context.Background()) })
	return p
}

func encodeReq(body string) []byte {
	return abi.AppendRequest(nil, &abi.Request{
		Method: []byte("POST"), Scheme: []byte("http"), Host: []byte("example.test"),
		Path: []byte("/echo"), RequestID: []byte("req-1"), Body: []byte(body),
		Headers: []abi.Header{{Name: []byte("X-A"), Value: []byte("1")}},
	})
}

func decodeResp(t testing.TB, b []byte) abi.Response {
	t.Helper()
	var r abi.Response
	if err := abi.DecodeResponse(b, &r); err != nil {
		t.Fatalf("decode response: %v", err)
	}
	return r
}

func TestHandleEcho(t *testing.T) {
	for _, enforced := range []bool{true, false} {
		t.Run(fmt.Sprintf("deadline_enforced=%v", enforced), func(t *testing.T) {
			rt := newTestRuntime(t)
			p := load(t, rt, "echo", func(s *PluginSpec) { s.Limits.DeadlineEnforced = enforced })
			req := encodeReq("hello there")
			out, err := p.Handle(context.Background(), req, nil)
			if err != nil {
				t.Fatal(err)
			}
			r := decodeResp(t, out)
			if r.Status != 200 || !bytes.Equal(r.Body, req) {
				t.Fatalf("got status %d body %q, want 200 and the request message", r.Status, r.Body)
			}
			if s := p.Stats(); s.Requests != 1 || s.Live != 2 || s.Idle != 2 {
				t.Fatalf("stats after one request: %+v", s)
			}
		})
	}
}

func TestConfigGetHostCall(t *testing.T) {
	rt := newTestRuntime(t)
	p := load(t, rt, "echo", func(s *PluginSpec) { s.Grants.Config = map[string]string{"greeting": "bonjour"} })
	out, err := p.Handle(context.Background(), encodeReq("config"), nil)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := abi.DecodeReply(abi.OpConfigGet, decodeResp(t, out).Body)
	if err != nil {
		t.Fatal(err)
	}
	v, err := vs.Bytes("value")
	if err != nil || string(v) != "bonjour" {
		t.Fatalf("config.get = %q, %v; want bonjour", v, err)
	}

	// Without the key granted the guest receives not_found.
	p2 := load(t, rt, "echo", nil)
	out, err = p2.Handle(context.Background(), encodeReq("config"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = abi.DecodeReply(abi.OpConfigGet, decodeResp(t, out).Body)
	var re *abi.ReplyError
	if !errors.As(err, &re) || re.Code != abi.ErrNotFound {
		t.Fatalf("config.get of an ungranted key: %v, want not_found", err)
	}
}

func TestLoadFailures(t *testing.T) {
	rt := newTestRuntime(t)
	cases := []struct {
		name    string
		wasm    []byte
		target  error
		message string
	}{
		{"badversion", testdata(t, "badversion"), engine.ErrABIVersion, "speaks wasmcorn ABI version 999; this host implements version 1"},
		{"noexports", testdata(t, "noexports"), engine.ErrMissingExport, "wasmcorn_abi_version is not exported"},
		{"badimport", testdata(t, "badimport"), nil, "imports env.mystery, which this host does not provide"},
		{"corrupt", []byte("\x00asm\x01\x00\x00\x00garbage"), nil, "compile"},
		{"notwasm", []byte("hello"), nil, "compile"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := rt.Load(context.Background(), PluginSpec{Name: c.name, Wasm: c.wasm, Pool: DefaultPoolConfig(), Limits: DefaultLimits()})
			if err == nil {
				t.Fatal("load succeeded")
			}
			if c.target != nil && !errors.Is(err, c.target) {
				t.Errorf("error %v does not wrap %v", err, c.target)
			}
			if !strings.Contains(err.Error(), c.message) || !strings.Contains(err.Error(), c.name) {
				t.Errorf("error %q should name the plugin and say %q", err, c.message)
			}
		})
	}
}

func TestInitializeUnderDeadline(t *testing.T) {
	rt := newTestRuntime(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := rt.Load(ctx, PluginSpec{Name: "initspin", Wasm: testdata(t, "initspin"), Pool: DefaultPoolConfig(), Limits: DefaultLimits()})
	if !errors.Is(err, engine.ErrInit) || !strings.Contains(err.Error(), "did not finish") {
		t.Fatalf("got %v, want ErrInit saying _initialize did not finish", err)
	}
}

func TestTrapReplacesInstance(t *testing.T) {
	rt := newTestRuntime(t)
	p := load(t, rt, "trap", nil)
	_, err := p.Handle(context.Background(), encodeReq("x"), nil)
	if !errors.Is(err, engine.ErrTrap) {
		t.Fatalf("got %v, want ErrTrap", err)
	}
	if !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("trap error should say why: %v", err)
	}
	waitFor(t, "pool back at min after the trap", func() bool { s := p.Stats(); return s.Live == 2 && s.Idle == 2 })
	if s := p.Stats(); s.Traps != 1 {
		t.Fatalf("traps = %d, want 1", s.Traps)
	}
}

func TestBadPointerTraps(t *testing.T) {
	rt := newTestRuntime(t)
	p := load(t, rt, "badptr", nil)
	_, err := p.Handle(context.Background(), encodeReq("x"), nil)
	if !errors.Is(err, engine.ErrTrap) || !strings.Contains(err.Error(), "outside memory") {
		t.Fatalf("got %v, want a trap about a region outside memory", err)
	}
}

func TestMemoryLimit(t *testing.T) {
	rt := newTestRuntime(t)
	p := load(t, rt, "membomb", func(s *PluginSpec) { s.Limits.MaxMemoryPages = 16 })
	_, err := p.Handle(context.Background(), encodeReq("x"), nil)
	if !errors.Is(err, engine.ErrTrap) {
		t.Fatalf("got %v, want ErrTrap after memory.grow failed", err)
	}
}

func TestDeadlineStopsSpinningGuest(t *testing.T) {
	rt := newTestRuntime(t)
	spin := load(t, rt, "spin", func(s *PluginSpec) { s.Limits.Timeout = 50 * time.Millisecond })
	echo := load(t, rt, "echo", nil)

	errc := make(chan error, 1)
	go func() {
		_, err := spin.Handle(context.Background(), encodeReq("x"), nil)
		errc <- err
	}()
	// While the guest spins, other plugins keep serving.
	for i := 0; i < 20; i++ {
		if _, err := echo.Handle(context.Background(), encodeReq("y"), nil); err != nil {
			t.Fatalf("echo during spin: %v", err)
		}
	}
	if err := <-errc; !errors.Is(err, engine.ErrInterrupted) {
		t.Fatalf("spin: got %v, want ErrInterrupted", err)
	}
	if s := spin.Stats(); s.Timeouts != 1 {
		t.Fatalf("timeouts = %d, want 1", s.Timeouts)
	}
	waitFor(t, "spin pool refilled", func() bool { return spin.Stats().Idle == 2 })
}

// TestGCProceedsWhileGuestSpins: a stop-the-world GC must not wait for a
// spinning guest (the loop instrumentation gives the scheduler a
// preemption point). The assertion is on order, not on time: GC returns
// while the guest is still running.
func TestGCProceedsWhileGuestSpins(t *testing.T) {
	rt := newTestRuntime(t)
	// If GC waited for the guest, it would return only after this deadline
	// stopped the guest, and the check below would see the call finished.
	spin := load(t, rt, "spin", func(s *PluginSpec) { s.Limits.Timeout = 3 * time.Second })
	if m := spin.DeadlineMode(); m != "instrumented" {
		t.Fatalf("deadline mode %q, want instrumented", m)
	}
	errc := make(chan error, 1)
	go func() { _, err := spin.Handle(context.Background(), encodeReq("x"), nil); errc <- err }()
	waitFor(t, "guest spinning", func() bool { return spin.Stats().Busy == 1 })
	time.Sleep(10 * time.Millisecond)
	runtime.GC()
	select {
	case err := <-errc:
		t.Fatalf("the guest stopped before GC returned: %v", err)
	default:
	}
	if spin.Stats().Busy != 1 {
		t.Fatal("guest no longer running after GC")
	}
	if err := <-errc; !errors.Is(err, engine.ErrInterrupted) {
		t.Fatalf("spin: %v, want ErrInterrupted", err)
	}
}

func TestPoolExhaustion(t *testing.T) {
	rt := newTestRuntime(t)
	spin := load(t, rt, "spin", func(s *PluginSpec) {
		s.Pool = PoolConfig{Min: 1, Max: 1, MaxWait: 20 * time.Millisecond}
		s.Limits.Timeout = 2 * time.Second
	})
	started := make(chan struct{})
	go func() {
		close(started)
		spin.Handle(context.Background(), encodeReq("x"), nil)
	}()
	<-started
	waitFor(t, "the only instance is busy", func() bool { return spin.Stats().Busy == 1 })
	_, err := spin.Handle(context.Background(), encodeReq("x"), nil)
	if !errors.Is(err, engine.ErrPoolExhausted) {
		t.Fatalf("got %v, want ErrPoolExhausted", err)
	}
	if s := spin.Stats(); s.Exhausted != 1 {
		t.Fatalf("exhausted = %d", s.Exhausted)
	}
}

func TestRecycleAfterMaxRequests(t *testing.T) {
	rt := newTestRuntime(t)
	p := load(t, rt, "echo", func(s *PluginSpec) { s.Pool = PoolConfig{Min: 1, Max: 1, MaxWait: time.Second, MaxRequests: 3} })
	for i := 0; i < 7; i++ {
		if _, err := p.Handle(context.Background(), encodeReq("x"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if s := p.Stats(); s.Recycled != 2 {
		t.Fatalf("recycled = %d after 7 requests with max_requests 3, want 2", s.Recycled)
	}
}

func TestResponseTooLarge(t *testing.T) {
	rt := newTestRuntime(t)
	p := load(t, rt, "echo", func(s *PluginSpec) { s.Limits.MaxResponseBytes = 150 })
	_, err := p.Handle(context.Background(), encodeReq(strings.Repeat("z", 200)), nil)
	if !errors.Is(err, engine.ErrResponseTooLarge) {
		t.Fatalf("got %v, want ErrResponseTooLarge", err)
	}
	// The instance is still good.
	if _, err := p.Handle(context.Background(), encodeReq("ok"), nil); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentNoCrossTalk hammers one pool from many goroutines; every
// response must carry its own request.
func TestConcurrentNoCrossTalk(t *testing.T) {
	rt := newTestRuntime(t)
	p := load(t, rt, "echo", func(s *PluginSpec) { s.Pool = PoolConfig{Min: 2, Max: 4, MaxWait: 5 * time.Second, MaxRequests: 50} })
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			var out []byte
			for i := 0; i < 50; i++ {
				req := encodeReq(fmt.Sprintf("goroutine %d request %d", g, i))
				var err error
				out, err = p.Handle(context.Background(), req, out)
				if err != nil {
					errs <- err
					return
				}
				var r abi.Response
				if err := abi.DecodeResponse(out, &r); err != nil || !bytes.Equal(r.Body, req) {
					errs <- fmt.Errorf("goroutine %d request %d: cross-talk or bad response (%v)", g, i, err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if s := p.Stats(); s.Live > 4 || s.Requests != 32*50 {
		t.Fatalf("stats %+v", s)
	}
}

func TestDrainWaitsForInFlight(t *testing.T) {
	rt := newTestRuntime(t)
	spin := load(t, rt, "spin", func(s *PluginSpec) { s.Limits.Timeout = 100 * time.Millisecond })
	errc := make(chan error, 1)
	go func() { _, err := spin.Handle(context.Background(), encodeReq("x"), nil); errc <- err }()
	waitFor(t, "call running", func() bool { return spin.Stats().Busy == 1 })
	if err := spin.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, engine.ErrInterrupted) {
			t.Fatalf("in-flight call: %v", err)
		}
	default:
		t.Fatal("Drain returned before the in-flight call finished")
	}
	if _, err := spin.Handle(context.Background(), encodeReq("x"), nil); !errors.Is(err, engine.ErrPoolClosed) {
		t.Fatalf("after drain: %v, want ErrPoolClosed", err)
	}
	if s := spin.Stats(); s.Live != 0 {
		t.Fatalf("live instances after drain: %d", s.Live)
	}
}

func TestHandleAllocations(t *testing.T) {
	rt := newTestRuntime(t)
	p := load(t, rt, "echo", nil)
	req := encodeReq("allocation check")
	out := make([]byte, 0, 4096)
	var err error
	allocs := testing.AllocsPerRun(200, func() {
		out, err = p.Handle(context.Background(), req, out)
	})
	if err != nil {
		t.Fatal(err)
	}
	if allocs != 0 {
		t.Fatalf("Handle allocates %.1f times per request, want 0", allocs)
	}
}

func BenchmarkHandleEcho(b *testing.B) {
	for _, enforced := range []bool{false, true} {
		b.Run(fmt.Sprintf("deadline_enforced=%v", enforced), func(b *testing.B) {
			rt := newTestRuntime(b)
			p := load(b, rt, "echo", func(s *PluginSpec) { s.Limits.DeadlineEnforced = enforced })
			req := encodeReq("benchmark")
			out := make([]byte, 0, 4096)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var err error
				if out, err = p.Handle(context.Background(), req, out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
