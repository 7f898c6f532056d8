package wasmrewrite

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// spinTryTableModule: (func (export "spin")) that calls env.started, then
// spins in a loop inside try_table (catch_all), inside an outer loop: the
// interrupt trap must not be catchable.
func spinTryTableModule() []byte {
	code := []byte{
		0x10, 0x00, // call $started
		0x03, 0x40, // loop $l
		0x02, 0x40, //   block
		0x1f, 0x40, 0x01, 0x02, 0x00, // try_table (catch_all 0)
		0x03, 0x40, 0x0c, 0x00, 0x0b, //   loop br 0 end
		0x0b,       //     end
		0x0b,       //   end
		0x0c, 0x00, //   br $l
		0x0b, // end
		0x0b,
	}
	return module(
		sec(secType, vec(1, typeVoid)),
		sec(secImport, vec(1, str("env"), str("started"), []byte{0x00, 0x00})),
		sec(secFunction, vec(1, uleb(0))),
		memorySec,
		sec(secExport, vec(1, str("spin"), []byte{0x00, 0x01})),
		sec(secCode, vec(1, body(vec(0), code...))),
	)
}

// TestSpin runs guests that never return on their own. While the guest
// spins, runtime.GC (a stop-the-world) must complete: without the ticks it
// would wait forever for the guest's thread. Then setting the exported
// interrupt global from this goroutine must make the call fail with the
// unreachable trap. With GOMAXPROCS=1 the test goroutine only runs at all
// because the guest can be preempted.
//
// Data races: the host only writes the global (wazero's
// MutableGlobal.Set stores 8 bytes into the instance's module context);
// the guest reads it from compiled code, which the race detector does not
// see, and no Go code on the guest's goroutine touches that word during the
// call. The write is a single aligned word store, observed by the guest at
// its next tick.
func TestSpin(t *testing.T) {
	spin := readWasm(t, "spin")
	cases := []struct {
		name   string
		wasm   []byte
		export string
	}{
		{"loop", spin, "spin"},
		{"nested call", spin, "spin_nested"},
		{"tail call cycle", spin, "spin_tail"},
		{"recursion without loops", spin, "spin_recursion"},
		{"Go-style dispatch loop", spin, "spin_dispatch"},
		{"Go-style dispatch loop, jump to own region", spin, "spin_dispatch_self"},
		{"inside try_table catch_all", spinTryTableModule(), "spin"},
	}
	for _, procs := range []int{2, 1} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/GOMAXPROCS=%d", tc.name, procs), func(t *testing.T) {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
				spinAndInterrupt(t, instrument(t, tc.wasm, Options{}), tc.export)
			})
		}
	}
}

func spinAndInterrupt(t *testing.T, wasm []byte, export string) {
	ctx := context.Background()
	r := newRuntime(t)
	started := make(chan struct{}, 1)
	_, err := r.NewHostModuleBuilder("env").
		NewFunctionBuilder().WithFunc(func(context.Context) { started <- struct{}{} }).Export("started").
		Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mod, err := r.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName("guest"))
	if err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	interrupt, ok := mod.ExportedGlobal(InterruptExport).(api.MutableGlobal)
	if !ok {
		t.Fatalf("no mutable global export %q", InterruptExport)
	}

	done := make(chan error, 1)
	go func() {
		_, err := mod.ExportedFunction(export).Call(ctx)
		done <- err
	}()
	<-started

	for i := 0; i < 3; i++ {
		runtime.GC() // returns only if the spinning guest reached a preemption point
	}
	select {
	case err := <-done:
		t.Fatalf("guest returned before it was interrupted: %v", err)
	default:
	}

	interrupt.Set(1)
	err = <-done
	if err == nil {
		t.Fatal("interrupted guest returned no error")
	}
	if !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("error %q is not the unreachable trap", err)
	}

	// The instance stays usable once the host clears the flag: the next
	// call runs until interrupted again.
	interrupt.Set(0)
	go func() {
		_, err := mod.ExportedFunction(export).Call(ctx)
		done <- err
	}()
	<-started
	interrupt.Set(1)
	if err := <-done; err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("second interrupt: err = %v", err)
	}
}

