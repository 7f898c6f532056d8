package enginetest

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/abi/abitest"
	"github.com/wasmcorn/wasmcorn/host"
	"github.com/wasmcorn/wasmcorn/host/engine"
	"github.com/wasmcorn/wasmcorn/internal/testplugins"
)

// RunPlugins runs the repository's plugins on the engine registered under
// engineName through the real host runtime: the Go examples (hello,
// jsonapi, echo with logs, config and jobs), every hostile plugin of
// plugins/testdata with the error the host documents for it, and the
// Python example py-hello when plugins/py-hello.wasm has been built (make
// plugins). Go plugins are built on first use (internal/testplugins);
// compiled code is cached under the user cache directory. Skipped with
// -short.
func RunPlugins(t *testing.T, engineName string) {
	if testing.Short() {
		t.Skip("builds and runs Wasm plugins; skipped with -short")
	}
	t.Run("Examples", func(t *testing.T) { runExamples(t, engineName) })
	t.Run("Hostile", func(t *testing.T) { runHostile(t, engineName) })
	t.Run("Python", func(t *testing.T) { runPython(t, engineName) })
	t.Run("PythonDeadline", func(t *testing.T) { runPythonDeadline(t, engineName) })
}

// PluginCacheDir is the compilation cache the plugin tests and benchmarks
// share across runs (compiling a Go plugin takes seconds).
func PluginCacheDir(t testing.TB) string {
	cache, err := os.UserCacheDir()
	if err != nil {
		return t.TempDir()
	}
	return filepath.Join(cache, "wasmcorn", "host-test-compiled")
}

// logBuffer is a slog handler collecting records for assertions.
type logBuffer struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logBuffer) Enabled(context.Context, slog.Level) bool { return true }
func (l *logBuffer) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.recs = append(l.recs, r.Clone())
	l.mu.Unlock()
	return nil
}
func (l *logBuffer) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logBuffer) WithGroup(string) slog.Handler      { return l }

// records returns a copy of the records collected so far.
func (l *logBuffer) records() []slog.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.recs)
}

func (l *logBuffer) find(msg string) (slog.Record, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.recs {
		if r.Message == msg {
			return r, true
		}
	}
	return slog.Record{}, false
}

func attrOf(r slog.Record, key string) string {
	var v string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.String()
			return false
		}
		return true
	})
	return v
}

// LoadPlugin loads plugins/<name> (built on demand) with one warm instance.
func LoadPlugin(t testing.TB, rt *host.Runtime, name string, mod func(*host.PluginSpec)) (*host.Plugin, error) {
	t.Helper()
	return loadWasm(t, rt, name, testplugins.Bytes(t, name), mod)
}

func loadWasm(t testing.TB, rt *host.Runtime, name string, wasm []byte, mod func(*host.PluginSpec)) (*host.Plugin, error) {
	t.Helper()
	spec := host.PluginSpec{Name: name, Wasm: wasm, Pool: host.DefaultPoolConfig(), Limits: host.DefaultLimits()}
	spec.Pool.Min = 1
	if mod != nil {
		mod(&spec)
	}
	p, err := rt.Load(context.Background(), spec)
	if err == nil {
		t.Cleanup(func() { p.Drain(context.Background()) })
	}
	return p, err
}

func mustLoadPlugin(t testing.TB, rt *host.Runtime, name string, mod func(*host.PluginSpec)) *host.Plugin {
	t.Helper()
	p, err := LoadPlugin(t, rt, name, mod)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return p
}

// HTTPRequest encodes a request as the server would.
func HTTPRequest(method, path, query string, body []byte, headers ...string) []byte {
	r := &abi.Request{
		Method: []byte(method), Scheme: []byte("http"), Host: []byte("example.test"),
		Path: []byte(path), RawQuery: []byte(query), RemoteAddr: []byte("127.0.0.1:9999"),
		RequestID: []byte("host-req-1"), Body: body,
	}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Headers = append(r.Headers, abi.Header{Name: []byte(headers[i]), Value: []byte(headers[i+1])})
	}
	return abi.AppendRequest(nil, r)
}

func handle(t testing.TB, p *host.Plugin, req []byte) (abi.Response, error) {
	t.Helper()
	out, err := p.Handle(context.Background(), req, nil)
	if err != nil {
		return abi.Response{}, err
	}
	var resp abi.Response
	if err := abi.DecodeResponse(out, &resp); err != nil {
		t.Fatalf("decode response: %v", err)
	}
	return resp, nil
}

