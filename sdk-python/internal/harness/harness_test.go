package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/abi/abitest"
	"github.com/wasmcorn/wasmcorn/sdk-python/bundlefs"
)

// The tests build the plugin in testdata/app with the real tool against
// the runtime of `make python-runtime`; without the runtime they skip.

var (
	buildOnce sync.Once
	built     map[string][]byte // wizer mode -> plugin bytes
	buildErr  error
)

func buildPlugin(t testing.TB, wizer string) []byte {
	return buildApp(t, "testdata/app", wizer)
}

func buildApp(t testing.TB, dir, wizer string) []byte {
	t.Helper()
	rtDir, err := RuntimeDir()
	if err != nil {
		t.Skip(err.Error())
	}
	buildOnce.Do(func() { built = map[string][]byte{} })
	if b, ok := built[dir+" "+wizer]; ok {
		return b
	}
	out := filepath.Join(t.TempDir(), "app.wasm")
	tool := filepath.Join(rtDir, "..", "..", "tools", "wasmcorn_py.py")
	cmd := exec.Command("/usr/bin/python3.11", tool, "build", dir, "-o", out, "--runtime", rtDir, "--wizer", wizer)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build plugin: %v\n%s", err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	built[dir+" "+wizer] = b
	return b
}

func cacheDir() string { return filepath.Join(os.TempDir(), "wasmcorn-harness-cache") }

type fixture struct {
	host *Host
	rt   *Runtime
	p    *Plugin
}

func newFixture(t testing.TB, wizer string, guarded bool) *fixture {
	t.Helper()
	return newAppFixture(t, buildPlugin(t, wizer), guarded)
}

func newAppFixture(t testing.TB, wasm []byte, guarded bool) *fixture {
	t.Helper()
	ctx := context.Background()
	h := NewHost(map[string]string{"greeting": "hej"})
	rt, err := NewRuntime(ctx, h, cacheDir(), guarded)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(ctx) })
	p, err := rt.Compile(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{host: h, rt: rt, p: p}
}

func (f *fixture) instance(t testing.TB) *Instance {
	t.Helper()
	in, err := f.p.Instantiate(context.Background())
	if err != nil {
		t.Fatalf("instantiate: %v\nstderr: %s", err, f.p.Stderr)
	}
	t.Cleanup(func() { in.Close(context.Background()) })
	return in
}

func do(t testing.TB, in *Instance, req []byte) (*abi.Response, map[string]any) {
	t.Helper()
	out, err := in.Call(context.Background(), abi.ExportHandle, req)
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	var r abi.Response
	if err := abi.DecodeResponse(out, &r); err != nil {
		t.Fatalf("decode response: %v", err)
	}
	var body map[string]any
	if bytes.HasPrefix(r.Body, []byte("{")) {
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatalf("response body %q: %v", r.Body, err)
		}
	}
	return &r, body
}

func header(r *abi.Response, name string) string {
	for _, h := range r.Headers {
		if strings.EqualFold(string(h.Name), name) {
			return string(h.Value)
		}
	}
	return ""
}

