package harness

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/host"
)

// TestMeasureLoad reports how long the server's host.Runtime takes to load
// a Python plugin (pre-initialized by wizer when installed) with a cold and
// then a warm compilation cache (a new Runtime on the same cache directory,
// as after a restart), with one instance and with the default pool.
// Run: go test -run TestMeasureLoad -v ./sdk-python/internal/harness
func TestMeasureLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	mode := "off"
	if _, err := exec.LookPath(wizerPath()); err == nil {
		mode = "on"
	}
	wasm := buildPlugin(t, mode)
	cache := t.TempDir()
	load := func(min int) time.Duration {
		rt, err := host.NewRuntime(host.RuntimeOptions{CacheDir: cache})
		if err != nil {
			t.Fatal(err)
		}
		defer rt.Close(context.Background())
		pool := host.DefaultPoolConfig()
		pool.Min = min
		start := time.Now()
		p, err := rt.Load(context.Background(), host.PluginSpec{Name: "app", Wasm: wasm, Pool: pool, Limits: host.DefaultLimits()})
		if err != nil {
			t.Fatal(err)
		}
		d := time.Since(start)
		if m := p.DeadlineMode(); m != "instrumented" {
			t.Errorf("deadline mode %q, want instrumented", m)
		}
		return d
	}
	cold := load(1)
	warm1 := load(1)
	warm2 := load(host.DefaultPoolConfig().Min)
	t.Logf("wizer=%s: load with a cold cache %v; warm cache: %v (1 instance), %v (%d instances)",
		mode, cold.Round(time.Millisecond), warm1.Round(time.Millisecond), warm2.Round(time.Millisecond), host.DefaultPoolConfig().Min)
}
