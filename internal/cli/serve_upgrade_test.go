package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/bench/loadgen"
	"github.com/wasmcorn/wasmcorn/internal/testplugins"
)

// TestBinaryUpgradeUnderLoad builds bin/wasmcorn, serves hello with it,
// and under load on 32 connections: (1) SIGUSR2 while the new process
// cannot start (invalid config) leaves the old process serving; (2) SIGUSR2
// hands the listeners over, the old process exits 0 after draining and
// the pid file names the new process. No request may fail.
func TestBinaryUpgradeUnderLoad(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("builds the binary and a Go plugin: skipped in -short mode and under the race detector")
	}
	root, err := testplugins.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	bin := filepath.Join(work, "wasmcorn")
	build := exec.Command("go", "build", "-o", bin, "./cmd/wasmcorn")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	plugins := filepath.Join(work, "plugins")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(plugins, "hello.wasm"), testplugins.Bytes(t, "hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(work, "wasmcorn.pid")
	cfgFile := filepath.Join(work, "wasmcorn.toml")
	writeFile(t, cfgFile, fmt.Sprintf(`data_dir = %q
[server]
listen = "127.0.0.1:0"
pid_file = %q
upgrade_timeout = "60s"
[admin]
listen = "127.0.0.1:0"
[plugins]
dir = %q
cache_dir = %q
[access_log]
enabled = false
`, filepath.Join(work, "data"), pidFile, plugins, testCacheDir()))

	logFile, err := os.Create(filepath.Join(work, "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	logs := func() string { b, _ := os.ReadFile(logFile.Name()); return string(b) }
	cmd := exec.Command(bin, "serve", "-config", cfgFile)
	cmd.Stdout, cmd.Stderr = logFile, logFile // files: the new process writes there too
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	oldPid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	newPid := 0
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		if newPid != 0 {
			syscall.Kill(newPid, syscall.SIGTERM)
		}
	})

	// Server and admin both listen on 127.0.0.1:0: the upgrade must hand
	// each its own socket back.
	base := serveURL(t, logs)
	adminURL := loggedURL(t, logs, `msg="admin listening"`, 30*time.Second)
	waitFor(t, 90*time.Second, "server serving with its pid file", logs, func() bool {
		return readPid(pidFile) == oldPid && httpOK(base+"/hello")
	})

	stop := make(chan struct{})
	results := make(chan loadgen.Result, 1)
	go func() {
		res, err := loadgen.Run(context.Background(), loadgen.Config{
			URL: base + "/hello", Connections: 32, Duration: 10 * time.Minute, Stop: stop, Rate: 2000,
			Timeout: 30 * time.Second,
			Check: func(status int, body []byte) error {
				if !bytes.Contains(body, []byte(`"message":"hello, world"`)) {
					return fmt.Errorf("body %q", body)
				}
				return nil
			},
		})
		if err != nil {
			t.Errorf("loadgen: %v", err)
		}
		results <- res
	}()
	time.Sleep(500 * time.Millisecond)

	// (1) A new process that cannot start (its config is now invalid):
	// the old process keeps serving.
	goodCfg, err := os.ReadFile(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, cfgFile, string(goodCfg)+"\n[server.nonsense]\n")
	if err := cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the failed upgrade to be logged", logs, func() bool {
		return strings.Contains(logs(), "upgrade failed; this process keeps serving")
	})
	select {
	case err := <-exited:
		t.Fatalf("the old process exited after a failed upgrade: %v\n%s", err, logs())
	default:
	}
	if !httpOK(base+"/hello") || readPid(pidFile) != oldPid {
		t.Fatal("not serving after a failed upgrade")
	}
	writeFile(t, cfgFile, string(goodCfg))

	// (2) Handover: the old process drains and exits 0.
	if err := cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 90*time.Second, "the new process's pid in the pid file", logs, func() bool {
		p := readPid(pidFile)
		return p != 0 && p != oldPid
	})
	newPid = readPid(pidFile)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("old process: %v\n%s", err, logs())
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("the old process did not exit after the upgrade\n%s", logs())
	}
	time.Sleep(500 * time.Millisecond) // load on the new process alone
	close(stop)
	res := <-results
	t.Logf("load: %d requests, errors %+v", res.Requests, res.Errors)
	if res.Requests == 0 || res.Errors.Total() != 0 {
		t.Fatalf("%d of %d requests failed during the upgrades: %v\n%s", res.Errors.Total(), res.Requests, res.ErrorSamples, logs())
	}
	if !httpOK(base + "/hello") {
		t.Fatal("the new process does not serve")
	}
	// The admin API kept its own socket: it answers /metrics, and /hello
	// is not routed there.
	if !httpOK(adminURL+"/metrics") || httpOK(adminURL+"/hello") {
		t.Fatalf("admin listener %s after the upgrade is not the admin API\n%s", adminURL, logs())
	}
	if err := syscall.Kill(newPid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the new process to exit and remove its pid file", logs, func() bool {
		_, err := os.Stat(pidFile)
		return errors.Is(err, os.ErrNotExist) && syscall.Kill(newPid, 0) != nil
	})
	newPid = 0
}

func readPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

func httpOK(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == 200
}

func waitFor(t *testing.T, limit time.Duration, what string, logs func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s\n%s", what, logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
