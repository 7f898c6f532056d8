package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/host"
	"github.com/wasmcorn/wasmcorn/internal/config"
	"github.com/wasmcorn/wasmcorn/internal/testplugins"
)

// End-to-end tests: real plugins built from plugins/ by testplugins, the
// real host runtime (wazero), the real server on loopback ports.

type e2ePlugin struct {
	name     string // name in the plugins directory
	build    string // testplugins name, or a path relative to the repo root
	manifest string // NAME.toml content, "" for none
}

type e2eEnv struct {
	*testServer
	dir string
	rt  *host.Runtime
	cfg *config.Config
}

func e2eRuntime(t testing.TB, logger *slog.Logger) *host.Runtime {
	t.Helper()
	rt, err := host.NewRuntime(host.RuntimeOptions{
		CacheDir: filepath.Join(os.TempDir(), "wasmcorn-test-compile-cache"),
		Logger:   logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func writePlugin(t testing.TB, dir string, p e2ePlugin) {
	t.Helper()
	var wasm []byte
	if strings.HasSuffix(p.build, ".wasm") {
		root, err := testplugins.RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		if wasm, err = os.ReadFile(filepath.Join(root, p.build)); err != nil {
			t.Fatal(err)
		}
	} else {
		wasm = testplugins.Bytes(t, p.build)
	}
	if err := os.WriteFile(filepath.Join(dir, p.name+".wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	if p.manifest != "" {
		if err := os.WriteFile(filepath.Join(dir, p.name+".toml"), []byte(p.manifest), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// skipUnderRace skips a functional e2e test under the race detector, where
// wazero compiles plugins tens of times slower; the concurrency e2e tests
// (concurrent echo, reload under load) still run there.
func skipUnderRace(t *testing.T) {
	if raceEnabled {
		t.Skip("functional e2e test skipped under the race detector (plugin compilation too slow); run without -race")
	}
}

// startE2E writes plugins to a fresh plugins directory, loads it with the
// real runtime and starts a server on it.
func startE2E(t *testing.T, plugins ...e2ePlugin) *e2eEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs real plugins; skipped in -short mode")
	}
	dir := t.TempDir()
	for _, p := range plugins {
		writePlugin(t, dir, p)
	}
	cfg := testConfig()
	cfg.Plugins.Dir = dir
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rt := e2eRuntime(t, logger)
	set, err := LoadDir(context.Background(), cfg, rt, LoadOptions{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Config: cfg, Logger: logger, OnShutdown: []func(context.Context) error{rt.Close}})
	if err != nil {
		t.Fatal(err)
	}
	s.Install(set)
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{Server: s, cancel: cancel, done: make(chan error, 1), logs: logs,
		url: "http://" + s.Addr().String(), admin: "http://" + s.AdminAddr().String()}
	go func() { ts.done <- s.Serve(ctx) }()
	waitServing(t, s)
	t.Cleanup(func() { ts.stop(t) })
	return &e2eEnv{testServer: ts, dir: dir, rt: rt, cfg: cfg}
}

func TestE2EHelloAndEcho(t *testing.T) {
	skipUnderRace(t)
	env := startE2E(t,
		e2ePlugin{name: "hello", build: "hello"},
		e2ePlugin{name: "echo", build: "echo", manifest: `
[[routes]]
path = "/api/items/{id}"
methods = ["GET", "PUT"]
[[routes]]
path = "/echo/*"
[grants]
config = { greeting = "hi there" }
`},
	)
	res := get(t, env.url+"/hello")
	if res.status != 200 || res.header.Get("Content-Type") != "application/json" || strings.TrimSpace(res.body) != `{"message":"hello, world"}` {
		t.Fatalf("hello: %d %v %q", res.status, res.header, res.body)
	}
	if res := do(t, "POST", env.url+"/hello", nil); res.status != 405 || res.header.Get("Allow") != "GET, HEAD" {
		t.Fatalf("hello POST (the plugin's own 405): %d %v", res.status, res.header)
	}

	var e struct {
		Method, Host, Path, Body string
		RemoteAddr               string              `json:"remote_addr"`
		RawQuery                 string              `json:"raw_query"`
		RequestID                string              `json:"request_id"`
		Headers                  map[string][]string `json:"headers"`
		Config                   *string             `json:"config"`
	}
	res = do(t, "PUT", env.url+"/api/items/17?config=greeting", strings.NewReader(`{"name":"x"}`),
		"X-Request-Id", "e2e-1", "Content-Type", "application/json")
	if res.status != 200 {
		t.Fatalf("echo: %d %s", res.status, res.body)
	}
	if err := json.Unmarshal([]byte(res.body), &e); err != nil {
		t.Fatalf("%v: %s", err, res.body)
	}
	if e.Method != "PUT" || e.Path != "/api/items/17" || e.Body != `{"name":"x"}` || e.RequestID != "e2e-1" ||
		e.RawQuery != "config=greeting" || !strings.HasPrefix(e.RemoteAddr, "127.0.0.1:") || e.Config == nil || *e.Config != "hi there" {
		t.Fatalf("echo saw %+v", e)
	}
	if got := e.Headers["X-Wasmcorn-Param-Id"]; len(got) != 1 || got[0] != "17" {
		t.Fatalf("route parameter header: %v", e.Headers)
	}
	if res := get(t, env.url+"/echo/deep/path"); res.status != 200 || !strings.Contains(res.body, `"path": "/echo/deep/path"`) {
		t.Fatalf("wildcard route: %d %s", res.status, res.body)
	}
	if res := get(t, env.url+"/echo"); res.status != 404 {
		t.Fatalf("manifest routes replace the defaults; /echo: %d", res.status)
	}
	if res := do(t, "DELETE", env.url+"/api/items/17", nil); res.status != 405 || res.header.Get("Allow") != "GET, HEAD, PUT" {
		t.Fatalf("DELETE: %d %v", res.status, res.header)
	}
}

func TestE2EBadPluginsSkippedOthersServe(t *testing.T) {
	skipUnderRace(t)
	env := startE2E(t,
		e2ePlugin{name: "hello", build: "hello"},
		e2ePlugin{name: "badabi", build: "badabi"},
		e2ePlugin{name: "corrupt", build: "plugins/testdata/corrupt.wasm"},
		e2ePlugin{name: "noexports", build: "noexports"},
		e2ePlugin{name: "initpanic", build: "initpanic"},
		e2ePlugin{name: "badmanifest", build: "hello", manifest: "[pool]\nmaxx = 1\n"},
		e2ePlugin{name: "nodb", build: "hello", manifest: "[grants]\ndatabases = [\"main\"]\n"},
		e2ePlugin{name: "trap", build: "trap"},
		e2ePlugin{name: "spin", build: "spin", manifest: "[limits]\ntimeout = \"300ms\"\n[pool]\nmin = 1\n"},
		e2ePlugin{name: "membomb", build: "membomb", manifest: "[limits]\nmax_memory_bytes = \"64MiB\"\ntimeout = \"10s\"\n[pool]\nmin = 1\n"},
		e2ePlugin{name: "bigresp", build: "bigresp", manifest: "[limits]\nmax_response_bytes = \"1MiB\"\n"},
		e2ePlugin{name: "badresp", build: "badresp"},
	)
	failed := map[string]string{}
	for _, f := range env.Current().Failures() {
		failed[f.Plugin] = f.Err
	}
	for name, want := range map[string]string{
		"badabi": "ABI version", "corrupt": "corrupt", "noexports": "noexports", "initpanic": "initpanic",
		"badmanifest": "pool.maxx: unknown key", "nodb": `database "main" is not configured`,
	} {
		if !strings.Contains(failed[name], want) {
			t.Errorf("plugin %s: failure %q does not mention %q", name, failed[name], want)
		}
		if env.Current().Plugin(name) != nil {
			t.Errorf("bad plugin %s is serving", name)
		}
	}
	if res := get(t, env.admin+"/readyz"); res.status != 503 || !strings.Contains(res.body, "badabi") {
		t.Errorf("readyz with failed plugins: %d %q", res.status, res.body)
	}
	// The public listener says not ready without the reasons (plugin
	// names, load errors are for the admin listener).
	if res := get(t, env.url+"/readyz"); res.status != 503 || res.body != "not ready\n" {
		t.Errorf("public readyz with failed plugins: %d %q, want 503 \"not ready\"", res.status, res.body)
	}
	if page := get(t, env.admin+"/status").body; !strings.Contains(page, "badabi") || !strings.Contains(page, "<b>hello</b>") {
		t.Error("status page lacks the failed or the serving plugins")
	}

	hello := func() {
		t.Helper()
		if res := get(t, env.url+"/hello"); res.status != 200 {
			t.Fatalf("hello stopped serving: %d %s", res.status, res.body)
		}
	}
	hello()
	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/trap", 500},
		{"/trap/panic", 500},
		{"/trap/goroutine", 500},
		{"/spin", 504},
		{"/membomb", 500},
		{"/bigresp?bytes=2000000", 502},
		{"/bigresp?bytes=1000", 200},
		{"/badresp/garbage", 502},
		{"/badresp/status", 502},
		{"/badresp/oob", 500},
		{"/badresp/ok", 200},
		{"/spin/ready", 200},
	} {
		t.Run(strings.TrimPrefix(tc.path, "/"), func(t *testing.T) {
			res := get(t, env.url+tc.path)
			if res.status != tc.status {
				t.Fatalf("got %d, want %d: %.200s", res.status, tc.status, res.body)
			}
			hello()
		})
	}
}

func TestE2EPoolExhaustion(t *testing.T) {
	skipUnderRace(t)
	env := startE2E(t, e2ePlugin{name: "slow", build: "slow", manifest: `
[pool]
min = 1
max = 1
max_wait = "20ms"
[limits]
timeout = "10s"
`})
	// Warm up: the single instance works.
	if res := get(t, env.url+"/slow?ms=1"); res.status != 200 {
		t.Fatalf("warm-up: %d %s", res.status, res.body)
	}
	started := make(chan result, 1)
	go func() { started <- get(t, env.url+"/slow?ms=1500") }()
	// Wait until the slow call holds the only instance.
	deadline := time.Now().Add(10 * time.Second)
	for env.Current().Plugin("slow").Stats().Busy == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	res := get(t, env.url+"/slow?ms=1")
	if res.status != 503 || res.header.Get("Retry-After") == "" || !strings.Contains(res.body, "busy") {
		t.Fatalf("second request: %d %v %q", res.status, res.header, res.body)
	}
	if first := <-started; first.status != 200 {
		t.Fatalf("first request: %d %s", first.status, first.body)
	}
	if st := env.Current().Plugin("slow").Stats(); st.Exhausted == 0 {
		t.Fatalf("pool stats do not count the exhaustion: %+v", st)
	}
}

func TestE2EConcurrentEcho(t *testing.T) {
	env := startE2E(t, e2ePlugin{name: "echo", build: "echo", manifest: "[pool]\nmin = 2\nmax = 8\nmax_wait = \"5s\"\n"})
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 5; j++ {
				body := fmt.Sprintf("conn-%02d-req-%d-%s", i, j, strings.Repeat(string(rune('a'+i%26)), i*13))
				resp, err := c.Post(env.url+"/echo", "text/plain", strings.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var e struct{ Body string }
				if err := json.Unmarshal(b, &e); err != nil || resp.StatusCode != 200 || e.Body != body {
					errs <- fmt.Errorf("conn %d req %d: status %d, body %q, want %q (%v)", i, j, resp.StatusCode, e.Body, body, err)
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestE2EReload(t *testing.T) {
	skipUnderRace(t)
	env := startE2E(t, e2ePlugin{name: "hello", build: "hello"}, e2ePlugin{name: "echo", build: "echo"})
	reload := func() error {
		return env.ReloadDir(context.Background(), env.cfg, env.rt, LoadOptions{})
	}
	helloBefore := env.Current().Plugin("hello")
	echoBefore := env.Current().Plugin("echo")

	// Unchanged plugins keep their loaded instance; a new one appears.
	writePlugin(t, env.dir, e2ePlugin{name: "greet", build: "hello", manifest: "[[routes]]\npath = \"/greet\"\n"})
	if err := reload(); err != nil {
		t.Fatal(err)
	}
	if env.Current().Plugin("hello") != helloBefore || env.Current().Plugin("echo") != echoBefore {
		t.Fatal("unchanged plugins were reloaded")
	}
	if res := get(t, env.url+"/greet"); res.status != 200 {
		t.Fatalf("new plugin: %d", res.status)
	}

	// A broken replacement keeps the old version serving and is reported.
	if err := os.WriteFile(filepath.Join(env.dir, "echo.wasm"), []byte("\x00asm broken"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := reload()
	var re *ReloadError
	if !errors.As(err, &re) || re.Failures[0].Plugin != "echo" {
		t.Fatalf("reload with a broken module: %v", err)
	}
	if env.Current().Plugin("echo") != echoBefore {
		t.Fatal("the serving version of echo was replaced by a broken one")
	}
	if res := get(t, env.url+"/echo"); res.status != 200 {
		t.Fatalf("echo after a failed reload: %d", res.status)
	}
	if res := get(t, env.admin+"/readyz"); res.status != 200 {
		t.Fatalf("readyz with the old version serving: %d %s", res.status, res.body)
	}
	var st Status
	if err := json.Unmarshal([]byte(get(t, env.admin+"/status.json").body), &st); err != nil {
		t.Fatal(err)
	}
	var echoStatus *PluginStatus
	for i := range st.Plugins {
		if st.Plugins[i].Name == "echo" {
			echoStatus = &st.Plugins[i]
		}
	}
	if echoStatus == nil || echoStatus.LastError == nil {
		t.Fatalf("status does not show echo's failed reload: %+v", st.Plugins)
	}

	// A removed plugin stops serving and is drained.
	if err := os.Remove(filepath.Join(env.dir, "greet.wasm")); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(env.dir, "greet.toml"))
	writePlugin(t, env.dir, e2ePlugin{name: "echo", build: "echo"})
	if err := reload(); err != nil {
		t.Fatal(err)
	}
	if res := get(t, env.url+"/greet"); res.status != 404 {
		t.Fatalf("removed plugin still served: %d", res.status)
	}
	if env.Current().Plugin("echo") != echoBefore {
		t.Fatal("echo restored to the same bytes was reloaded")
	}
}

func TestE2EReloadUnderLoad(t *testing.T) {
	env := startE2E(t, e2ePlugin{name: "hello", build: "hello"})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failures, total sync.Map
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					total.Store(i, n)
					return
				default:
				}
				resp, err := client.Get(env.url + "/hello")
				if err != nil {
					failures.Store(fmt.Sprint(i, n), err.Error())
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failures.Store(fmt.Sprint(i, n), resp.Status)
				}
			}
		}(i)
	}
	// Each reload replaces hello with a new build of a different manifest,
	// so its pool is really swapped and drained under load.
	for i := 0; i < 3; i++ {
		writePlugin(t, env.dir, e2ePlugin{name: "hello", build: "hello", manifest: fmt.Sprintf("[pool]\nmin = %d\n", 1+i%2)})
		if err := env.ReloadDir(context.Background(), env.cfg, env.rt, LoadOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	failures.Range(func(k, v any) bool {
		t.Errorf("request %v failed during reload: %v", k, v)
		return true
	})
}