func TestRoutes(t *testing.T) {
	f := newFixture(t, "off", false)
	in := f.instance(t)
	tests := []struct {
		name   string
		req    []byte
		status uint32
		body   string
	}{
		{"json", Get("/hello"), 200, `{"message":"hello"}`},
		{"not found", Get("/nope"), 404, "Not Found"},
		{"config", Get("/config"), 200, `{"greeting":"hej","missing":"dflt"}`},
		{"handled error", Get("/boom?d=2"), 200, `{"ratio":0.5}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := do(t, in, tt.req)
			if r.Status != tt.status || string(r.Body) != tt.body {
				t.Fatalf("got %d %q, want %d %q", r.Status, r.Body, tt.status, tt.body)
			}
		})
	}
}

// TestSplitModuleIsTheRuntime: without wizer, a plugin minus its files is
// byte for byte the runtime, so a host that compiles the split module
// compiles the interpreter once for every such plugin.
func TestSplitModuleIsTheRuntime(t *testing.T) {
	wasm := buildPlugin(t, "off")
	rtDir, _ := RuntimeDir()
	runtimeWasm, err := os.ReadFile(filepath.Join(rtDir, "wasmcorn-python.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	module, files, err := bundlefs.Split(wasm)
	if err != nil || files == nil {
		t.Fatalf("Split: %v (files %d bytes)", err, len(files))
	}
	if !bytes.Equal(module, runtimeWasm) {
		t.Fatalf("split module (%d bytes) differs from the runtime (%d bytes)", len(module), len(runtimeWasm))
	}
}

func TestExceptionIsLogged500(t *testing.T) {
	f := newFixture(t, "off", false)
	in := f.instance(t)
	r, _ := do(t, in, Get("/boom"))
	if r.Status != 500 || string(r.Body) != "Internal Server Error" {
		t.Fatalf("got %d %q", r.Status, r.Body)
	}
	logs := f.host.Logs()
	if len(logs) == 0 {
		t.Fatal("no log record")
	}
	rec := logs[len(logs)-1]
	if rec.Level != abi.LevelError || rec.Msg != "unhandled exception in handler" {
		t.Fatalf("log = %+v", rec)
	}
	tb := rec.Attrs["traceback"]
	// The app's frame, with its source line: the app ships its .py files.
	for _, want := range []string{`File "/wasmcorn/app/app.py", line`, `in boom`, `return {"ratio": 1 / int(`, "ZeroDivisionError: division by zero"} {
		if !strings.Contains(tb, want) {
			t.Errorf("traceback lacks %q:\n%s", want, tb)
		}
	}
	// The instance keeps serving.
	if r, _ := do(t, in, Get("/hello")); r.Status != 200 {
		t.Fatalf("after an exception: %d", r.Status)
	}
}

func TestHostCalls(t *testing.T) {
	f := newFixture(t, "off", false)
	in := f.instance(t)
	for _, size := range []int{0, 100 << 10} { // 100 KiB: over the shim's 16 KiB reply buffer
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			r, body := do(t, in, Get(fmt.Sprintf("/cache?k=k%d&v=%s&size=%d", size, map[bool]string{true: "small"}[size == 0], size)))
			if r.Status != 200 || body["same"] != true || body["missing"] != nil {
				t.Fatalf("got %d %s", r.Status, r.Body)
			}
		})
	}
}

// TestHostCallValues runs host-call values through the shim's C codec
// (call_values) and through wasmcorn._abi, the reference: every value
// type, the types C leaves to Python (an IntEnum, a str subclass, a lone
// surrogate, bytearray, memoryview, ints past i64), arguments over the
// 64 KiB buffer the shim keeps between calls, replies over the
// shim's 16 KiB reply buffer, and malformed or error replies, which must
// raise exactly what the Python codec raises.
func TestHostCallValues(t *testing.T) {
	const echo, bad = 0x70, 0x71
	f := newFixture(t, "off", false)
	f.host.Handle(echo, func(args []abi.Value) []byte {
		r := abi.AppendReplyOK(nil)
		for _, v := range args {
			r = abi.AppendValue(r, v)
		}
		return r
	})
	badReplies := []struct {
		reply []byte
		want  string
	}{
		{[]byte{0, 9}, "ABIError: abi: unknown value kind 9 at offset 1"},
		{[]byte{0, 3, 5, 0, 0, 0, 'a'}, "ShortError: abi: message truncated: string of 5 bytes at offset 1, 1 remain"},
		{[]byte{0, 5, 2}, "ABIError: abi: bool byte 2 at offset 1 is not 0 or 1"},
		{[]byte{0, 1, 1, 2, 3}, "ShortError: abi: message truncated: int value at offset 1"},
		{[]byte{}, "ShortError: decode op(0x71) reply: abi: message truncated: empty"},
		{abi.AppendReplyError(nil, abi.ErrConflict, "held"), "Conflict: "},
	}
	f.host.Handle(bad, func(args []abi.Value) []byte { return badReplies[args[0].I].reply })
	in := f.instance(t)
	r, body := do(t, in, Get(fmt.Sprintf("/values?echo=%d&bad=%d&bad_cases=%d", echo, bad, len(badReplies))))
	if r.Status != 200 {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	if body["c"] != true {
		t.Error("the runtime has no _wasmcorn.call_values")
	}
	cases, _ := body["cases"].([]any)
	if len(cases) != 9 {
		t.Fatalf("%d cases, want 9: %s", len(cases), r.Body)
	}
	for i, c := range cases {
		c := c.(map[string]any)
		if c["fast"] != c["ref"] || c["types"] != true {
			t.Errorf("case %d: C codec %v, Python codec %v (same types: %v)", i, c["fast"], c["ref"], c["types"])
		}
	}
	errs, _ := body["errors"].([]any)
	if len(errs) != len(badReplies)+1 {
		t.Fatalf("errors %v", errs)
	}
	for i, br := range badReplies {
		if got, _ := errs[i].(string); !strings.HasPrefix(got, br.want) {
			t.Errorf("reply %x raised %q, want %q...", br.reply, got, br.want)
		}
	}
	if got, _ := errs[len(badReplies)].(string); !strings.HasPrefix(got, "OverflowError: int 9223372036854775808 does not fit") {
		t.Errorf("2**63 raised %q", got)
	}
}

func TestResponseHeaderEncoding(t *testing.T) {
	f := newFixture(t, "off", false)
	in := f.instance(t)
	r, _ := do(t, in, Get("/header"))
	if got := header(r, "X-Latin"); got != "caf\xe9" {
		t.Errorf("X-Latin = %q, want Latin-1 bytes", got)
	}
	if got := header(r, "X-Wide"); got != "\u8def" {
		t.Errorf("X-Wide = %q, want UTF-8 bytes", got)
	}
	// A path that is not UTF-8 (the server percent-decoded /moved/%FF)
	// echoed into a header goes back as its bytes, not a 500.
	r, _ = do(t, in, Get("/moved/\xff"))
	if r.Status != 302 || header(r, "Location") != "/moved/\xff/" {
		t.Errorf("redirect to a non-UTF-8 path: %d, Location %q", r.Status, header(r, "Location"))
	}
}

// TestRequestVectors sends the ABI's request vectors through the guest's C
// decoder: valid ones must arrive as decoded, malformed ones get a 400.
func TestRequestVectors(t *testing.T) {
	vs, err := abitest.Load("../../../abi/testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, "off", false)
	in := f.instance(t)
	n := 0
	for _, v := range vs {
		if v.Kind != abitest.KindRequest {
			continue
		}
		t.Run(v.Name, func(t *testing.T) {
			msg, _ := v.Bytes()
			if v.Error != "" {
				if r, _ := do(t, in, msg); r.Status != 400 {
					t.Fatalf("malformed request answered %d", r.Status)
				}
				return
			}
			var req abi.Request
			if err := abi.DecodeRequest(msg, &req); err != nil {
				t.Fatal(err)
			}
			// Route it to /echo/ keeping everything else as in the vector.
			req.Path = append([]byte("/echo/v"), req.Path...)
			r, body := do(t, in, abi.AppendRequest(nil, &req))
			if r.Status != 200 {
				t.Fatalf("status %d: %s", r.Status, r.Body)
			}
			latin1 := func(b []byte) string {
				rs := make([]rune, len(b))
				for i, c := range b {
					rs[i] = rune(c)
				}
				return string(rs)
			}
			want := map[string]any{
				"method": latin1(req.Method), "scheme": latin1(req.Scheme), "host": latin1(req.Host),
				"raw_path": fmt.Sprintf("%x", req.Path), "query": latin1(req.RawQuery),
				"remote": latin1(req.RemoteAddr), "request_id": latin1(req.RequestID),
				"body": fmt.Sprintf("%x", req.Body),
			}
			for k, w := range want {
				if body[k] != w {
					t.Errorf("%s = %q, want %q", k, body[k], w)
				}
			}
			hs, _ := body["headers"].([]any)
			if len(hs) != len(req.Headers) {
				t.Fatalf("%d headers, want %d", len(hs), len(req.Headers))
			}
			for i, h := range req.Headers {
				pair := hs[i].([]any)
				if pair[0] != latin1(h.Name) || pair[1] != latin1(h.Value) {
					t.Errorf("header %d = %q, want %q: %q", i, pair, h.Name, h.Value)
				}
			}
		})
		n++
	}
	if n == 0 {
		t.Fatal("no request vectors")
	}
}

func TestJobs(t *testing.T) {
	f := newFixture(t, "off", false)
	in := f.instance(t)
	run := func(queue, payload string) abi.JobResult {
		out, err := in.Call(context.Background(), abi.ExportJob,
			abi.AppendJob(nil, &abi.Job{Queue: []byte(queue), ID: []byte("j1"), Attempt: 1, Payload: []byte(payload)}))
		if err != nil {
			t.Fatal(err)
		}
		var r abi.JobResult
		if err := abi.DecodeJobResult(out, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := run("work", `{"n": 21}`); r.Status != abi.JobOK {
		t.Fatalf("ok job: %+v", r)
	}
	if r := run("work", `{"fail": true}`); r.Status != abi.JobFail || string(r.Error) != "told to fail" {
		t.Fatalf("failing job: %d %q", r.Status, r.Error)
	}
	if r := run("work", `{}`); r.Status != abi.JobRetry || !strings.Contains(string(r.Error), "KeyError") {
		t.Fatalf("crashing job: %d %q", r.Status, r.Error)
	}
	if r := run("other", `{}`); r.Status != abi.JobFail {
		t.Fatalf("unknown queue: %d %q", r.Status, r.Error)
	}
}

// TestSoftDeadline: the host sets the guest's interrupt flag while a
// handler spins; CPython raises DeadlineExceeded at its next eval-breaker
// check, the SDK answers 504 and the instance stays usable.
func TestSoftDeadline(t *testing.T) {
	f := newFixture(t, "off", false)
	in := f.instance(t)
	for i := 0; i < 3; i++ {
		timer := time.AfterFunc(50*time.Millisecond, func() { in.Interrupt() })
		r, _ := do(t, in, Get("/spin"))
		timer.Stop()
		if r.Status != 504 {
			t.Fatalf("spin %d: status %d", i, r.Status)
		}
		if r, _ := do(t, in, Get("/hello")); r.Status != 200 {
			t.Fatalf("after a soft stop: %d", r.Status)
		}
	}
	if logs := f.host.Logs(); logs[len(logs)-1].Msg != "handler stopped at its deadline" {
		t.Fatalf("last log: %+v", logs[len(logs)-1])
	}
	// A flag set between calls does not leak into the next call.
	in.Interrupt()
	if r, _ := do(t, in, Get("/hello")); r.Status != 200 {
		t.Fatalf("stale flag: %d", r.Status)
	}
}

// TestHardDeadline: code the soft stop cannot reach (a long C call, or a
// handler swallowing the exception) is stopped by the engine.
func TestHardDeadline(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the runtime a second time")
	}
	f := newFixture(t, "off", true)
	for _, path := range []string{"/spin-c", "/swallow"} {
		t.Run(path, func(t *testing.T) {
			in := f.instance(t)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			timer := time.AfterFunc(100*time.Millisecond, func() { in.Interrupt() })
			defer timer.Stop()
			_, err := in.Call(ctx, abi.ExportHandle, Get(path))
			if err == nil || !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				t.Fatalf("call returned %v; want the engine to stop it at the deadline", err)
			}
		})
	}
}

func TestRandomIsPerInstance(t *testing.T) {
	for _, mode := range wizerModes(t) {
		t.Run("wizer="+mode, func(t *testing.T) {
			f := newFixture(t, mode, false)
			_, a := do(t, f.instance(t), Get("/random"))
			_, b := do(t, f.instance(t), Get("/random"))
			if a["random"] == b["random"] {
				t.Fatalf("two instances drew the same random number %v", a["random"])
			}
		})
	}
}

func TestEnvironment(t *testing.T) {
	for _, mode := range wizerModes(t) {
		t.Run("wizer="+mode, func(t *testing.T) {
			f := newFixture(t, mode, false)
			f.p.Env = map[string]string{"WASMCORN_TEST": "from-host"}
			if _, body := do(t, f.instance(t), Get("/env")); body["value"] != "from-host" {
				t.Fatalf("os.environ sees %v", body["value"])
			}
		})
	}
}

func wizerModes(t *testing.T) []string {
	if testing.Short() {
		return []string{"off"}
	}
	if _, err := exec.LookPath(wizerPath()); err != nil {
		t.Logf("wizer not installed (make python-wizer): testing without pre-initialization only")
		return []string{"off"}
	}
	return []string{"off", "on"}
}

func wizerPath() string {
	if p := os.Getenv("WASMCORN_WIZER"); p != "" {
		return p
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "wasmcorn", "wizer", "node_modules", ".bin", "wizer")
}

// TestMeasure reports the numbers of the issue (no thresholds: the machine
// is shared): instance-ready time, per-request guest time, RSS per idle
// instance, with and without wizer. Times are given as wall time and as
// the CPU time of the calling thread, which other processes competing for
// the CPU do not inflate.
func TestMeasure(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	for _, mode := range wizerModes(t) {
		t.Run("wizer="+mode, func(t *testing.T) {
			f := newFixture(t, mode, false)
			ctx := context.Background()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			const n = 20
			insts := make([]*Instance, 0, n)
			settle()
			before := RSSBytes()
			cpu0, wall0 := ThreadCPU(), time.Now()
			for i := 0; i < n; i++ {
				in, err := f.p.Instantiate(ctx)
				if err != nil {
					t.Fatal(err)
				}
				insts = append(insts, in)
			}
			readyCPU, readyWall := (ThreadCPU()-cpu0)/n, time.Since(wall0)/n
			settle()
			after := RSSBytes()
			in := insts[0]
			req := Get("/hello")
			for i := 0; i < 200; i++ {
				do(t, in, req)
			}
			const reqs = 5000
			cpu0, wall0 = ThreadCPU(), time.Now()
			for i := 0; i < reqs; i++ {
				if _, err := in.Call(ctx, abi.ExportHandle, req); err != nil {
					t.Fatal(err)
				}
			}
			reqCPU, reqWall := (ThreadCPU()-cpu0)/reqs, time.Since(wall0)/reqs
			t.Logf("wizer=%s: instance ready %v CPU (%v wall); per request %v CPU (%v wall); "+
				"RSS per idle instance %.2f MiB; linear memory %d KiB",
				mode, readyCPU, readyWall, reqCPU, reqWall, float64(after-before)/n/(1<<20), in.MemoryBytes()>>10)
			for _, in := range insts {
				in.Close(ctx)
			}
		})
	}
}

// settle returns freed Go heap to the OS so RSS deltas count instances.
func settle() {
	runtime.GC()
	debug.FreeOSMemory()
}

func BenchmarkHandleHello(b *testing.B) {
	f := newFixture(b, "off", false)
	in := f.instance(b)
	req := Get("/hello")
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := in.Call(ctx, abi.ExportHandle, req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkInstantiate(b *testing.B) {
	for _, mode := range []string{"off", "on"} {
		b.Run("wizer="+mode, func(b *testing.B) {
			if mode == "on" {
				if _, err := exec.LookPath(wizerPath()); err != nil {
					b.Skip("wizer not installed")
				}
			}
			f := newFixture(b, mode, false)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				in, err := f.p.Instantiate(ctx)
				if err != nil {
					b.Fatal(err)
				}
				in.Close(ctx)
			}
		})
	}
}

// FuzzGuestRequest sends arbitrary request messages to the guest: the C
// decoder must agree with abi.DecodeRequest (malformed: 400), and the guest
// must always answer with a well-formed response and never trap.
func FuzzGuestRequest(f *testing.F) {
	vs, err := abitest.Load("../../../abi/testdata/vectors.json")
	if err != nil {
		f.Fatal(err)
	}
	for _, v := range vs {
		if v.Kind == abitest.KindRequest {
			b, _ := v.Bytes()
			f.Add(b)
		}
	}
	f.Add(Get("/hello"))
	fx := newFixture(f, "off", false)
	in, err := fx.p.Instantiate(context.Background())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		out, err := in.Call(context.Background(), abi.ExportHandle, msg)
		if err != nil {
			t.Fatalf("guest failed: %v", err)
		}
		var r abi.Response
		if err := abi.DecodeResponse(out, &r); err != nil {
			t.Fatalf("malformed response: %v", err)
		}
		var req abi.Request
		if abi.DecodeRequest(msg, &req) != nil && r.Status != 400 {
			t.Fatalf("malformed request answered %d", r.Status)
		}
		if r.Status == 500 {
			t.Fatalf("request %x: 500 %v", msg, fx.host.Logs())
		}
	})
}

// TestDjangoWSGI serves a minimal Django project (Debian's python3-django,
// no database) through the WSGI bridge. Debian's pytz reads the time-zone
// database from /usr/share/zoneinfo, so the host grants it read-only.
func TestDjangoWSGI(t *testing.T) {
	if testing.Short() {
		t.Skip("bundles Django")
	}
	if _, err := os.Stat("/usr/lib/python3/dist-packages/django"); err != nil {
		t.Skip("python3-django is not installed")
	}
	f := newAppFixture(t, buildApp(t, "testdata/django", "off"), false)
	f.p.Dirs = map[string]string{"/usr/share/zoneinfo": "/usr/share/zoneinfo"}
	in := f.instance(t)
	r, body := do(t, in, Get("/py-django/hello/ann?q=1", "Host", "example.test"))
	if r.Status != 200 || body["hello"] != "ann" || body["q"] != "1" {
		t.Fatalf("got %d %s", r.Status, r.Body)
	}
	if r, _ := do(t, in, Get("/py-django/nope", "Host", "example.test")); r.Status != 404 {
		t.Fatalf("unknown path: %d", r.Status)
	}
}

// TestMeasureDeadlineModes compares the per-request CPU cost of the three
// ways a deadline can be enforced in Python guest code, side by side
// (rounds interleaved, medians): no instrumentation (the soft deadline
// alone, no hard bound), the host's loop instrumentation (soft deadline
// plus a hard bound) and wazero's CloseOnContextDone ("guarded").
// Run: go test -run TestMeasureDeadlineModes -v ./sdk-python/internal/harness
func TestMeasureDeadlineModes(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	wasm := buildPlugin(t, "off")
	ctx := context.Background()
	type mode struct {
		name string
		in   *Instance
		ctx  context.Context
	}
	var modes []*mode
	for _, name := range []string{"off", "instrumented", "guarded"} {
		h := NewHost(map[string]string{"greeting": "hej"})
		rt, err := NewRuntime(ctx, h, cacheDir(), name == "guarded")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rt.Close(ctx) })
		rt.Instrument = name == "instrumented"
		p, err := rt.Compile(ctx, wasm)
		if err != nil {
			t.Fatal(err)
		}
		in, err := p.Instantiate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// A context with a deadline, as every server call has: guarded mode
		// pays for watching it.
		cctx, cancel := context.WithTimeout(ctx, time.Hour)
		t.Cleanup(cancel)
		modes = append(modes, &mode{name, in, cctx})
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, route := range []string{"/hello", "/work"} {
		req := Get(route)
		const rounds, reqs = 7, 400
		per := make(map[string][]time.Duration)
		for r := 0; r < rounds; r++ {
			for _, m := range modes {
				for i := 0; i < reqs/4; i++ { // warm
					if _, err := m.in.Call(m.ctx, abi.ExportHandle, req); err != nil {
						t.Fatal(err)
					}
				}
				cpu0 := ThreadCPU()
				for i := 0; i < reqs; i++ {
					if _, err := m.in.Call(m.ctx, abi.ExportHandle, req); err != nil {
						t.Fatal(err)
					}
				}
				per[m.name] = append(per[m.name], (ThreadCPU()-cpu0)/reqs)
			}
		}
		base := median(per["off"])
		for _, m := range modes {
			med := median(per[m.name])
			t.Logf("%-6s %-12s %8v CPU per request (%.2fx off)", route, m.name, med, float64(med)/float64(base))
		}
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
