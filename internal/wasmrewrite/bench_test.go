package wasmrewrite

import (
	"bytes"
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Synthetic module for BenchmarkInstrumentLoops: functions of type
// (i32) -> i32 with locals 1-3 i32, 4 i64, 5 f64, made of a loop chunk that
// mixes locals, memory, constants of every width and calls, and branchy
// chunks without loops. One loop per ~100 bytes of code is denser than real
// compilers' output (the Go runtime has about one per 2 KB), which makes
// this a pessimistic input.
var (
	synthLoopChunk = []byte{
		0x02, 0x40, 0x03, 0x40, // block loop
		0x20, 0x00, 0x41, 0x01, 0x6b, 0x22, 0x00, 0x45, 0x0d, 0x01, // n = n-1; br_if n==0 out
		0x20, 0x01, 0x28, 0x02, 0x80, 0x08, 0x41, 0xc5, 0xc6, 0x04, 0x73, 0x21, 0x01, // l1 = load(l1+1024) ^ 0x12345
		0x20, 0x04, 0x42, 0xe4, 0x00, 0x7e, 0x21, 0x04, // l4 (i64) *= 100
		0x20, 0x05, 0x44, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 0xa2, 0x21, 0x05, // l5 (f64) *= 1.5
		0x20, 0x01, 0x10, 0x00, 0x1a, // drop(call 0 (l1))
		0x20, 0x02, 0x0d, 0x00, // br_if l2 (loop)
		0x0b, 0x0b,
	}
	synthBranchChunk = []byte{
		0x20, 0x00, 0x04, 0x40, // if l0
		0x20, 0x01, 0x20, 0x02, 0x36, 0x02, 0x10, // store(l1+16, l2)
		0x05,                                     // else
		0x20, 0x02, 0x41, 0x07, 0x6c, 0x21, 0x02, // l2 *= 7
		0x0b,
		0x02, 0x40, 0x20, 0x00, 0x0e, 0x02, 0x00, 0x00, 0x00, 0x0b, // block br_table 0 0 0 end
	}
)

// synthModule returns a valid module with about size bytes of code.
func synthModule(size int) []byte {
	var fbody []byte
	fbody = append(fbody, vec(3, []byte{0x03, 0x7f}, []byte{0x01, 0x7e}, []byte{0x01, 0x7c})...)
	for len(fbody) < 2000 {
		fbody = append(fbody, synthLoopChunk...)
		fbody = append(fbody, synthBranchChunk...)
		fbody = append(fbody, synthBranchChunk...)
	}
	fbody = append(fbody, 0x20, 0x01, 0x0b)
	entry := append(uleb(uint32(len(fbody))), fbody...)
	n := size/len(entry) + 1
	funcs := bytes.Repeat([]byte{0x00}, n)
	return module(
		sec(secType, vec(1, typeII)),
		sec(secFunction, vec(n, funcs)),
		memorySec,
		sec(secCode, vec(n, bytes.Repeat(entry, n))),
	)
}

func TestSynthModuleValid(t *testing.T) {
	wasm := synthModule(100_000)
	out := instrument(t, wasm, Options{})
	wasmValidate(t, out)
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer r.Close(ctx)
	for _, m := range [][]byte{wasm, out} {
		if _, err := r.CompileModule(ctx, m); err != nil {
			t.Fatalf("compile: %v", err)
		}
	}
}

// BenchmarkInstrumentLoops measures the rewrite itself (b.SetBytes: input size).
func BenchmarkInstrumentLoops(b *testing.B) {
	wasm := synthModule(10 << 20)
	b.Run("synthetic-10MB", func(b *testing.B) {
		b.SetBytes(int64(len(wasm)))
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			if _, err := InstrumentLoops(wasm, Options{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("go-command", func(b *testing.B) {
		wasm := buildGoGuest(b, "command")
		b.SetBytes(int64(len(wasm)))
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			if _, err := InstrumentLoops(wasm, Options{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGuest compares the cost of guest code under the termination
// strategies, in wazero compiler mode:
//
//   - plain: no termination at all (a spinning guest cannot be stopped);
//   - instrumented: InstrumentLoops, no per-call work;
//   - instrumented+timer: plus a per-instance time.AfterFunc watchdog armed
//     with Reset and disarmed with Stop around each call (what a host does);
//   - (the host's own per-call cost, a scanning watchdog, is measured by
//     host's BenchmarkHandleEcho);
//   - instrumented+ctxAfterFunc: plus context.AfterFunc on a deadline context
//     per call;
//   - closeOnContextDone: RuntimeConfig.WithCloseOnContextDone(true) and a
//     context with a deadline.
//
// sum runs 10M loop iterations per op; thin is a call to a loop-free
// function, thin_loop a call to a function with an 8-iteration loop.
func BenchmarkGuest(b *testing.B) {
	plain := readWasm(b, "bench")
	inst := instrument(b, plain, Options{})
	type config struct {
		name        string
		wasm        []byte
		closeOnDone bool
		arm         string // "", "timer", "ctx"
	}
	configs := []config{
		{"plain", plain, false, ""},
		{"instrumented", inst, false, ""},
		{"instrumented+timer", inst, false, "timer"},
		{"instrumented+ctxAfterFunc", inst, false, "ctx"},
		{"closeOnContextDone", plain, true, ""},
	}
	fns := []struct {
		name string
		arg  uint64
	}{{"sum", 10_000_000}, {"thin", 21}, {"thin_loop", 5}}
	for _, fn := range fns {
		for _, c := range configs {
			b.Run(fn.name+"/"+c.name, func(b *testing.B) {
				bg := context.Background()
				r := wazero.NewRuntimeWithConfig(bg, wazero.NewRuntimeConfigCompiler().WithCloseOnContextDone(c.closeOnDone))
				defer r.Close(bg)
				mod, err := r.Instantiate(bg, c.wasm)
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(bg, time.Hour)
				defer cancel()
				f := mod.ExportedFunction(fn.name)
				var interrupt api.MutableGlobal
				if g := mod.ExportedGlobal(InterruptExport); g != nil {
					interrupt = g.(api.MutableGlobal)
				}
				var timer *time.Timer
				if c.arm == "timer" {
					timer = time.AfterFunc(time.Hour, func() { interrupt.Set(1) })
					timer.Stop()
				}
				stack := make([]uint64, 1)
				b.ReportAllocs()
				defer reportCPU(b)()
				for b.Loop() {
					var stop func() bool
					switch c.arm {
					case "timer":
						timer.Reset(time.Hour)
					case "ctx":
						stop = context.AfterFunc(ctx, func() { interrupt.Set(1) })
					}
					stack[0] = fn.arg
					err := f.CallWithStack(ctx, stack)
					switch c.arm {
					case "timer":
						timer.Stop()
					case "ctx":
						stop()
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// reportCPU reports the process CPU time (user+system, all threads, GC
// included) per op as "cpu-ns/op", which unlike ns/op does not count time
// the process spent waiting for a CPU on a shared machine. Use it as
// defer reportCPU(b)() right before the measured loop.
func reportCPU(b *testing.B) func() {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(cpu()-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

// BenchmarkGoGuest measures the instrumentation overhead on real compiler
// output: the Go reactor's compute export (sorting, a map, slices) and its
// checksum export (a byte loop plus crc32), plain and instrumented.
func BenchmarkGoGuest(b *testing.B) {
	plain := buildGoGuest(b, "reactor", "-buildmode=c-shared")
	inst := instrument(b, plain, Options{})
	for _, fn := range []struct {
		name string
		arg  uint64
	}{{"compute", 20000}, {"checksum", 1 << 16}} {
		for _, v := range []struct {
			name string
			wasm []byte
		}{{"plain", plain}, {"instrumented", inst}} {
			b.Run(fn.name+"/"+v.name, func(b *testing.B) {
				ctx := context.Background()
				r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
				defer r.Close(ctx)
				wasi_snapshot_preview1.MustInstantiate(ctx, r)
				mod, err := r.InstantiateWithConfig(ctx, v.wasm,
					wazero.NewModuleConfig().WithStartFunctions("_initialize"))
				if err != nil {
					b.Fatal(err)
				}
				f := mod.ExportedFunction(fn.name)
				stack := make([]uint64, 1)
				b.ReportAllocs()
				defer reportCPU(b)()
				for b.Loop() {
					stack[0] = fn.arg
					if err := f.CallWithStack(ctx, stack); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
