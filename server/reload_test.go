package server

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host"
	"github.com/wasmcorn/wasmcorn/internal/testplugins"
)

// TestReloadWarmsToPreviousSize: a new version is warmed to the number of
// instances its previous version had live before it is swapped in, and
// the reload's phases show in LastReload and /status.json.
func TestReloadWarmsToPreviousSize(t *testing.T) {
	skipUnderRace(t)
	env := startE2E(t, e2ePlugin{name: "echo", build: "echo", manifest: "[pool]\nmin = 1\nmax = 8\n"})
	old := env.Current().Plugin("echo").(*host.Plugin)
	if n, err := old.Warm(context.Background(), 5); err != nil || n != 4 {
		t.Fatalf("Warm(5) on a pool of 1: made %d, %v", n, err)
	}
	if live := old.Stats().Live; live != 5 {
		t.Fatalf("serving version has %d live instances, want 5", live)
	}
	wasm := variant(testplugins.Bytes(t, "echo"), "warm")
	if err := os.WriteFile(filepath.Join(env.dir, "echo.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	if err := env.ReloadDir(context.Background(), env.cfg, env.rt, LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	now := env.Current().Plugin("echo")
	if now.Hash() != hashOf(wasm) {
		t.Fatalf("serving %s after the reload", shortHash(now.Hash()))
	}
	if st := now.Stats(); st.Live != 5 || st.Min != 1 {
		t.Fatalf("new version's pool: %+v; want 5 live (the previous size), min 1", st)
	}
	if live := old.Stats().Live; live != 0 {
		t.Fatalf("previous version still has %d live instances after the reload", live)
	}
	r := env.LastReload()
	if r == nil || r.Started.Before(begin) || r.Serving.Before(r.Started) ||
		len(r.Loaded) != 1 || r.Loaded[0] != "echo" || len(r.Failed) != 0 || r.Warmed != 4 ||
		r.Compile <= 0 || r.Instantiate <= 0 || r.Warm <= 0 || r.Total < r.Load+r.Warm || r.Detect != 0 {
		t.Fatalf("reload report: %+v", r)
	}
	res := get(t, env.admin+"/status.json")
	var st Status
	if err := json.Unmarshal([]byte(res.body), &st); err != nil || st.LastReload == nil {
		t.Fatalf("status.json: %v %s", err, res.body)
	}
	if st.LastReload.Warmed != 4 || st.LastReload.Compile != r.Compile {
		t.Fatalf("status.json last_reload %+v, want %+v", st.LastReload, r)
	}
	if res := get(t, env.admin+"/status"); !strings.Contains(res.body, "4 instances") {
		t.Fatalf("status page does not show the last reload: %s", res.body)
	}
}

// TestShutdownDuringReload: a shutdown while a reload is compiling
// cancels the reload and waits for it before draining the plugins and
// closing the runtime. Closing the runtime under the compiler used to
// make the compile panic ("assignment to entry in nil map", recovered
// into a load error) and could leave a plugin loaded after the drain.
func TestShutdownDuringReload(t *testing.T) {
	env := startE2E(t, e2ePlugin{name: "echo", build: "echo"})
	serving := env.Current().Plugin("echo")
	if err := os.WriteFile(filepath.Join(env.dir, "slow.wasm"), testplugins.SlowCompile(3000), 0o644); err != nil {
		t.Fatal(err)
	}
	reloaded := make(chan error, 1)
	go func() { reloaded <- env.ReloadDir(context.Background(), env.cfg, env.rt, LoadOptions{}) }()
	time.Sleep(20 * time.Millisecond) // compiling slow.wasm by now
	env.stop(t)
	select {
	case <-reloaded: // cancelled, or slow's missing exports
	case <-time.After(time.Minute):
		t.Fatal("the reload did not end after the shutdown")
	}
	if logs := env.logs.String(); strings.Contains(logs, "panicked") {
		t.Fatalf("a compile panicked during the shutdown:\n%s", logs)
	}
	for _, p := range env.Current().Plugins() {
		if live := p.Stats().Live; live != 0 {
			t.Errorf("plugin %s has %d live instances after the shutdown", p.Name(), live)
		}
	}
	if live := serving.Stats().Live; live != 0 {
		t.Errorf("echo has %d live instances after the shutdown", live)
	}
	if err := env.ReloadDir(context.Background(), env.cfg, env.rt, LoadOptions{}); err == nil ||
		!strings.Contains(err.Error(), "shutting down") {
		t.Fatalf("reload after the shutdown: %v", err)
	}
}

// TestRetireWaitsForOlderSets: a plugin kept unchanged by one reload and
// removed by the next is drained only after the requests routed on the
// Set before both have finished, not just those on the Set the second
// reload replaced.
func TestRetireWaitsForOlderSets(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var drainedWhileRunning atomic.Bool
	var p *fakePlugin
	p = &fakePlugin{name: "p", fn: func(r *abi.Request) (abi.Response, error) {
		close(entered)
		<-release
		drainedWhileRunning.Store(p.drained.Load())
		return textResponse(200, "ok"), nil
	}}
	ts := startServer(t, nil, Options{}, Entry{Plugin: p})
	done := make(chan result, 1)
	go func() { done <- get(t, ts.url+"/p") }()
	<-entered

	keep, _ := NewSet([]Entry{{Plugin: p}}, nil)
	ts.Replace(context.Background(), keep) // p unchanged: nothing to drain
	empty, _ := NewSet(nil, nil)
	replaced := make(chan struct{})
	go func() {
		ts.Replace(context.Background(), empty) // p removed
		close(replaced)
	}()
	select {
	case <-replaced:
		t.Fatal("the second reload drained p while a request from the first Set was running on it")
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	if r := <-done; r.status != 200 {
		t.Fatalf("the request: %d %q", r.status, r.body)
	}
	<-replaced
	if drainedWhileRunning.Load() || !p.drained.Load() {
		t.Fatalf("drained while running %v, drained after %v; want false, true", drainedWhileRunning.Load(), p.drained.Load())
	}
}

// TestReloadRouteConflictKeepsServing: a reload never takes a serving
// plugin down over a route conflict. A new version whose routes conflict
// is refused like one that fails to load (the serving version stays), and
// a new plugin that claims a serving plugin's routes is the one left out,
// whatever the names' order.
func TestReloadRouteConflictKeepsServing(t *testing.T) {
	env := startE2E(t, e2ePlugin{name: "echo", build: "echo"}, e2ePlugin{name: "hello", build: "hello"})
	serving := func(path string) {
		t.Helper()
		if r := get(t, env.url+path); r.status != 200 {
			t.Fatalf("GET %s: %d %q", path, r.status, r.body)
		}
	}
	serving("/hello")
	serving("/echo/x")
	helloHash := env.Current().Plugin("hello").Hash()
	failed := func(err error, plugin string) {
		t.Helper()
		var re *ReloadError
		if !errors.As(err, &re) || len(re.Failures) != 1 || re.Failures[0].Plugin != plugin {
			t.Fatalf("reload error %v, want one failure, of %s", err, plugin)
		}
	}

	// A new manifest for hello that also claims echo's routes.
	writePlugin(t, env.dir, e2ePlugin{name: "hello", build: "hello",
		manifest: "[[routes]]\npath = \"/hello\"\n[[routes]]\npath = \"/echo/*\"\n"})
	failed(env.ReloadDir(context.Background(), env.cfg, env.rt, LoadOptions{}), "hello")
	serving("/hello")
	serving("/echo/x")
	if p := env.Current().Plugin("hello"); p == nil || p.Hash() != helloHash {
		t.Fatalf("hello after the refused version: %v, want the serving one", p)
	}

	// A new plugin, first by name, claiming echo's routes.
	writePlugin(t, env.dir, e2ePlugin{name: "aaa", build: "hello", manifest: "[[routes]]\npath = \"/echo/*\"\n"})
	err := env.ReloadDir(context.Background(), env.cfg, env.rt, LoadOptions{})
	var re *ReloadError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "aaa") {
		t.Fatalf("reload error %v, want aaa refused", err)
	}
	if env.Current().Plugin("aaa") != nil {
		t.Fatal("aaa serves, taking echo's routes")
	}
	serving("/echo/x")
	serving("/hello")
}
