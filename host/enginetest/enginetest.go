// Package enginetest is the engine conformance kit: the tests every
// wasmcorn engine must pass, run through the real host (host.Runtime, its
// pools, limits, watchdog and host functions) so that an engine is judged
// by what plugins and operators see.
//
// An engine's tests call Run with its registered name (the host package
// does so for wazero, the separate host/wasmtime module for wasmtime), and
// RunPlugins to run the repository's Go example and hostile plugins, and
// the Python examples when they are built. The guests of Run are small
// hand-written WAT modules embedded from testdata (regenerate the .wasm
// files with testdata/gen.sh).
//
// Nothing here asserts a duration: deadline and GC tests assert the order
// of events. Benchmarks shared by the engines are the Bench* functions.
package enginetest

import (
	"archive/zip"
	"bytes"
	"context"
	"embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/abi/abitest"
	"github.com/wasmcorn/wasmcorn/host"
	"github.com/wasmcorn/wasmcorn/host/engine"
)

//go:embed testdata/*.wasm
var guests embed.FS

// Guest returns the embedded test module name (testdata/NAME.wat).
func Guest(t testing.TB, name string) []byte {
	t.Helper()
	b, err := guests.ReadFile("testdata/" + name + ".wasm")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// kit runs the conformance tests against one engine.
type kit struct {
	engine string
}

// Run runs the conformance tests against the engine registered under
// engineName, each as a subtest.
func Run(t *testing.T, engineName string) {
	k := kit{engine: engineName}
	tests := []struct {
		name string
		fn   func(*testing.T)
	}{
		{"HandleEcho", k.testHandleEcho},
		{"RequestVectors", k.testRequestVectors},
		{"ConfigGetHostCall", k.testConfigGetHostCall},
		{"LoadFailures", k.testLoadFailures},
		{"InitializeUnderDeadline", k.testInitializeUnderDeadline},
		{"TrapReplacesInstance", k.testTrapReplacesInstance},
		{"BadPointerTraps", k.testBadPointerTraps},
		{"StackOverflowTraps", k.testStackOverflowTraps},
		{"MemoryLimit", k.testMemoryLimit},
		{"InitialMemoryOverLimit", k.testInitialMemoryOverLimit},
		{"DeadlineStopsSpinningGuest", k.testDeadlineStopsSpinningGuest},
		{"InterruptIsPerInstance", k.testInterruptIsPerInstance},
		{"SoftDeadline", k.testSoftDeadline},
		{"GCProceedsWhileGuestSpins", k.testGCProceedsWhileGuestSpins},
		{"PoolExhaustion", k.testPoolExhaustion},
		{"RecycleAfterMaxRequests", k.testRecycleAfterMaxRequests},
		{"RecycledInstanceStartsFresh", k.testRecycledInstanceStartsFresh},
		{"ResponseTooLarge", k.testResponseTooLarge},
		{"NoJobExport", k.testNoJobExport},
		{"ConcurrentNoCrossTalk", k.testConcurrentNoCrossTalk},
		{"DrainWaitsForInFlight", k.testDrainWaitsForInFlight},
		{"ReloadUnderLoad", k.testReloadUnderLoad},
		{"CompileCache", k.testCompileCache},
		{"WASIEnvironment", k.testWASIEnvironment},
		{"WASIOutput", k.testWASIOutput},
		{"WASIDirectories", k.testWASIDirectories},
		{"BundledFiles", k.testBundledFiles},
		{"HandleAllocations", k.testHandleAllocations},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.fn)
	}
}

