package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/internal/config"
	"github.com/wasmcorn/wasmcorn/internal/testplugins"
)

func TestRestartOnly(t *testing.T) {
	cases := []struct {
		name   string
		change func(c *config.Config)
		want   []string
	}{
		{"nothing", func(*config.Config) {}, nil},
		{"listen", func(c *config.Config) { c.Server.Listen = "127.0.0.1:1" }, []string{"server.listen"}},
		{"engine and data dir", func(c *config.Config) { c.Plugins.Engine = "x"; c.DataDir = "d" }, []string{"data_dir", "plugins.engine"}},
		{"databases", func(c *config.Config) { c.Databases = map[string]config.Database{"x": {}} }, []string{"databases"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, b := config.Default(), config.Default()
			c.change(b)
			got := restartOnly(a, b)
			slices.Sort(got)
			if !slices.Equal(got, c.want) {
				t.Fatalf("restartOnly = %v, want %v", got, c.want)
			}
		})
	}
}

// TestSIGHUPReloadsConfig serves in-process and sends SIGHUP to itself:
// a valid new config applies log.level and reloads the plugins, a
// restart-only change is reported and not applied, an invalid config
// keeps the running one.
func TestSIGHUPReloadsConfig(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("serves a Go plugin: skipped in -short mode and under the race detector")
	}
	work := t.TempDir()
	plugins := filepath.Join(work, "plugins")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	hello := testplugins.Bytes(t, "hello")
	if err := os.WriteFile(filepath.Join(plugins, "hello.wasm"), hello, 0o644); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(work, "wasmcorn.toml")
	cfgText := func(level, maxBody string) string {
		return fmt.Sprintf(`data_dir = %q
[server]
listen = "127.0.0.1:0"
max_body_bytes = %q
[admin]
listen = "127.0.0.1:0"
[plugins]
dir = %q
cache_dir = %q
watch = false
[log]
level = %q
[access_log]
enabled = false
`, filepath.Join(work, "data"), maxBody, plugins, testCacheDir(), level)
	}
	writeFile(t, cfgFile, cfgText("info", "4MiB"))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var serveErr syncBuf
	done := make(chan error, 1)
	go func() {
		done <- (&Env{Stdout: &serveErr, Stderr: &serveErr}).Run(ctx, []string{"serve", "-config", cfgFile})
	}()
	logs := serveErr.String
	base := serveURL(t, logs)
	waitFor(t, 90*time.Second, "serving with SIGHUP handled", logs, func() bool {
		return strings.Contains(logs(), "plugins.watch = false") && httpOK(base+"/hello")
	})

	writeFile(t, cfgFile, cfgText("debug", "8MiB"))
	if err := os.WriteFile(filepath.Join(plugins, "greet.wasm"), hello, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the config reload and the new plugin", logs, func() bool {
		return strings.Contains(logs(), "config reload: applied") && httpOK(base+"/greet")
	})
	if l := logs(); !strings.Contains(l, "need a restart") || !strings.Contains(l, "server.max_body_bytes") ||
		!strings.Contains(l, "log_level=debug") {
		t.Fatalf("config reload log:\n%s", l)
	}

	writeFile(t, cfgFile, cfgText("debug", "8MiB")+"\n[nonsense]\n")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the invalid config to be rejected", logs, func() bool {
		return strings.Contains(logs(), "invalid configuration; keeping the running one")
	})
	if !httpOK(base+"/hello") || !httpOK(base+"/greet") {
		t.Fatal("not serving after an invalid config reload")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v\n%s", err, logs())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not stop")
	}
}