func runExamples(t *testing.T, engineName string) {
	logs := &logBuffer{}
	rt := NewRuntime(t, engineName, PluginCacheDir(t), slog.New(logs))
	ctx := context.Background()

	hello := mustLoadPlugin(t, rt, "hello", nil)
	resp, err := handle(t, hello, HTTPRequest("GET", "/hello/", "", nil))
	if err != nil || resp.Status != 200 || string(resp.Body) != `{"message":"hello, world"}` {
		t.Fatalf("hello: %v %d %q", err, resp.Status, resp.Body)
	}

	// hellofast is hello on the SDK's zero-allocation API: the same
	// handler logic answers the same, whatever the method.
	hellofast := mustLoadPlugin(t, rt, "hellofast", nil)
	for _, method := range []string{"GET", "HEAD", "POST"} {
		want, err := handle(t, hello, HTTPRequest(method, "/hello/", "", nil))
		if err != nil {
			t.Fatalf("hello %s: %v", method, err)
		}
		got, err := handle(t, hellofast, HTTPRequest(method, "/hellofast/", "", nil))
		if err != nil || got.Status != want.Status || string(got.Body) != string(want.Body) ||
			!slices.Equal(sortedHeaders(&got), sortedHeaders(&want)) {
			t.Fatalf("hellofast %s: %v %d %q %q; hello: %d %q %q", method, err, got.Status, got.Body, sortedHeaders(&got),
				want.Status, want.Body, sortedHeaders(&want))
		}
	}

	jsonapi := mustLoadPlugin(t, rt, "jsonapi", nil)
	resp, err = handle(t, jsonapi, HTTPRequest("GET", "/jsonapi/items", "n=100", nil))
	var list struct {
		Count int               `json:"count"`
		Items []json.RawMessage `json:"items"`
	}
	if err != nil || resp.Status != 200 || json.Unmarshal(resp.Body, &list) != nil || list.Count != 100 || len(list.Items) != 100 {
		t.Fatalf("jsonapi: %v %d %d items", err, resp.Status, len(list.Items))
	}

	echo := mustLoadPlugin(t, rt, "echo", func(s *host.PluginSpec) {
		s.Grants.Config = map[string]string{"greeting": "from the manifest"}
	})
	body := []byte("a\x00b")
	resp, err = handle(t, echo, HTTPRequest("POST", "/echo/x", "log=logged+line&config=greeting", body, "Content-Type", "text/plain"))
	var e struct {
		Method, Path, RequestID string
		BodyBase64              string `json:"body_base64"`
		Config                  *string
	}
	if err != nil || resp.Status != 200 || json.Unmarshal(resp.Body, &e) != nil {
		t.Fatalf("echo: %v %d %s", err, resp.Status, resp.Body)
	}
	if e.Method != "POST" || e.Path != "/echo/x" || e.Config == nil || *e.Config != "from the manifest" ||
		!strings.Contains(string(resp.Body), `"request_id": "host-req-1"`) || !strings.Contains(string(resp.Body), `"body_base64": "YQBi"`) {
		t.Fatalf("echo document: %s", resp.Body)
	}
	if r, ok := logs.find("logged line"); !ok || r.Level != slog.LevelInfo || attrOf(r, "path") != "/echo/x" {
		t.Fatalf("guest log not in the host log (found %v)", ok)
	}

	// A goroutine a handler starts without waiting for it runs at one of
	// the SDK's periodic yields (every 32 calls), while the requests that
	// follow never block. One instance, so that every call goes to it.
	gr := mustLoadPlugin(t, rt, "goroutine", func(s *host.PluginSpec) { s.Pool.Min, s.Pool.Max = 1, 1 })
	resp, err = handle(t, gr, HTTPRequest("GET", "/goroutine/start", "", nil))
	if err != nil || resp.Status != 200 {
		t.Fatalf("goroutine/start: %v %d %q", err, resp.Status, resp.Body)
	}
	for i := 1; string(resp.Body) != "ran 1\n"; i++ {
		if i > 100 {
			t.Fatalf("a goroutine started by a handler had not run after %d more calls: %q", i-1, resp.Body)
		}
		if resp, err = handle(t, gr, HTTPRequest("GET", "/goroutine/", "", nil)); err != nil || resp.Status != 200 {
			t.Fatalf("goroutine: %v %d %q", err, resp.Status, resp.Body)
		}
	}

	for _, c := range []struct {
		payload string
		status  abi.JobStatus
	}{{"work", abi.JobOK}, {"retry", abi.JobRetry}, {"fail", abi.JobFail}, {"panic", abi.JobRetry}} {
		res, err := echo.RunJob(ctx, &abi.Job{Queue: []byte("echo"), ID: []byte("j-" + c.payload), Attempt: 1, Payload: []byte(c.payload)})
		if err != nil || res.Status != c.status {
			t.Errorf("job %s: %v, status %d, want %d", c.payload, err, res.Status, c.status)
		}
	}
}

