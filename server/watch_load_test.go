package server

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/bench/loadgen"
	"github.com/wasmcorn/wasmcorn/internal/testplugins"
)

// versionManifest is echo's manifest carrying version as its config. The
// pool starts with 8 warm instances and lets a request wait up to 2s: a
// freshly swapped pool grows from its minimum under 64 busy connections,
// and with the default 100ms max_wait that growth answers 503s.
func versionManifest(version int) string {
	return fmt.Sprintf("[pool]\nmin = 8\nmax = 16\nmax_wait = \"2s\"\n[grants]\nconfig = { version = \"%d\" }\n", version)
}

// echoVersion extracts the "config" value echo answers for
// ?config=version.
func echoVersion(body []byte) (int, error) {
	var v struct {
		Config *string `json:"config"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.Config == nil {
		return 0, fmt.Errorf("no version in %q", body)
	}
	return strconv.Atoi(*v.Config)
}

// writeVersion writes echo as version v: module variant v%2 (so the code's
// hash changes on every reload, yet only two modules are ever compiled)
// and a manifest with version v.
func writeVersion(t *testing.T, dir string, base []byte, v int) []byte {
	t.Helper()
	wasm := variant(base, strconv.Itoa(v%2))
	if err := os.WriteFile(filepath.Join(dir, "echo.toml"), []byte(versionManifest(v)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "echo.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	return wasm
}

// loadWhile runs loadgen on 64 connections against echo's version URL
// until stop closes; every 2xx body must carry a version between 0 and
// *max (the highest version written so far).
func loadWhile(t *testing.T, url string, max *atomic.Int64, stop chan struct{}) chan loadgen.Result {
	t.Helper()
	out := make(chan loadgen.Result, 1)
	go func() {
		res, err := loadgen.Run(context.Background(), loadgen.Config{
			URL: url + "/echo/x?config=version", Connections: 64, Duration: 10 * time.Minute, Stop: stop,
			// Below saturation, so the reloads get CPU on a small machine.
			Rate:    1000,
			Timeout: 30 * time.Second,
			Check: func(status int, body []byte) error {
				v, err := echoVersion(body)
				if err != nil {
					return err
				}
				if v < 0 || int64(v) > max.Load() {
					return fmt.Errorf("version %d was never written (max %d)", v, max.Load())
				}
				return nil
			},
		})
		if err != nil {
			t.Errorf("loadgen: %v", err)
		}
		out <- res
	}()
	return out
}

func checkLoad(t *testing.T, res loadgen.Result) {
	t.Helper()
	t.Logf("load: %d requests, %.0f req/s, errors %+v", res.Requests, res.Throughput, res.Errors)
	if res.Requests == 0 {
		t.Fatal("the load generator sent no request")
	}
	if res.Errors.Total() != 0 || res.Successes != res.Requests {
		t.Fatalf("%d of %d requests failed: %+v %v", res.Errors.Total(), res.Requests, res.Errors, res.ErrorSamples)
	}
}

func TestReloadUnderLoad100(t *testing.T) {
	if testing.Short() {
		t.Skip("100 reloads under load; skipped in -short mode")
	}
	skipUnderRace(t)
	env := startE2E(t, e2ePlugin{name: "echo", build: "echo", manifest: versionManifest(0)})
	base := testplugins.Bytes(t, "echo")
	var max atomic.Int64
	stop := make(chan struct{})
	results := loadWhile(t, env.url, &max, stop)
	time.Sleep(200 * time.Millisecond)
	const reloads = 100
	var last []byte
	for v := 1; v <= reloads; v++ {
		max.Store(int64(v))
		last = writeVersion(t, env.dir, base, v)
		if err := env.ReloadDir(context.Background(), env.cfg, env.rt, LoadOptions{}); err != nil {
			close(stop)
			t.Fatalf("reload %d: %v", v, err)
		}
		if got := env.Current().Plugin("echo").Hash(); got != hashOf(last) {
			close(stop)
			t.Fatalf("reload %d: serving %s", v, shortHash(got))
		}
	}
	close(stop)
	checkLoad(t, <-results)
	for i := 0; i < 50; i++ {
		res := get(t, env.url+"/echo/x?config=version")
		if v, err := echoVersion([]byte(res.body)); res.status != 200 || err != nil || v != reloads {
			t.Fatalf("after the last reload: %d %q (version %d, %v)", res.status, res.body, v, err)
		}
	}
}

func TestBrokenPluginUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("reload under load; skipped in -short mode")
	}
	skipUnderRace(t)
	env := startE2E(t, e2ePlugin{name: "echo", build: "echo", manifest: versionManifest(0)})
	serving := env.Current().Plugin("echo")
	var max atomic.Int64
	stop := make(chan struct{})
	results := loadWhile(t, env.url, &max, stop)
	time.Sleep(200 * time.Millisecond)
	broken := []byte("\x00asm\x01\x00\x00\x00\x01\x04\x01\x60\x00\x7f") // framed, but a type with no end
	for _, b := range [][]byte{broken, []byte("\x00asm broken"), nil} {
		if err := os.WriteFile(filepath.Join(env.dir, "echo.wasm"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		err := env.ReloadDir(context.Background(), env.cfg, env.rt, LoadOptions{})
		if err == nil {
			close(stop)
			t.Fatalf("reload of a broken module %q succeeded", b)
		}
		if env.Current().Plugin("echo") != serving {
			close(stop)
			t.Fatal("a broken module replaced the serving version")
		}
		res := get(t, env.admin+"/status.json")
		var st struct {
			Plugins []PluginStatus `json:"plugins"`
		}
		if err := json.Unmarshal([]byte(res.body), &st); err != nil || res.status != 200 {
			close(stop)
			t.Fatalf("status.json: %d %v", res.status, err)
		}
		if len(st.Plugins) != 1 || st.Plugins[0].Hash != serving.Hash() || st.Plugins[0].LastError == nil ||
			!strings.Contains(st.Plugins[0].LastError.Err, "echo") {
			close(stop)
			t.Fatalf("status.json does not show echo serving %s with the failure: %s", shortHash(serving.Hash()), res.body)
		}
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	checkLoad(t, <-results)
}