// NewRuntime returns a runtime whose default engine is engineName, with
// cacheDir as its compilation cache (a temporary one when empty) and
// warnings logged to stderr; it is closed when the test ends.
func NewRuntime(t testing.TB, engineName, cacheDir string, logger *slog.Logger) *host.Runtime {
	t.Helper()
	if cacheDir == "" {
		cacheDir = t.TempDir()
	}
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	rt, err := host.NewRuntime(host.RuntimeOptions{Engine: engineName, CacheDir: cacheDir, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	return rt
}

func (k kit) runtime(t testing.TB) *host.Runtime { return NewRuntime(t, k.engine, "", nil) }

// load loads guest name with the default pool and limits, changed by mod.
func load(t testing.TB, rt *host.Runtime, name string, mod func(*host.PluginSpec)) *host.Plugin {
	t.Helper()
	spec := host.PluginSpec{Name: name, Wasm: Guest(t, name), Pool: host.DefaultPoolConfig(), Limits: host.DefaultLimits()}
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

// EncodeRequest is a small POST request with body.
func EncodeRequest(body string) []byte {
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

func (k kit) testHandleEcho(t *testing.T) {
	for _, enforced := range []bool{true, false} {
		t.Run(fmt.Sprintf("deadline_enforced=%v", enforced), func(t *testing.T) {
			rt := k.runtime(t)
			p := load(t, rt, "echo", func(s *host.PluginSpec) { s.Limits.DeadlineEnforced = enforced })
			if p.Engine() != k.engine {
				t.Fatalf("plugin runs on %q, want %q", p.Engine(), k.engine)
			}
			req := EncodeRequest("hello there")
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
			mode := p.DeadlineMode()
			if enforced && (mode == "off" || mode == "unknown") || !enforced && mode != "off" {
				t.Fatalf("deadline mode %q with deadline_enforced=%v", mode, enforced)
			}
		})
	}
}

// testRequestVectors sends every request vector of the ABI through guest
// memory and back (the echo guest answers with the request message): the
// engine must deliver the bytes unchanged, whatever their size, and grow
// the request buffer through wasmcorn_alloc when one is larger.
func (k kit) testRequestVectors(t *testing.T) {
	rt := k.runtime(t)
	p := load(t, rt, "echo", func(s *host.PluginSpec) { s.Pool.Min, s.Pool.Max = 1, 1 })
	type vec struct {
		name string
		msg  []byte
	}
	var vecs []vec
	for _, v := range abitest.Generate() {
		if v.Kind != abitest.KindRequest {
			continue
		}
		b, err := v.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		vecs = append(vecs, vec{v.Name, b})
	}
	if len(vecs) == 0 {
		t.Fatal("no request vectors")
	}
	// Larger than the first request buffer (4 KiB): the engine must get a
	// bigger one from wasmcorn_alloc.
	vecs = append(vecs, vec{"request/larger-than-buffer", EncodeRequest(strings.Repeat("0123456789", 1000))})
	for _, v := range vecs {
		t.Run(v.name, func(t *testing.T) {
			out, err := p.Handle(context.Background(), v.msg, nil)
			if err != nil {
				t.Fatal(err)
			}
			r := decodeResp(t, out)
			if r.Status != 200 || !bytes.Equal(r.Body, v.msg) {
				t.Fatalf("the guest saw %x, want %x", r.Body, v.msg)
			}
		})
	}
}

func (k kit) testConfigGetHostCall(t *testing.T) {
	rt := k.runtime(t)
	p := load(t, rt, "echo", func(s *host.PluginSpec) { s.Grants.Config = map[string]string{"greeting": "bonjour"} })
	out, err := p.Handle(context.Background(), EncodeRequest("config"), nil)
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
	out, err = p2.Handle(context.Background(), EncodeRequest("config"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = abi.DecodeReply(abi.OpConfigGet, decodeResp(t, out).Body)
	var re *abi.ReplyError
	if !errors.As(err, &re) || re.Code != abi.ErrNotFound {
		t.Fatalf("config.get of an ungranted key: %v, want not_found", err)
	}
}

func (k kit) testLoadFailures(t *testing.T) {
	rt := k.runtime(t)
	cases := []struct {
		name    string
		wasm    []byte
		target  error
		message string
	}{
		{"badversion", Guest(t, "badversion"), engine.ErrABIVersion, "speaks wasmcorn ABI version 999; this host implements version 1"},
		{"noexports", Guest(t, "noexports"), engine.ErrMissingExport, "wasmcorn_abi_version is not exported"},
		{"badimport", Guest(t, "badimport"), nil, "imports env.mystery, which this host does not provide"},
		{"softbad", Guest(t, "softbad"), engine.ErrInit, "interrupt table at 0x100: entry 0 (address 0x201) unaligned or outside memory"},
		{"softoutside", Guest(t, "softoutside"), engine.ErrInit, "interrupt table at 0x100: entry 0 (address 0x10000) unaligned or outside memory"},
		{"corrupt", []byte("\x00asm\x01\x00\x00\x00garbage"), nil, "compile"},
		{"notwasm", []byte("hello"), nil, "compile"},
		{"empty", nil, nil, "compile"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, enforced := range []bool{true, false} {
				limits := host.DefaultLimits()
				limits.DeadlineEnforced = enforced
				_, err := rt.Load(context.Background(), host.PluginSpec{Name: c.name, Wasm: c.wasm, Pool: host.DefaultPoolConfig(), Limits: limits})
				if err == nil {
					t.Fatal("load succeeded")
				}
				if c.target != nil && !errors.Is(err, c.target) {
					t.Errorf("error %v does not wrap %v", err, c.target)
				}
				if !strings.Contains(err.Error(), c.message) || !strings.Contains(err.Error(), c.name) {
					t.Errorf("error %q should name the plugin and say %q", err, c.message)
				}
			}
		})
	}
}

func (k kit) testInitializeUnderDeadline(t *testing.T) {
	rt := k.runtime(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := rt.Load(ctx, host.PluginSpec{Name: "initspin", Wasm: Guest(t, "initspin"), Pool: host.DefaultPoolConfig(), Limits: host.DefaultLimits()})
	if !errors.Is(err, engine.ErrInit) || !strings.Contains(err.Error(), "did not finish") {
		t.Fatalf("got %v, want ErrInit saying _initialize did not finish", err)
	}
}

func (k kit) testTrapReplacesInstance(t *testing.T) {
	rt := k.runtime(t)
	p := load(t, rt, "trap", nil)
	_, err := p.Handle(context.Background(), EncodeRequest("x"), nil)
	if !errors.Is(err, engine.ErrTrap) {
		t.Fatalf("got %v, want ErrTrap", err)
	}
	if !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("trap error should say why: %v", err)
	}
	WaitFor(t, "pool back at min after the trap", func() bool { s := p.Stats(); return s.Live == 2 && s.Idle == 2 })
	if s := p.Stats(); s.Traps != 1 {
		t.Fatalf("traps = %d, want 1", s.Traps)
	}
}

func (k kit) testBadPointerTraps(t *testing.T) {
	rt := k.runtime(t)
	p := load(t, rt, "badptr", nil)
	_, err := p.Handle(context.Background(), EncodeRequest("x"), nil)
	if !errors.Is(err, engine.ErrTrap) || !strings.Contains(err.Error(), "outside memory") {
		t.Fatalf("got %v, want a trap about a region outside memory", err)
	}
}

func (k kit) testStackOverflowTraps(t *testing.T) {
	rt := k.runtime(t)
	for _, enforced := range []bool{true, false} {
		p := load(t, rt, "recurse", func(s *host.PluginSpec) { s.Limits.DeadlineEnforced = enforced })
		for i := 0; i < 2; i++ {
			if _, err := p.Handle(context.Background(), EncodeRequest("x"), nil); !errors.Is(err, engine.ErrTrap) {
				t.Fatalf("deadline_enforced=%v: got %v, want ErrTrap", enforced, err)
			}
		}
	}
}

func (k kit) testMemoryLimit(t *testing.T) {
	rt := k.runtime(t)
	for _, enforced := range []bool{true, false} {
		p := load(t, rt, "membomb", func(s *host.PluginSpec) {
			s.Limits.MaxMemoryPages = 16
			s.Limits.DeadlineEnforced = enforced
		})
		_, err := p.Handle(context.Background(), EncodeRequest("x"), nil)
		if !errors.Is(err, engine.ErrTrap) {
			t.Fatalf("deadline_enforced=%v: got %v, want ErrTrap after memory.grow failed", enforced, err)
		}
	}
}

// testInitialMemoryOverLimit: a module whose initial memory exceeds
// max_memory_pages fails to load with ErrInit; it must never take the host
// down.
func (k kit) testInitialMemoryOverLimit(t *testing.T) {
	rt := k.runtime(t)
	_, err := rt.Load(context.Background(), host.PluginSpec{Name: "echo", Wasm: Guest(t, "echo"),
		Pool: host.DefaultPoolConfig(), Limits: host.Limits{MaxMemoryPages: 1, Timeout: time.Second, DeadlineEnforced: true}})
	if !errors.Is(err, engine.ErrInit) {
		t.Fatalf("echo (2 pages) with a 1-page limit: %v, want ErrInit", err)
	}
}

func (k kit) testDeadlineStopsSpinningGuest(t *testing.T) {
	rt := k.runtime(t)
	spin := load(t, rt, "spin", func(s *host.PluginSpec) { s.Limits.Timeout = 50 * time.Millisecond })
	echo := load(t, rt, "echo", nil)

	errc := make(chan error, 1)
	go func() {
		_, err := spin.Handle(context.Background(), EncodeRequest("x"), nil)
		errc <- err
	}()
	// While the guest spins, other plugins keep serving.
	for i := 0; i < 20; i++ {
		if _, err := echo.Handle(context.Background(), EncodeRequest("y"), nil); err != nil {
			t.Fatalf("echo during spin: %v", err)
		}
	}
	if err := <-errc; !errors.Is(err, engine.ErrInterrupted) {
		t.Fatalf("spin: got %v, want ErrInterrupted", err)
	}
	if s := spin.Stats(); s.Timeouts != 1 {
		t.Fatalf("timeouts = %d, want 1", s.Timeouts)
	}
	WaitFor(t, "spin pool refilled", func() bool { return spin.Stats().Idle == 2 })
}

// testSoftDeadline: a guest with an interrupt table (testdata/softspin.wat)
// is asked to stop at its deadline, answers by itself and keeps its
// instance; one that ignores the request is stopped hard (softGrace later)
// and replaced; other calls keep being served meanwhile (ABI.md, "Soft
// deadlines").
func (k kit) testSoftDeadline(t *testing.T) {
	rt := k.runtime(t)
	p := load(t, rt, "softspin", func(s *host.PluginSpec) {
		s.Pool.Min, s.Pool.Max, s.Pool.MaxWait = 1, 2, 5*time.Second
		s.Limits.Timeout = 50 * time.Millisecond
	})
	call := func(method string) (int, error) {
		req := abi.AppendRequest(nil, &abi.Request{Method: []byte(method), Path: []byte("/")})
		out, err := p.Handle(context.Background(), req, nil)
		if err != nil {
			return 0, err
		}
		return int(decodeResp(t, out).Status), nil
	}
	if s, err := call("GET"); err != nil || s != 201 {
		t.Fatalf("first call: %d %v", s, err)
	}
	// Which stop ended the call is told by the status and by the instance
	// being kept, not by timing: a hard stop is an error, not the guest's 504.
	if s, err := call("SPIN"); err != nil || s != 504 {
		t.Fatalf("soft stop: %d %v, want the guest's own 504", s, err)
	}
	// Same instance (its third call), and the stale stop does not leak.
	if s, err := call("GET"); err != nil || s != 203 {
		t.Fatalf("after a soft stop: %d %v, want 203 (instance reused)", s, err)
	}
	if st := p.Stats(); st.Timeouts != 1 || st.Live != 1 {
		t.Fatalf("stats after a soft stop: %+v", st)
	}

	errc := make(chan error, 1)
	go func() {
		_, err := call("IGNORE")
		errc <- err
	}()
	// While one call ignores its stop, another instance serves.
	WaitFor(t, "the ignoring call running", func() bool { return p.Stats().Busy == 1 })
	if s, err := call("GET"); err != nil || s != 201 {
		t.Fatalf("during the grace: %d %v", s, err)
	}
	if err := <-errc; !errors.Is(err, engine.ErrInterrupted) {
		t.Fatalf("ignored stop: %v, want ErrInterrupted", err)
	}
	if st := p.Stats(); st.Timeouts != 2 {
		t.Fatalf("stats after a hard stop: %+v", st)
	}
}

// testInterruptIsPerInstance: stopping one guest at its deadline must not
// stop another guest running at the same time (on wasmtime both share the
// engine's epoch counter).
func (k kit) testInterruptIsPerInstance(t *testing.T) {
	rt := k.runtime(t)
	short := load(t, rt, "spin", func(s *host.PluginSpec) { s.Limits.Timeout = 30 * time.Millisecond })
	long := load(t, rt, "spin", func(s *host.PluginSpec) { s.Limits.Timeout = 1500 * time.Millisecond })
	longErr := make(chan error, 1)
	go func() { _, err := long.Handle(context.Background(), EncodeRequest("x"), nil); longErr <- err }()
	WaitFor(t, "long guest spinning", func() bool { return long.Stats().Busy == 1 })
	for i := 0; i < 3; i++ {
		if _, err := short.Handle(context.Background(), EncodeRequest("x"), nil); !errors.Is(err, engine.ErrInterrupted) {
			t.Fatalf("short spin: %v, want ErrInterrupted", err)
		}
	}
	select {
	case err := <-longErr:
		t.Fatalf("the long guest stopped when the short ones were interrupted: %v", err)
	default:
	}
	if err := <-longErr; !errors.Is(err, engine.ErrInterrupted) {
		t.Fatalf("long spin: %v, want ErrInterrupted", err)
	}
}

// testGCProceedsWhileGuestSpins: a stop-the-world GC must not wait for a
// spinning guest. The assertion is on order, not on time: GC returns while
// the guest is still running.
func (k kit) testGCProceedsWhileGuestSpins(t *testing.T) {
	rt := k.runtime(t)
	// If GC waited for the guest, it would return only after this deadline
	// stopped the guest, and the check below would see the call finished.
	spin := load(t, rt, "spin", func(s *host.PluginSpec) { s.Limits.Timeout = 3 * time.Second })
	if m := spin.DeadlineMode(); m != "instrumented" && m != "epoch" {
		t.Fatalf("deadline mode %q, want instrumented or epoch (modes that let GC run)", m)
	}
	errc := make(chan error, 1)
	go func() { _, err := spin.Handle(context.Background(), EncodeRequest("x"), nil); errc <- err }()
	WaitFor(t, "guest spinning", func() bool { return spin.Stats().Busy == 1 })
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

func (k kit) testPoolExhaustion(t *testing.T) {
	rt := k.runtime(t)
	spin := load(t, rt, "spin", func(s *host.PluginSpec) {
		s.Pool = host.PoolConfig{Min: 1, Max: 1, MaxWait: 20 * time.Millisecond}
		s.Limits.Timeout = 2 * time.Second
	})
	// The spinning call ends at its deadline; the plugin's cleanup (Drain)
	// waits for it.
	go spin.Handle(context.Background(), EncodeRequest("x"), nil)
	WaitFor(t, "the only instance is busy", func() bool { return spin.Stats().Busy == 1 })
	_, err := spin.Handle(context.Background(), EncodeRequest("x"), nil)
	if !errors.Is(err, engine.ErrPoolExhausted) {
		t.Fatalf("got %v, want ErrPoolExhausted", err)
	}
	if s := spin.Stats(); s.Exhausted != 1 {
		t.Fatalf("exhausted = %d", s.Exhausted)
	}
}

func (k kit) testRecycleAfterMaxRequests(t *testing.T) {
	rt := k.runtime(t)
	p := load(t, rt, "echo", func(s *host.PluginSpec) {
		s.Pool = host.PoolConfig{Min: 1, Max: 1, MaxWait: time.Second, MaxRequests: 3}
	})
	for i := 0; i < 7; i++ {
		if _, err := p.Handle(context.Background(), EncodeRequest("x"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if s := p.Stats(); s.Recycled != 2 {
		t.Fatalf("recycled = %d after 7 requests with max_requests 3, want 2", s.Recycled)
	}
	// Memory-based recycling: echo has 2 pages (128 KiB).
	q := load(t, rt, "echo", func(s *host.PluginSpec) {
		s.Pool = host.PoolConfig{Min: 1, Max: 1, MaxWait: time.Second, MaxMemoryBytes: 64 << 10}
	})
	for i := 0; i < 2; i++ {
		if _, err := q.Handle(context.Background(), EncodeRequest("x"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if s := q.Stats(); s.Recycled != 2 {
		t.Fatalf("recycled = %d with memory above max_memory_bytes, want 2", s.Recycled)
	}
}

// testRecycledInstanceStartsFresh: guest state persists between the calls
// of one instance and never reaches the next one, even when the engine
// hands the next instance the closed one's memory (testdata/counter.wat
// counts in its data image and in zeroed memory past it).
func (k kit) testRecycledInstanceStartsFresh(t *testing.T) {
	rt := k.runtime(t)
	p := load(t, rt, "counter", func(s *host.PluginSpec) {
		s.Pool = host.PoolConfig{Min: 1, Max: 1, MaxWait: 5 * time.Second, MaxRequests: 3}
	})
	for i := range 10 {
		out, err := p.Handle(context.Background(), EncodeRequest("x"), nil)
		if err != nil {
			t.Fatal(err)
		}
		var resp abi.Response
		if err := abi.DecodeResponse(out, &resp); err != nil {
			t.Fatal(err)
		}
		if resp.Status != 200 || len(resp.Body) != 8 {
			t.Fatalf("call %d: status %d, body %x", i, resp.Status, resp.Body)
		}
		inImage, pastImage := binary.LittleEndian.Uint32(resp.Body), binary.LittleEndian.Uint32(resp.Body[4:])
		n := uint32(i%3 + 1) // the instance's own call count
		if inImage != 100+n || pastImage != n {
			t.Fatalf("call %d: counters %d and %d, want %d and %d (state leaked between instances)", i, inImage, pastImage, 100+n, n)
		}
	}
	if s := p.Stats(); s.Recycled != 3 {
		t.Fatalf("recycled = %d after 10 requests with max_requests 3, want 3", s.Recycled)
	}
}

func (k kit) testResponseTooLarge(t *testing.T) {
	rt := k.runtime(t)
	p := load(t, rt, "echo", func(s *host.PluginSpec) { s.Limits.MaxResponseBytes = 150 })
	_, err := p.Handle(context.Background(), EncodeRequest(strings.Repeat("z", 200)), nil)
	if !errors.Is(err, engine.ErrResponseTooLarge) {
		t.Fatalf("got %v, want ErrResponseTooLarge", err)
	}
	// The instance is still good.
	if _, err := p.Handle(context.Background(), EncodeRequest("ok"), nil); err != nil {
		t.Fatal(err)
	}
}

func (k kit) testNoJobExport(t *testing.T) {
	rt := k.runtime(t)
	p := load(t, rt, "echo", nil)
	if p.HasJobs() {
		t.Fatal("echo reports a job export")
	}
	if _, err := p.RunJob(context.Background(), &abi.Job{Queue: []byte("q"), ID: []byte("j1")}); !errors.Is(err, engine.ErrMissingExport) {
		t.Fatalf("RunJob without a job export: %v, want ErrMissingExport", err)
	}
}

// testConcurrentNoCrossTalk hammers one pool from many goroutines; every
// response must carry its own request.
func (k kit) testConcurrentNoCrossTalk(t *testing.T) {
	rt := k.runtime(t)
	p := load(t, rt, "echo", func(s *host.PluginSpec) {
		s.Pool = host.PoolConfig{Min: 2, Max: 4, MaxWait: 5 * time.Second, MaxRequests: 50}
	})
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			var out []byte
			for i := 0; i < 50; i++ {
				req := EncodeRequest(fmt.Sprintf("goroutine %d request %d", g, i))
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

func (k kit) testDrainWaitsForInFlight(t *testing.T) {
	rt := k.runtime(t)
	spin := load(t, rt, "spin", func(s *host.PluginSpec) { s.Limits.Timeout = 100 * time.Millisecond })
	errc := make(chan error, 1)
	go func() { _, err := spin.Handle(context.Background(), EncodeRequest("x"), nil); errc <- err }()
	WaitFor(t, "call running", func() bool { return spin.Stats().Busy == 1 })
	if err := spin.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The call has ended inside the pool (Busy is decremented before the
	// pool lets Drain go); its goroutine may not have delivered the error
	// yet, so errc is read after this check, not polled.
	if s := spin.Stats(); s.Busy != 0 {
		t.Fatalf("Drain returned before the in-flight call finished: %+v", s)
	}
	if err := <-errc; !errors.Is(err, engine.ErrInterrupted) {
		t.Fatalf("in-flight call: %v", err)
	}
	if _, err := spin.Handle(context.Background(), EncodeRequest("x"), nil); !errors.Is(err, engine.ErrPoolClosed) {
		t.Fatalf("after drain: %v, want ErrPoolClosed", err)
	}
	if s := spin.Stats(); s.Live != 0 {
		t.Fatalf("live instances after drain: %d", s.Live)
	}
}

// testReloadUnderLoad does what a hot reload does to the engine: load the
// new version while the old one serves, switch, drain the old. Every
// request is served by one version or the other.
func (k kit) testReloadUnderLoad(t *testing.T) {
	rt := k.runtime(t)
	var cur struct {
		sync.RWMutex
		p *host.Plugin
	}
	loadVersion := func() *host.Plugin {
		p, err := rt.Load(context.Background(), host.PluginSpec{Name: "echo", Wasm: Guest(t, "echo"),
			Pool: host.PoolConfig{Min: 1, Max: 4, MaxWait: 5 * time.Second}, Limits: host.DefaultLimits()})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	cur.p = loadVersion()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := EncodeRequest("reload")
			var out []byte
			for {
				select {
				case <-stop:
					return
				default:
				}
				cur.RLock()
				p := cur.p
				var err error
				out, err = p.Handle(context.Background(), req, out)
				cur.RUnlock()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := 0; i < 5; i++ {
		next := loadVersion()
		cur.Lock()
		old := cur.p
		cur.p = next
		cur.Unlock()
		if err := old.Drain(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := cur.p.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// testCompileCache loads a module in a runtime whose cache an earlier
// runtime filled: it must load (from the cache) and serve the same way.
func (k kit) testCompileCache(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 2; i++ {
		rt, err := host.NewRuntime(host.RuntimeOptions{Engine: k.engine, CacheDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		p, err := rt.Load(context.Background(), host.PluginSpec{Name: "echo", Wasm: Guest(t, "echo"), Pool: host.DefaultPoolConfig(), Limits: host.DefaultLimits()})
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		req := EncodeRequest(fmt.Sprintf("run %d", i))
		out, err := p.Handle(context.Background(), req, nil)
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if r := decodeResp(t, out); !bytes.Equal(r.Body, req) {
			t.Fatalf("run %d: body %q", i, r.Body)
		}
		p.Drain(context.Background())
		rt.Close(context.Background())
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		t.Fatalf("the compilation cache %s stayed empty (%v)", dir, err)
	}
}

func (k kit) testWASIEnvironment(t *testing.T) {
	rt := k.runtime(t)
	env := map[string]string{"APP_MODE": "test", "GREETING": "hello world", "EMPTY": ""}
	p := load(t, rt, "wasi", func(s *host.PluginSpec) { s.Env = env })
	out, err := p.Handle(context.Background(), EncodeRequest("envv"), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := decodeResp(t, out)
	if r.Status != 200 {
		t.Fatalf("status %d body %x", r.Status, r.Body)
	}
	got := strings.Split(strings.TrimSuffix(string(r.Body), "\x00"), "\x00")
	want := []string{"APP_MODE=test", "EMPTY=", "GREETING=hello world"}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("guest environment %q, want exactly %q", got, want)
	}
}

func (k kit) testWASIOutput(t *testing.T) {
	logs := &logBuffer{}
	rt := NewRuntime(t, k.engine, "", slog.New(logs))
	p := load(t, rt, "wasi", nil)
	out, err := p.Handle(context.Background(), EncodeRequest("prnt"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := decodeResp(t, out); r.Status != 200 {
		t.Fatalf("status %d body %x", r.Status, r.Body)
	}
	var got []string
	for _, r := range logs.records() {
		if stream := attrOf(r, "stream"); stream != "" {
			got = append(got, stream+" "+r.Level.String()+" "+r.Message)
		}
	}
	want := []string{"stdout INFO out line 1", "stdout INFO out line 2", "stderr WARN err line"}
	if !slices.Equal(got, want) {
		t.Fatalf("guest output logged as %q, want %q", got, want)
	}
}

func (k kit) testWASIDirectories(t *testing.T) {
	rt := k.runtime(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte("granted file"), 0o644); err != nil {
		t.Fatal(err)
	}
	do := func(p *host.Plugin, action string) abi.Response {
		t.Helper()
		out, err := p.Handle(context.Background(), EncodeRequest(action), nil)
		if err != nil {
			t.Fatalf("%s: %v", action, err)
		}
		return decodeResp(t, out)
	}

	ro := load(t, rt, "wasi", func(s *host.PluginSpec) {
		s.Dirs = []engine.DirGrant{{GuestPath: "/data", HostPath: dir}}
	})
	if r := do(ro, "read"); r.Status != 200 || string(r.Body) != "granted file" {
		t.Fatalf("read from a read-only grant: %d %q", r.Status, r.Body)
	}
	if r := do(ro, "writ"); r.Status != 500 {
		t.Fatalf("creating a file in a read-only grant: status %d, want a WASI error", r.Status)
	}
	if _, err := os.Stat(filepath.Join(dir, "out.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a read-only grant let the guest create a file (%v)", err)
	}

	rw := load(t, rt, "wasi", func(s *host.PluginSpec) {
		s.Dirs = []engine.DirGrant{{GuestPath: "/data", HostPath: dir, ReadWrite: true}}
	})
	if r := do(rw, "writ"); r.Status != 200 {
		t.Fatalf("write to a read-write grant: %d %x", r.Status, r.Body)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "out.txt")); err != nil || string(b) != "written" {
		t.Fatalf("out.txt = %q, %v", b, err)
	}
	// The guest cannot leave a read-write grant through a symbolic link it
	// makes there (esc -> ../../../../../../../../etc): an engine refuses
	// to make it (wazero, which would follow it) or to follow it out of
	// the grant (wasmtime).
	if r := do(rw, "syml"); r.Status != 200 && r.Status != 500 {
		t.Fatalf("symlink: status %d", r.Status)
	}
	if r := do(rw, "rdes"); r.Status != 500 {
		t.Errorf("reading esc/passwd through a link the guest made: status %d, %d bytes; want a WASI error", r.Status, len(r.Body))
	}

	none := load(t, rt, "wasi", nil)
	if r := do(none, "read"); r.Status != 500 {
		t.Fatalf("read without a grant: status %d, want a WASI error", r.Status)
	}
}

// WithFiles returns wasm with a wasmcorn.files custom section holding
// files (name -> contents), as the Python plugin builder makes them.
func WithFiles(t testing.TB, wasm []byte, files map[string]string) []byte {
	t.Helper()
	var z bytes.Buffer
	zw := zip.NewWriter(&z)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, files[name])
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	uleb := func(b []byte, v int) []byte {
		for {
			c := byte(v & 0x7f)
			v >>= 7
			if v == 0 {
				return append(b, c)
			}
			b = append(b, c|0x80)
		}
	}
	const name = "wasmcorn.files"
	payload := append(uleb(nil, len(name)), name...)
	payload = append(payload, z.Bytes()...)
	out := append(bytes.Clone(wasm), 0) // custom section
	out = uleb(out, len(payload))
	return append(out, payload...)
}

// testBundledFiles: a module's files section is mounted read-only at
// /wasmcorn as the first preopened directory (fd 3), before any granted
// directory.
func (k kit) testBundledFiles(t *testing.T) {
	rt := k.runtime(t)
	wasm := WithFiles(t, Guest(t, "wasi"), map[string]string{"in.txt": "bundled file", "lib/mod.py": "x = 1\n"})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte("granted file"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dirs := range [][]engine.DirGrant{nil, {{GuestPath: "/data", HostPath: dir, ReadWrite: true}}} {
		p, err := rt.Load(context.Background(), host.PluginSpec{Name: "files", Wasm: wasm, Dirs: dirs,
			Pool: host.DefaultPoolConfig(), Limits: host.DefaultLimits()})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			action string
			status uint32
			body   string
		}{{"read", 200, "bundled file"}, {"writ", 500, ""}} {
			out, err := p.Handle(context.Background(), EncodeRequest(c.action), nil)
			if err != nil {
				t.Fatal(err)
			}
			r := decodeResp(t, out)
			if r.Status != c.status || (c.body != "" && string(r.Body) != c.body) {
				t.Fatalf("%s with %d granted dirs: status %d body %q, want %d %q", c.action, len(dirs), r.Status, r.Body, c.status, c.body)
			}
		}
		if err := p.Drain(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "out.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a write through fd 3 reached the granted directory (%v)", err)
	}
}

func (k kit) testHandleAllocations(t *testing.T) {
	rt := k.runtime(t)
	p := load(t, rt, "echo", nil)
	req := EncodeRequest("allocation check")
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
	// A host call (config.get) must not allocate either.
	p2 := load(t, rt, "echo", func(s *host.PluginSpec) { s.Grants.Config = map[string]string{"greeting": "hi"} })
	req = EncodeRequest("config")
	allocs = testing.AllocsPerRun(200, func() {
		out, err = p2.Handle(context.Background(), req, out)
	})
	if err != nil {
		t.Fatal(err)
	}
	if allocs != 0 {
		t.Fatalf("Handle with a host call allocates %.1f times per request, want 0", allocs)
	}
}

// WaitFor polls cond every 2ms for up to 10s and fails the test if it never
// holds.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// BenchHandleEcho measures one request through Plugin.Handle on the echo
// guest (no host call): pool, engine call, copies.
func BenchHandleEcho(b *testing.B, engineName string, enforced bool) {
	benchGuest(b, engineName, enforced, "echo", EncodeRequest("benchmark"), nil)
}

// BenchHostCall measures one request making one host call (config.get).
func BenchHostCall(b *testing.B, engineName string, enforced bool) {
	benchGuest(b, engineName, enforced, "echo", EncodeRequest("config"), func(s *host.PluginSpec) {
		s.Grants.Config = map[string]string{"greeting": "hi"}
	})
}

func benchGuest(b *testing.B, engineName string, enforced bool, name string, req []byte, mod func(*host.PluginSpec)) {
	rt := NewRuntime(b, engineName, "", nil)
	p := load(b, rt, name, func(s *host.PluginSpec) {
		s.Limits.DeadlineEnforced = enforced
		if mod != nil {
			mod(s)
		}
	})
	out := make([]byte, 0, 4096)
	var err error
	Loop(b, func() {
		if out, err = p.Handle(context.Background(), req, out); err != nil {
			b.Fatal(err)
		}
	})
}