// runHostile loads every hostile plugin and checks each misbehaviour is
// contained with the error the host documents. Each plugin is loaded once:
// after a trap the pool replaces the instance, so the later cases of one
// plugin also show it recovers.
func runHostile(t *testing.T, engineName string) {
	logs := &logBuffer{}
	rt := NewRuntime(t, engineName, PluginCacheDir(t), slog.New(logs))
	ctx := context.Background()

	loadCases := []struct {
		name string
		is   error
	}{
		{"badabi", engine.ErrABIVersion},
		{"noexports", engine.ErrMissingExport},
		{"initpanic", engine.ErrInit},
	}
	for _, c := range loadCases {
		t.Run("load/"+c.name, func(t *testing.T) {
			if _, err := LoadPlugin(t, rt, c.name, nil); !errors.Is(err, c.is) {
				t.Fatalf("load: %v, want %v", err, c.is)
			}
		})
	}
	t.Run("load/corrupt", func(t *testing.T) {
		root, err := testplugins.RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		wasm, err := os.ReadFile(filepath.Join(root, "plugins", "testdata", "corrupt.wasm"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := loadWasm(t, rt, "corrupt", wasm, nil); err == nil {
			t.Fatal("corrupt module loaded")
		}
	})

	limits := map[string]func(*host.PluginSpec){
		"spin":    func(s *host.PluginSpec) { s.Limits.Timeout = 300 * time.Millisecond },
		"membomb": func(s *host.PluginSpec) { s.Limits.MaxMemoryPages = 256 }, // 16 MiB
		"bigresp": func(s *host.PluginSpec) { s.Limits.MaxResponseBytes = 1 << 20 },
	}
	plugins := map[string]*host.Plugin{}
	parent := t
	plugin := func(name string) *host.Plugin {
		if p, ok := plugins[name]; ok {
			return p
		}
		p := mustLoadPlugin(parent, rt, name, limits[name]) // drained when the whole test ends
		plugins[name] = p
		return p
	}

	// status 0: the call must fail with error is; otherwise it must answer
	// status with body. Handler panics are the SDK's to contain: a 500, and
	// the instance stays usable.
	cases := []struct {
		plugin, path, query string
		is                  error
		status              uint32
		body                string
	}{
		{"trap", "/trap/panic", "", nil, 500, "internal server error\n"},
		{"trap", "/trap/nil", "", nil, 500, "internal server error\n"},
		{"trap", "/trap/", "", engine.ErrTrap, 0, ""},
		{"trap", "/trap/goroutine", "", engine.ErrTrap, 0, ""},
		{"trap", "/trap/exit", "", engine.ErrTrap, 0, ""},
		{"trap", "/trap/panic", "", nil, 500, "internal server error\n"},
		{"badptr", "/badptr/ok", "", nil, 200, "ok\n"},
		{"badptr", "/badptr/in", "", engine.ErrTrap, 0, ""},
		{"badptr", "/badptr/out", "", engine.ErrTrap, 0, ""},
		{"badptr", "/badptr/result", "", engine.ErrTrap, 0, ""},
		{"badptr", "/badptr/result-none", "", engine.ErrTrap, 0, ""},
		{"badresp", "/badresp/", "", nil, 200, "ok\n"},
		{"badresp", "/badresp/oob", "", engine.ErrTrap, 0, ""},
		{"badalloc", "/badalloc/", "", engine.ErrTrap, 0, ""},
		{"spin", "/spin/ready", "", nil, 200, "ready\n"},
		{"spin", "/spin/", "", engine.ErrInterrupted, 0, ""},
		{"spin", "/spin/ready", "", nil, 200, "ready\n"},
		{"membomb", "/membomb/", "mb=2", nil, 200, "holding 2 MiB\n"},
		{"membomb", "/membomb/", "", engine.ErrTrap, 0, ""},
		{"bigresp", "/bigresp/", "bytes=1000", nil, 200, strings.Repeat("x", 1000)},
		{"bigresp", "/bigresp/", "bytes=2000000", engine.ErrResponseTooLarge, 0, ""},
		{"slow", "/slow/", "ms=10", nil, 200, "slept 10 ms\n"},
	}
	for _, c := range cases {
		t.Run(c.plugin+c.path+"?"+c.query, func(t *testing.T) {
			resp, err := handle(t, plugin(c.plugin), HTTPRequest("GET", c.path, c.query, nil))
			if c.status == 0 {
				if !errors.Is(err, c.is) {
					t.Fatalf("got %v (status %d), want error %v", err, resp.Status, c.is)
				}
				t.Logf("contained: %v", err)
				return
			}
			if err != nil || resp.Status != c.status || string(resp.Body) != c.body {
				t.Fatalf("got %v %d %q, want %d %q", err, resp.Status, resp.Body, c.status, c.body)
			}
		})
	}
	if r, ok := logs.find("wasmcorn: handler panicked"); !ok || !strings.Contains(attrOf(r, "stack"), "main.handle") ||
		attrOf(r, "request_id") != "host-req-1" {
		t.Errorf("handler panic not logged with its stack and request id (found %v)", ok)
	}

	// Malformed responses reach the caller as bytes; decoding refuses them
	// with the class the ABI vectors use.
	badresp := plugin("badresp")
	for _, c := range []struct{ path, class string }{
		{"/badresp/garbage", abitest.ErrClassTruncated},
		{"/badresp/status", abitest.ErrClassInvalid},
		{"/badresp/trailing", abitest.ErrClassTrailing},
	} {
		out, err := badresp.Handle(ctx, HTTPRequest("GET", c.path, "", nil), nil)
		if err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
		var resp abi.Response
		if got := abitest.ErrorClass(abi.DecodeResponse(out, &resp)); got != c.class {
			t.Errorf("%s: decode error class %q, want %q", c.path, got, c.class)
		}
	}
}

// PythonPlugin returns plugins/<name>.wasm when `make plugins` built it,
// or skips the test. Its files section (standard library, SDK, app) is
// mounted by the host at /wasmcorn.
func PythonPlugin(t testing.TB, name string) []byte {
	t.Helper()
	root, err := testplugins.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	wasm, err := os.ReadFile(filepath.Join(root, "plugins", name+".wasm"))
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("plugins/%s.wasm is not built (make plugins)", name)
	}
	if err != nil {
		t.Fatal(err)
	}
	return wasm
}

func runPython(t *testing.T, engineName string) {
	wasm := PythonPlugin(t, "py-hello")
	rt := NewRuntime(t, engineName, PluginCacheDir(t), slog.New(&logBuffer{}))
	p, err := loadWasm(t, rt, "py-hello", wasm, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		resp, err := handle(t, p, HTTPRequest("GET", "/py-hello/", "", nil))
		var m map[string]string
		if err != nil || resp.Status != 200 || json.Unmarshal(resp.Body, &m) != nil || m["message"] != "hello, world" {
			t.Fatalf("py-hello: %v %d %q", err, resp.Status, resp.Body)
		}
	}
	resp, err := handle(t, p, HTTPRequest("GET", "/py-hello/greet/ann", "lang=fr", nil))
	var g map[string]string
	if err != nil || resp.Status != 200 || json.Unmarshal(resp.Body, &g) != nil || g["hello"] != "ann" || g["lang"] != "fr" {
		t.Fatalf("py-hello greet: %v %d %q", err, resp.Status, resp.Body)
	}
}

// buildPythonTestApp builds the Python SDK's test app
// sdk-python/pyplugin/testdata/<name> into a temporary module, without
// wizer pre-initialization (seconds instead of tens of seconds; each
// instance then runs CPython's start-up in _initialize), or skips the test
// when the Python runtime (make plugins) or python3 is missing.
func buildPythonTestApp(t testing.TB, name string) []byte {
	t.Helper()
	root, err := testplugins.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "sdk-python", "build", "runtime", "wasmcorn-python.wasm")); err != nil {
		t.Skipf("the Python runtime is not built (make plugins): %v", err)
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skipf("python3: %v", err)
	}
	out := filepath.Join(t.TempDir(), name+".wasm")
	cmd := exec.Command(py, filepath.Join(root, "sdk-python", "tools", "wasmcorn_py.py"), "build",
		filepath.Join(root, "sdk-python", "pyplugin", "testdata", name), "-o", out, "--wizer", "off")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build Python app %s: %v\n%s", name, err, msg)
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return wasm
}

