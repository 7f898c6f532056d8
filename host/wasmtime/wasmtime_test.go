package wasmtime_test

// Tests of what is particular to this engine (the conformance kit covers
// the rest): the serialized-module cache, interrupt edge cases, the
// deadline modes.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host"
	"github.com/wasmcorn/wasmcorn/host/engine"
	"github.com/wasmcorn/wasmcorn/host/enginetest"
	"github.com/wasmcorn/wasmcorn/host/wasmtime"
)

func newEngine(t testing.TB, cacheDir string) engine.Engine {
	t.Helper()
	e, err := engine.New(wasmtime.Name, engine.Config{CacheDir: cacheDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e
}

func compileGuest(t testing.TB, e engine.Engine, name string, cfg engine.ModuleConfig) engine.Module {
	t.Helper()
	m, err := e.Compile(context.Background(), name, enginetest.Guest(t, name), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

func instantiate(t testing.TB, m engine.Module, hc engine.HostCaller) engine.Instance {
	t.Helper()
	in, err := m.Instantiate(context.Background(), hc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(context.Background()) })
	return in
}

func cacheFiles(t *testing.T, dir string) map[string]time.Time {
	t.Helper()
	files := map[string]time.Time{}
	matches, err := filepath.Glob(filepath.Join(dir, "wasmtime-*", "*.cwasm"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range matches {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		files[f] = st.ModTime()
	}
	return files
}

func TestModuleCache(t *testing.T) {
	dir := t.TempDir()
	req := enginetest.EncodeRequest("from the cache")
	run := func() {
		e := newEngine(t, dir)
		for _, enforced := range []bool{true, false} {
			m := compileGuest(t, e, "echo", engine.ModuleConfig{Interruptible: enforced})
			out, err := instantiate(t, m, nopCaller{}).Call(context.Background(), abi.ExportHandle, req, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			var r abi.Response
			if err := abi.DecodeResponse(out, &r); err != nil || !bytes.Equal(r.Body, req) {
				t.Fatalf("echo from a cached module: %v %q", err, r.Body)
			}
		}
	}
	run()
	first := cacheFiles(t, dir)
	if len(first) != 2 {
		t.Fatalf("cache holds %v, want one file per variant (epoch, plain)", first)
	}
	for f := range first {
		if !strings.HasSuffix(f, "-epoch.cwasm") && !strings.HasSuffix(f, "-plain.cwasm") {
			t.Fatalf("unexpected cache file %s", f)
		}
	}
	run() // loads from the cache: the files are not rewritten
	if second := cacheFiles(t, dir); len(second) != 2 {
		t.Fatalf("cache after the second run: %v", second)
	} else {
		for f, mt := range first {
			if !second[f].Equal(mt) {
				t.Fatalf("%s was rewritten: the cached module was not used", f)
			}
		}
	}

	// A damaged file (garbage, or truncated as by a full disk) is dropped
	// and the module compiled again; Wasmtime never sees its bytes.
	damaged := map[string][]byte{}
	i := 0
	for f := range first {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		bad := []byte("not a serialized module")
		if i%2 == 1 {
			bad = b[:len(b)/2]
		}
		i++
		if err := os.WriteFile(f, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		damaged[f] = bad
	}
	run()
	for f, bad := range damaged {
		if b, err := os.ReadFile(f); err != nil || bytes.Equal(b, bad) {
			t.Fatalf("%s still damaged after a recompile (%v)", f, err)
		}
	}
}

func TestDeadlineModes(t *testing.T) {
	e := newEngine(t, "")
	for _, c := range []struct {
		enforced bool
		mode     string
	}{{true, "epoch"}, {false, "off"}} {
		m := compileGuest(t, e, "echo", engine.ModuleConfig{Interruptible: c.enforced})
		mm, ok := m.(interface{ Mode() string })
		if !ok || mm.Mode() != c.mode {
			t.Fatalf("Interruptible=%v: mode %v, want %q", c.enforced, mm, c.mode)
		}
	}
}

// TestInterruptBeforeCall: an Interrupt that lands between calls (the
// watchdog raced the end of the previous call) stops the next call at once.
func TestInterruptBeforeCall(t *testing.T) {
	e := newEngine(t, "")
	in := instantiate(t, compileGuest(t, e, "spin", engine.ModuleConfig{Interruptible: true}), nopCaller{})
	in.Interrupt()
	in.Interrupt() // idempotent
	if _, err := in.Call(context.Background(), abi.ExportHandle, enginetest.EncodeRequest("x"), 1<<20); !errors.Is(err, engine.ErrInterrupted) {
		t.Fatalf("call after Interrupt: %v, want ErrInterrupted", err)
	}
	in.Close(context.Background())
	in.Interrupt() // after Close: a no-op, not a crash
}

// blockingCaller blocks in its host call until released.
type blockingCaller struct {
	entered chan struct{}
	release chan struct{}
}

func (b *blockingCaller) HostCall(_ context.Context, _ uint32, _ []byte, reply []byte) []byte {
	b.entered <- struct{}{}
	<-b.release
	return reply[:0]
}

// TestInterruptDuringHostCall: Interrupt while the guest waits in a host
// call stops the guest as soon as the host call returns to it.
func TestInterruptDuringHostCall(t *testing.T) {
	e := newEngine(t, "")
	w, err := os.ReadFile("testdata/calls.wasm")
	if err != nil {
		t.Fatal(err)
	}
	m, err := e.Compile(context.Background(), "calls", w, engine.ModuleConfig{Interruptible: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	hc := &blockingCaller{entered: make(chan struct{}, 1), release: make(chan struct{})}
	in := instantiate(t, m, hc)
	errc := make(chan error, 1)
	go func() {
		// 1000 host calls: the guest would make the second after the first.
		_, err := in.Call(context.Background(), abi.ExportHandle, kRequest(1000), 1<<20)
		errc <- err
	}()
	<-hc.entered
	in.Interrupt()
	close(hc.release)
	if err := <-errc; !errors.Is(err, engine.ErrInterrupted) {
		t.Fatalf("got %v, want ErrInterrupted", err)
	}
	select {
	case <-hc.entered:
		t.Fatal("the guest made another host call after Interrupt")
	default:
	}
}

// TestConcurrentInstances runs guests of one engine on many goroutines at
// once while others are interrupted: each interrupt hits only its own
// instance (they share the engine's epoch counter).
func TestConcurrentInstances(t *testing.T) {
	e := newEngine(t, "")
	echo := compileGuest(t, e, "echo", engine.ModuleConfig{Interruptible: true})
	spin := compileGuest(t, e, "spin", engine.ModuleConfig{Interruptible: true})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := instantiate(t, echo, nopCaller{})
			req := enginetest.EncodeRequest("busy")
			for i := 0; i < 2000; i++ {
				if _, err := in.Call(context.Background(), abi.ExportHandle, req, 1<<20); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				in, err := spin.Instantiate(context.Background(), nopCaller{})
				if err != nil {
					errs <- err
					return
				}
				t := time.AfterFunc(5*time.Millisecond, in.Interrupt)
				if _, err := in.Call(context.Background(), abi.ExportHandle, enginetest.EncodeRequest("x"), 1<<20); !errors.Is(err, engine.ErrInterrupted) {
					errs <- err
				}
				t.Stop()
				in.Close(context.Background())
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// FuzzCompile: arbitrary bytes never crash Compile, and a module that
// compiles never crashes Instantiate or a call.
func FuzzCompile(f *testing.F) {
	for _, name := range []string{"echo", "trap", "badptr", "badimport", "noexports", "badversion", "wasi"} {
		f.Add(enginetest.Guest(f, name))
	}
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	e := newEngine(f, "")
	f.Fuzz(func(t *testing.T, wasm []byte) {
		ctx := context.Background()
		m, err := e.Compile(ctx, "fuzz", wasm, engine.ModuleConfig{Interruptible: true, MaxMemoryPages: 64})
		if err != nil {
			return
		}
		defer m.Close(ctx)
		in, err := m.Instantiate(ctx, nopCaller{})
		if err != nil {
			return
		}
		defer in.Close(ctx)
		timer := time.AfterFunc(100*time.Millisecond, in.Interrupt)
		defer timer.Stop()
		in.Call(ctx, abi.ExportHandle, enginetest.EncodeRequest("fuzz"), 1<<20)
	})
}

// TestMixedEngines: one runtime serves plugins on both engines at once,
// chosen per plugin (PluginSpec.Engine, a manifest's `engine`) over the
// runtime's default.
func TestMixedEngines(t *testing.T) {
	for _, def := range []string{"wazero", wasmtime.Name} {
		t.Run("default="+def, func(t *testing.T) {
			rt := enginetest.NewRuntime(t, def, "", nil)
			var plugins []*host.Plugin
			for _, eng := range []string{"", "wazero", wasmtime.Name} {
				p, err := rt.Load(context.Background(), host.PluginSpec{Name: "echo", Engine: eng, Wasm: enginetest.Guest(t, "echo"),
					Pool: host.DefaultPoolConfig(), Limits: host.DefaultLimits()})
				if err != nil {
					t.Fatal(err)
				}
				defer p.Drain(context.Background())
				want := eng
				if want == "" {
					want = def
				}
				if p.Engine() != want {
					t.Fatalf("Engine %q: plugin runs on %q, want %q", eng, p.Engine(), want)
				}
				plugins = append(plugins, p)
			}
			var wg sync.WaitGroup
			for i, p := range plugins {
				wg.Add(1)
				go func() {
					defer wg.Done()
					req := enginetest.EncodeRequest(fmt.Sprintf("plugin %d", i))
					for j := 0; j < 200; j++ {
						out, err := p.Handle(context.Background(), req, nil)
						var r abi.Response
						if err != nil || abi.DecodeResponse(out, &r) != nil || !bytes.Equal(r.Body, req) {
							t.Errorf("%s: %v", p.Engine(), err)
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}
