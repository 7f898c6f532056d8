package host_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host"
	"github.com/wasmcorn/wasmcorn/host/engine"
)

// watModule assembles src with wabt's wat2wasm (installed by
// scripts/deps.sh), skipping when it is not there.
func watModule(t *testing.T, src string) []byte {
	t.Helper()
	if _, err := exec.LookPath("wat2wasm"); err != nil {
		t.Skip("wat2wasm not on PATH")
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "m.wat"), filepath.Join(dir, "m.wasm")
	if err := os.WriteFile(in, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("wat2wasm", in, "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// boundRuntime is not closed when the test ends: Close waits for loads,
// and a load under test that never returned would hang the test binary
// instead of failing the test.
func boundRuntime(t *testing.T) *host.Runtime {
	rt, err := host.NewRuntime(host.RuntimeOptions{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

const boundExports = `
  (func (export "wasmcorn_alloc") (param i32) (result i32) (i32.const 65536))
  (func (export "wasmcorn_handle") (param i32 i32) (result i64) (i64.const 0))`

// TestInstantiationIsBounded: guest code that runs while an instance is
// made (a start section, the ABI version export, the interrupt table
// export) cannot hang a load: a start section is refused at load, the
// exports run under the instantiation deadline.
func TestInstantiationIsBounded(t *testing.T) {
	for _, tc := range []struct{ name, wat, want string }{
		{"start_section", `(module
  (memory (export "memory") 2)
  (func $spin (loop $l (br $l)))
  (start $spin)
  (func (export "wasmcorn_abi_version") (result i32) (i32.const 1))` + boundExports + `)`, "start section"},
		{"abi_version", `(module
  (memory (export "memory") 2)
  (func (export "wasmcorn_abi_version") (result i32) (loop $l (br $l)) (i32.const 1))` + boundExports + `)`, "did not finish"},
		{"interrupt_stores", `(module
  (memory (export "memory") 2)
  (func (export "wasmcorn_abi_version") (result i32) (i32.const 1))
  (func (export "wasmcorn_interrupt_stores") (result i32) (loop $l (br $l)) (i32.const 0))` + boundExports + `)`, "did not finish"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wasm := watModule(t, tc.wat)
			rt := boundRuntime(t)
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			spec := host.PluginSpec{Name: "spin_" + tc.name, Wasm: wasm, Pool: host.DefaultPoolConfig(), Limits: host.DefaultLimits()}
			spec.Pool.Min = 1
			errc := make(chan error, 1)
			go func() {
				p, err := rt.Load(ctx, spec)
				if err == nil {
					p.Drain(context.Background())
				}
				errc <- err
			}()
			select {
			case err := <-errc:
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("load error %v, want one saying %q", err, tc.want)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("Load still running long after its deadline: guest code run during instantiation is not bounded")
			}
		})
	}
}

// TestRecursionStoppedAtDeadline: recursion without any loop (f(n) calls
// f(n-1) twice: 2^60 calls, never more than 60 frames deep) is stopped at
// the request's deadline like a loop.
func TestRecursionStoppedAtDeadline(t *testing.T) {
	wasm := watModule(t, `(module
  (memory (export "memory") 2)
  (func $f (param $n i32)
    (if (local.get $n) (then
      (call $f (i32.sub (local.get $n) (i32.const 1)))
      (call $f (i32.sub (local.get $n) (i32.const 1))))))
  (func (export "wasmcorn_abi_version") (result i32) (i32.const 1))
  (func (export "wasmcorn_alloc") (param i32) (result i32) (i32.const 65536))
  (func (export "wasmcorn_handle") (param i32 i32) (result i64)
    (call $f (i32.const 60))
    (i64.const 0)))`)
	rt := boundRuntime(t)
	spec := host.PluginSpec{Name: "fanout", Wasm: wasm, Pool: host.DefaultPoolConfig(), Limits: host.DefaultLimits()}
	spec.Pool.Min = 1
	spec.Limits.Timeout = 100 * time.Millisecond
	p, err := rt.Load(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if m := p.DeadlineMode(); m != "instrumented" {
		t.Fatalf("deadline mode %q, want instrumented", m)
	}
	expectInterrupted(t, p, "recursion without loops escapes the instrumentation")
}

// expectInterrupted sends p a request and expects it stopped at its
// (short) deadline, failing with why if it is still running 10 s later.
func expectInterrupted(t *testing.T, p *host.Plugin, why string) {
	t.Helper()
	req := abi.AppendRequest(nil, &abi.Request{Method: []byte("GET"), Path: []byte("/")})
	errc := make(chan error, 1)
	go func() {
		_, err := p.Handle(context.Background(), req, nil)
		errc <- err
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, engine.ErrInterrupted) {
			t.Fatalf("got %v, want ErrInterrupted at the deadline", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("call still running 10 s after its deadline: " + why)
	}
}

// TestSleepPastDeadlineIsStopped: a guest asleep in WASI's poll_oneoff (Go's
// time.Sleep, Python's time.sleep) past its deadline is stopped at the
// deadline, not when its sleep ends, with deadlines enforced or not (the
// stop at the deadline ends the sleep either way).
func TestSleepPastDeadlineIsStopped(t *testing.T) {
	wasm := watModule(t, `(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "wasmcorn_abi_version") (result i32) (i32.const 1))
  (func (export "wasmcorn_alloc") (param i32) (result i32) (i32.const 65536))
  (func (export "wasmcorn_handle") (param i32 i32) (result i64)
    ;; one clock subscription (tag 0 at offset 8, relative timeout of 10 s at 24)
    (i64.store (i32.const 24) (i64.const 10000000000))
    (drop (call $poll (i32.const 0) (i32.const 256) (i32.const 1) (i32.const 512)))
    (i32.store (i32.const 1024) (i32.const 200))
    (i32.store (i32.const 1028) (i32.const 0))
    (i32.store (i32.const 1032) (i32.const 0))
    (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const 12))))`)
	for _, enforced := range []bool{true, false} {
		rt := boundRuntime(t)
		spec := host.PluginSpec{Name: "sleeper", Wasm: wasm, Pool: host.DefaultPoolConfig(), Limits: host.DefaultLimits()}
		spec.Pool.Min = 1
		spec.Limits.Timeout = 100 * time.Millisecond
		spec.Limits.DeadlineEnforced = enforced
		p, err := rt.Load(context.Background(), spec)
		if err != nil {
			t.Fatal(err)
		}
		expectInterrupted(t, p, "the guest's sleep was not interrupted")
	}
}