// runPythonDeadline: a Python handler spinning in `while True: pass` is
// stopped softly at its deadline (the host performs the runtime's interrupt
// stores, CPython raises DeadlineExceeded, the SDK answers 504 and logs it)
// and its instance is kept; a handler that swallows the exception is
// stopped hard (ErrInterrupted) and its instance replaced.
func runPythonDeadline(t *testing.T, engineName string) {
	wasm := buildPythonTestApp(t, "spin")
	logs := &logBuffer{}
	rt := NewRuntime(t, engineName, PluginCacheDir(t), slog.New(logs))
	p, err := loadWasm(t, rt, "py-spin", wasm, func(s *host.PluginSpec) {
		s.Pool.Min, s.Pool.Max, s.Pool.MaxWait = 1, 1, 30*time.Second
		s.Limits.Timeout = 500 * time.Millisecond
	})
	if err != nil {
		t.Fatal(err)
	}
	instance := func() string {
		t.Helper()
		resp, err := handle(t, p, HTTPRequest("GET", "/py-spin/ok", "", nil))
		var m map[string]any
		if err != nil || resp.Status != 200 || json.Unmarshal(resp.Body, &m) != nil || m["instance"] == "" {
			t.Fatalf("/py-spin/ok: %v %d %q", err, resp.Status, resp.Body)
		}
		return m["instance"].(string)
	}
	first := instance()
	for i := 0; i < 2; i++ {
		resp, err := handle(t, p, HTTPRequest("GET", "/py-spin/", "", nil))
		if err != nil || resp.Status != 504 {
			t.Fatalf("spin %d: %v %d %q, want the SDK's own 504 (a soft stop)", i, err, resp.Status, resp.Body)
		}
		if got := instance(); got != first {
			t.Fatalf("spin %d: instance replaced after a soft stop (%s, then %s)", i, first, got)
		}
	}
	r, ok := logs.find("handler stopped at its deadline")
	if !ok || !strings.Contains(attrOf(r, "traceback"), "DeadlineExceeded") || !strings.Contains(attrOf(r, "traceback"), "while True") {
		t.Fatalf("no log of the soft stop with its traceback: %+v", logs.records())
	}
	if _, err := handle(t, p, HTTPRequest("GET", "/py-spin/swallow", "", nil)); !errors.Is(err, engine.ErrInterrupted) {
		t.Fatalf("/py-spin/swallow: %v, want ErrInterrupted (the hard stop)", err)
	}
	if got := instance(); got == first {
		t.Fatal("instance reused after a hard stop")
	}
	if st := p.Stats(); st.Timeouts != 3 {
		t.Fatalf("timeouts = %d, want 3", st.Timeouts)
	}
}

// BenchPlugin measures one request through host.Plugin.Handle on
// plugins/<name> (built on demand): the pool, the engine call, the SDK's
// request/response conversion and the handler.
func BenchPlugin(b *testing.B, engineName, name string, req []byte, enforced bool) {
	if testing.Short() {
		b.Skip("builds Wasm plugins; skipped with -short")
	}
	rt := NewRuntime(b, engineName, PluginCacheDir(b), slog.New(&logBuffer{}))
	p, err := LoadPlugin(b, rt, name, func(s *host.PluginSpec) { s.Limits.DeadlineEnforced = enforced })
	if err != nil {
		b.Fatal(err)
	}
	out := make([]byte, 0, 64<<10)
	Loop(b, func() {
		if out, err = p.Handle(context.Background(), req, out); err != nil {
			b.Fatal(err)
		}
	})
}

// sortedHeaders returns r's headers as sorted "Name: value" lines.
func sortedHeaders(r *abi.Response) []string {
	var hs []string
	for _, h := range r.Headers {
		hs = append(hs, string(h.Name)+": "+string(h.Value))
	}
	slices.Sort(hs)
	return hs
}
