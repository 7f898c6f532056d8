package server

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/internal/testplugins"
)

// variant returns module with a custom section named "wasmcorn-test"
// holding tag appended: the same code under a different content hash, so
// loading it really compiles and swaps a new version.
func variant(module []byte, tag string) []byte {
	const name = "wasmcorn-test"
	payload := append([]byte{byte(len(name))}, name...)
	payload = append(payload, tag...)
	out := append([]byte(nil), module...)
	out = append(out, 0)
	n := uint64(len(payload))
	for {
		b := byte(n & 0x7f)
		n >>= 7
		if n != 0 {
			out = append(out, b|0x80)
			continue
		}
		out = append(out, b)
		break
	}
	return append(out, payload...)
}

func hashOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestWasmFramed(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a real plugin; skipped in -short mode")
	}
	full := variant(testplugins.Bytes(t, "echo"), "v1")
	dir := t.TempDir()
	cases := []struct {
		name string
		data []byte
		ok   bool
	}{
		{"complete", full, true},
		{"empty", nil, false},
		{"magic only", full[:4], false},
		{"header only", full[:8], true},
		{"cut in a section header", full[:9], false},
		{"cut in the middle", full[:len(full)/2], false},
		{"cut one byte short", full[:len(full)-1], false},
		{"not a module", []byte("plain text, not wasm"), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, "m.wasm")
			if err := os.WriteFile(p, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			err := wasmFramed(p, int64(len(c.data)))
			if c.ok && err != nil {
				t.Fatalf("want framed, got %v", err)
			}
			if !c.ok && !errors.Is(err, errTruncated) {
				t.Fatalf("want errTruncated, got %v", err)
			}
		})
	}
}

func TestWatchRelevant(t *testing.T) {
	for path, want := range map[string]bool{
		"/p/echo.wasm": true, "/p/echo.toml": true, "/p/.echo.wasm.swp": false, "/p/echo.wasm~": false,
		"/p/4913": false, "/p/echo.wasm.tmp": false, "/p/.hidden.wasm": false, "/p/readme.md": false,
	} {
		if got := relevant(path); got != want {
			t.Errorf("relevant(%q) = %v, want %v", path, got, want)
		}
	}
}

// watchEnv is a real server with echo loaded and a watcher on its
// plugins directory.
type watchEnv struct {
	*e2eEnv
	base    []byte
	reloads chan error
}

func startWatch(t *testing.T) *watchEnv {
	t.Helper()
	skipUnderRace(t)
	env := startE2E(t, e2ePlugin{name: "echo", build: "echo"})
	w := &watchEnv{e2eEnv: env, base: testplugins.Bytes(t, "echo"), reloads: make(chan error, 100)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Watch(ctx, WatchOptions{Dir: env.dir, Debounce: 50 * time.Millisecond, Logger: env.Server.log,
			Reload: func(ctx context.Context) error {
				err := env.ReloadDir(ctx, env.cfg, env.rt, LoadOptions{})
				w.reloads <- err
				return err
			}})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("watch: %v", err)
		}
	})
	time.Sleep(100 * time.Millisecond) // let the watcher register the directory
	return w
}

// waitHash waits (bounded) until echo serves the module with hash want,
// then checks it answers.
func (w *watchEnv) waitHash(t *testing.T, want string, path ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if p := w.Current().Plugin("echo"); p != nil && p.Hash() == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("echo did not reach hash %s", shortHash(want))
		}
		time.Sleep(10 * time.Millisecond)
	}
	url := w.url + "/echo/x"
	if len(path) > 0 {
		url = w.url + path[0]
	}
	if res := get(t, url); res.status != 200 {
		t.Fatalf("echo after reload: %d %s", res.status, res.body)
	}
}

// quiet asserts that no reload happens for a while.
func (w *watchEnv) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case err := <-w.reloads:
		t.Fatalf("unexpected reload (err %v)", err)
	case <-time.After(d):
	}
}

func TestWatchPartialWrite(t *testing.T) {
	w := startWatch(t)
	before := w.Current().Plugin("echo").Hash()
	next := variant(w.base, "partial")
	p := filepath.Join(w.dir, "echo.wasm")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Write half, stall for several debounce periods (a slow cp).
	if _, err := f.Write(next[:len(next)/2]); err != nil {
		t.Fatal(err)
	}
	w.quiet(t, 400*time.Millisecond)
	if got := w.Current().Plugin("echo").Hash(); got != before {
		t.Fatal("a partial file replaced the serving version")
	}
	if res := get(t, w.url+"/echo/x"); res.status != 200 {
		t.Fatalf("echo during a partial write: %d", res.status)
	}
	if _, err := f.Write(next[len(next)/2:]); err != nil {
		t.Fatal(err)
	}
	f.Close()
	w.waitHash(t, hashOf(next))
	if err := <-w.reloads; err != nil {
		t.Fatalf("reload after the write completed: %v", err)
	}
	if logs := w.logs.String(); strings.Contains(logs, "level=ERROR") || strings.Contains(logs, "level=WARN") {
		t.Fatalf("a partial write logged a failure:\n%s", logs)
	}
}

