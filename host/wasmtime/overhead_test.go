package wasmtime_test

import (
	"context"
	"encoding/binary"
	"os"
	"testing"

	wt "github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/wasmcorn/wasmcorn/abi"
	_ "github.com/wasmcorn/wasmcorn/host" // registers wazero
	"github.com/wasmcorn/wasmcorn/host/engine"
	"github.com/wasmcorn/wasmcorn/host/enginetest"
	"github.com/wasmcorn/wasmcorn/host/wasmtime"
)

// The call-overhead benchmarks run testdata/calls.wat, whose handle makes
// K host calls (K is the request's first 4 bytes): K=0 measures an export
// call, K=100 adds 100 host calls. They compare the wasmtime-go binding's
// own API (Func.Call, Linker.FuncNew), this engine, and wazero, all at the
// engine level (no pool).

func callsWasm(b *testing.B) []byte {
	w, err := os.ReadFile("testdata/calls.wasm")
	if err != nil {
		b.Fatal(err)
	}
	return w
}

func kRequest(k uint32) []byte {
	return binary.LittleEndian.AppendUint32(nil, k)
}

// nopCaller answers every host call with an empty reply.
type nopCaller struct{}

func (nopCaller) HostCall(_ context.Context, _ uint32, _ []byte, reply []byte) []byte {
	return reply[:0]
}

func BenchmarkCallOverhead(b *testing.B) {
	for _, k := range []uint32{0, 100} {
		name := "export"
		if k > 0 {
			name = "export+100hostcalls"
		}
		b.Run("binding/"+name, func(b *testing.B) { benchBinding(b, k) })
		for _, eng := range []string{"wazero", wasmtime.Name} {
			for _, enforced := range []bool{false, true} {
				sub := eng + "/" + name
				if enforced {
					sub += "/deadline_enforced"
				}
				b.Run(sub, func(b *testing.B) { benchEngine(b, eng, enforced, k) })
			}
		}
	}
}

func benchEngine(b *testing.B, name string, enforced bool, k uint32) {
	ctx := context.Background()
	e, err := engine.New(name, engine.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close(ctx)
	m, err := e.Compile(ctx, "calls", callsWasm(b), engine.ModuleConfig{Interruptible: enforced})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close(ctx)
	in, err := m.Instantiate(ctx, nopCaller{})
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close(ctx)
	req := kRequest(k)
	enginetest.Loop(b, func() {
		if _, err := in.Call(ctx, abi.ExportHandle, req, 1<<20); err != nil {
			b.Fatal(err)
		}
	})
}

// benchBinding is the same call through wasmtime-go's API: what an engine
// written on the binding would pay.
func benchBinding(b *testing.B, k uint32) {
	eng := wt.NewEngine()
	mod, err := wt.NewModule(eng, callsWasm(b))
	if err != nil {
		b.Fatal(err)
	}
	l := wt.NewLinker(eng)
	i32 := wt.NewValType(wt.KindI32)
	ty := wt.NewFuncType([]*wt.ValType{i32, i32, i32, i32, i32}, []*wt.ValType{i32})
	if err := l.FuncNew(abi.ImportModule, abi.ImportCall, ty, func(*wt.Caller, []wt.Val) ([]wt.Val, *wt.Trap) {
		return []wt.Val{wt.ValI32(0)}, nil
	}); err != nil {
		b.Fatal(err)
	}
	store := wt.NewStore(eng)
	inst, err := l.Instantiate(store, mod)
	if err != nil {
		b.Fatal(err)
	}
	mem := inst.GetExport(store, "memory").Memory()
	binary.LittleEndian.PutUint32(mem.UnsafeData(store)[65536:], k)
	handle := inst.GetFunc(store, abi.ExportHandle)
	enginetest.Loop(b, func() {
		if _, err := handle.Call(store, int32(65536), int32(4)); err != nil {
			b.Fatal(err)
		}
	})
}
