package host_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/host"
	"github.com/wasmcorn/wasmcorn/host/engine"
	"github.com/wasmcorn/wasmcorn/internal/testplugins"
)

// compiling returns a new runtime (no disk cache: compiles are cold) that
// has been compiling a slow module for 20ms, the module, and the channel
// the load's error arrives on.
func compiling(t *testing.T) (*host.Runtime, []byte, chan error) {
	t.Helper()
	wasm := testplugins.SlowCompile(3000)
	rt, err := host.NewRuntime(host.RuntimeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	loaded := make(chan error, 1)
	go func() {
		_, err := rt.Load(context.Background(), host.PluginSpec{Name: "many", Wasm: wasm})
		loaded <- err
	}()
	time.Sleep(20 * time.Millisecond) // the compiler is running by now
	return rt, wasm, loaded
}

// TestCloseDuringLoad closes a runtime while a Load is compiling. Close
// used to close wazero's engine under the compiler, whose next write to
// the engine's (now nil) module map panicked: the load failed with "the
// compiler panicked: assignment to entry in nil map", and the race
// detector reported the map access. Close now waits for the load, and
// later loads fail with ErrRuntimeClosed.
func TestCloseDuringLoad(t *testing.T) {
	rt, wasm, loaded := compiling(t)
	if err := rt.Close(context.Background()); err != nil {
		t.Fatalf("close: %v", err)
	}
	err := <-loaded
	if err == nil || strings.Contains(err.Error(), "panicked") ||
		!(errors.Is(err, engine.ErrMissingExport) || errors.Is(err, host.ErrRuntimeClosed)) {
		t.Fatalf("load during close: %v; want the module's missing exports (or ErrRuntimeClosed)", err)
	}
	_, err = rt.Load(context.Background(), host.PluginSpec{Name: "many", Wasm: wasm})
	if !errors.Is(err, host.ErrRuntimeClosed) {
		t.Fatalf("load after close: %v; want ErrRuntimeClosed", err)
	}
}

// TestCloseWaitsForLoadUntilCtx: a Close whose context ends while a load
// still compiles returns the context's error instead of closing the
// engines under it; the load then finishes normally.
func TestCloseWaitsForLoadUntilCtx(t *testing.T) {
	rt, _, loaded := compiling(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := rt.Close(ctx); !errors.Is(err, context.Canceled) {
		// The compile may have finished within 20ms on a fast machine:
		// then Close had nothing to wait for.
		if err != nil {
			t.Fatalf("close with an ended context: %v", err)
		}
		t.Log("the load finished before Close; nothing to wait for")
	}
	if err := <-loaded; err == nil || strings.Contains(err.Error(), "panicked") {
		t.Fatalf("load: %v; want the module's missing exports", err)
	}
}