// TestTickFrequency pins the fuel accounting: with the interrupt flag set
// in advance, a call traps exactly at the TickEvery-th loop iteration
// counted across calls, and an interrupted call leaves $fuel refilled, so
// the next interrupt again takes effect within TickEvery iterations.
// bench.wasm's sum(n) enters its loop header n+1 times.
func TestTickFrequency(t *testing.T) {
	for _, engine := range []struct {
		name string
		cfg  wazero.RuntimeConfig
	}{{"compiler", wazero.NewRuntimeConfigCompiler()}, {"interpreter", wazero.NewRuntimeConfigInterpreter()}} {
		t.Run(engine.name, func(t *testing.T) {
			ctx := context.Background()
			r := wazero.NewRuntimeWithConfig(ctx, engine.cfg)
			defer r.Close(ctx)
			mod, err := r.Instantiate(ctx, instrument(t, readWasm(t, "bench"), Options{TickEvery: 100}))
			if err != nil {
				t.Fatal(err)
			}
			interrupt := mod.ExportedGlobal(InterruptExport).(api.MutableGlobal)
			sum := mod.ExportedFunction("sum")
			steps := []struct {
				interrupt uint64
				n         uint64
				trap      bool
			}{
				{1, 97, false}, // 98 iterations: fuel 100 -> 2
				{1, 0, false},  // fuel 1
				{1, 0, true},   // fuel 0: tick, trap; fuel refilled to 100
				{1, 98, false}, // 99 iterations: fuel 1
				{1, 0, true},   // tick, trap
				{0, 1000, false},
				{1, 98, true}, // 1000+1 iterations left fuel at 100-(1001%100)=99: trap at the 99th
			}
			for i, s := range steps {
				interrupt.Set(s.interrupt)
				_, err := sum.Call(ctx, s.n)
				if trapped := err != nil; trapped != s.trap {
					t.Fatalf("step %d: sum(%d) with interrupt=%d: err = %v, want trap %v", i, s.n, s.interrupt, err, s.trap)
				}
				if err != nil && !strings.Contains(err.Error(), "unreachable") {
					t.Fatalf("step %d: %v", i, err)
				}
			}
		})
	}
}

// TestDispatchLoops pins the accounting of Go-style dispatch loops (see
// code.go): forward jumps between regions and entering the loop cost no
// fuel, every backward jump costs one. With the interrupt flag set in
// advance, a call traps exactly at the TickEvery-th charged jump.
func TestDispatchLoops(t *testing.T) {
	wasm := readWasm(t, "dispatch")
	checkSameResults(t, wasm, []call{{"forward", []uint64{0}}, {"count", []uint64{0, 5}}, {"count", []uint64{1, 100}},
		{"brif", []uint64{0, 1}}, {"brif", []uint64{0, 0}}})
	ctx := context.Background()
	r := newRuntime(t)
	for _, tc := range []struct {
		tick   uint32
		export string
		args   []uint64
		trap   bool
	}{
		{1, "forward", []uint64{0}, false},  // 0 -> 2: forward only
		{1, "forward", []uint64{1}, true},   // 1 -> 0: backward
		{5, "count", []uint64{0, 5}, false}, // 4 jumps back to region 1
		{5, "count", []uint64{0, 6}, true},  // 5 jumps back: the 5th ticks
		{1, "count", []uint64{0, 1}, false}, // no jump back at all
		{1, "brif", []uint64{0, 1}, true},   // br_if into the loop: charged
		{2, "brif", []uint64{0, 0}, false},  // charged once (even untaken), fuel 2: no tick
	} {
		t.Run(fmt.Sprintf("%s%v/TickEvery=%d", tc.export, tc.args, tc.tick), func(t *testing.T) {
			mod, err := r.InstantiateWithConfig(ctx, instrument(t, wasm, Options{TickEvery: tc.tick}), wazero.NewModuleConfig().WithName(""))
			if err != nil {
				t.Fatal(err)
			}
			defer mod.Close(ctx)
			mod.ExportedGlobal(InterruptExport).(api.MutableGlobal).Set(1)
			_, err = mod.ExportedFunction(tc.export).Call(ctx, tc.args...)
			if trapped := err != nil; trapped != tc.trap {
				t.Fatalf("err = %v, want trap %v", err, tc.trap)
			}
			if err != nil && !strings.Contains(err.Error(), "unreachable") {
				t.Fatal(err)
			}
		})
	}
}