func TestWatchRename(t *testing.T) {
	w := startWatch(t)
	next := variant(w.base, "renamed")
	tmp := filepath.Join(w.dir, "echo.wasm.tmp")
	if err := os.WriteFile(tmp, next, 0o644); err != nil {
		t.Fatal(err)
	}
	w.quiet(t, 200*time.Millisecond) // .tmp is not a plugin file
	if err := os.Rename(tmp, filepath.Join(w.dir, "echo.wasm")); err != nil {
		t.Fatal(err)
	}
	w.waitHash(t, hashOf(next))
	if err := <-w.reloads; err != nil {
		t.Fatal(err)
	}
}

func TestWatchEditorSave(t *testing.T) {
	w := startWatch(t)
	next := variant(w.base, "editor")
	p := filepath.Join(w.dir, "echo.wasm")
	// vim-style: probe file, swap file, backup by rename, write anew,
	// remove the backup; all within one debounce period.
	for _, step := range []func() error{
		func() error { return os.WriteFile(filepath.Join(w.dir, "4913"), nil, 0o644) },
		func() error { return os.Remove(filepath.Join(w.dir, "4913")) },
		func() error { return os.WriteFile(filepath.Join(w.dir, ".echo.wasm.swp"), []byte("swap"), 0o644) },
		func() error { return os.Rename(p, p+"~") },
		func() error { return os.WriteFile(p, next, 0o644) },
		func() error { return os.Remove(p + "~") },
		func() error { return os.Remove(filepath.Join(w.dir, ".echo.wasm.swp")) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	w.waitHash(t, hashOf(next))
	if err := <-w.reloads; err != nil {
		t.Fatal(err)
	}
	w.quiet(t, 200*time.Millisecond) // one burst, one reload
}

func TestWatchManifestAndRemove(t *testing.T) {
	w := startWatch(t)
	if err := os.WriteFile(filepath.Join(w.dir, "echo.toml"), []byte("[[routes]]\npath = \"/moved/*\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := <-w.reloads; err != nil {
		t.Fatal(err)
	}
	if res := get(t, w.url+"/moved/x"); res.status != 200 {
		t.Fatalf("route from the new manifest: %d", res.status)
	}
	if res := get(t, w.url+"/echo/x"); res.status != 404 {
		t.Fatalf("route from the old manifest: %d", res.status)
	}
	if err := os.Remove(filepath.Join(w.dir, "echo.wasm")); err != nil {
		t.Fatal(err)
	}
	if err := <-w.reloads; err != nil {
		t.Fatal(err)
	}
	if w.Current().Plugin("echo") != nil {
		t.Fatal("a removed plugin still serves")
	}
	if res := get(t, w.url+"/moved/x"); res.status != 404 {
		t.Fatalf("route of a removed plugin: %d", res.status)
	}
	// A new file appears.
	next := variant(w.base, "new")
	if err := os.WriteFile(filepath.Join(w.dir, "echo.wasm"), next, 0o644); err != nil {
		t.Fatal(err)
	}
	w.waitHash(t, hashOf(next), "/moved/x")
}

func TestDebugHeader(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(strconv.FormatBool(on), func(t *testing.T) {
			cfg := testConfig()
			cfg.Server.DebugHeaders = on
			p := &fakePlugin{name: "hi", fn: func(*abi.Request) (abi.Response, error) { return textResponse(200, "hi"), nil }}
			ts := startServer(t, cfg, Options{}, Entry{Plugin: p})
			res := get(t, ts.url+"/hi/")
			if res.status != 200 || res.body != "hi" {
				t.Fatalf("GET /hi/: %d %q", res.status, res.body)
			}
			want := ""
			if on {
				want = "hi@" + p.Hash()[:12]
			}
			if got := res.header.Get("X-Wasmcorn-Plugin"); got != want {
				t.Fatalf("X-Wasmcorn-Plugin = %q, want %q", got, want)
			}
		})
	}
}

// TestHandoff: after Handoff, a keep-alive connection's next response
// asks the client to close, and Serve's shutdown completes.
func TestHandoff(t *testing.T) {
	p := &fakePlugin{name: "hi", fn: func(*abi.Request) (abi.Response, error) { return textResponse(200, "hi"), nil }}
	ts := startServer(t, nil, Options{}, Entry{Plugin: p})
	conn, err := net.Dial("tcp", ts.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	roundTrip := func() *http.Response {
		t.Helper()
		resp := rawKeepAlive(t, conn, br, "/hi/")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		return resp
	}
	if resp := roundTrip(); resp.Close {
		t.Fatal("Connection: close before the handoff")
	}
	ts.Handoff()
	if resp := roundTrip(); !resp.Close {
		t.Fatal("no Connection: close after the handoff")
	}
	ts.cancel()
	select {
	case err := <-ts.done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
		ts.done <- nil // for the cleanup's stop
	case <-time.After(20 * time.Second):
		t.Fatal("shutdown after a handoff did not finish")
	}
	if !strings.Contains(ts.logs.String(), "handoff") {
		t.Fatalf("no handoff in the log:\n%s", ts.logs.String())
	}
}
