package wasmrewrite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// TestGolden compares InstrumentLoops(X_in.wasm) with X_out.wasm, assembled
// by wat2wasm from a hand-written expected .wat.
func TestGolden(t *testing.T) {
	for _, name := range []string{"golden", "golden_eh"} {
		t.Run(name, func(t *testing.T) {
			in := readWasm(t, name+"_in")
			orig := bytes.Clone(in)
			got := instrument(t, in, Options{})
			want := readWasm(t, name+"_out")
			if !bytes.Equal(got, want) {
				t.Fatalf("InstrumentLoops(%s_in) differs from %s_out\n got: % x\nwant: % x", name, name, got, want)
			}
			if !bytes.Equal(in, orig) {
				t.Fatal("InstrumentLoops modified its input")
			}
			if again := instrument(t, in, Options{}); !bytes.Equal(again, got) {
				t.Fatal("second rewrite differs from the first")
			}
		})
	}
}

// call is one invocation of an export.
type call struct {
	export string
	args   []uint64
}

func (c call) String() string { return fmt.Sprintf("%s%v", c.export, c.args) }

// runCalls instantiates wasm afresh for each call (exports may consume
// passive segments) and returns the results or error strings.
func runCalls(t *testing.T, r wazero.Runtime, wasm []byte, calls []call) []string {
	t.Helper()
	ctx := context.Background()
	cm, err := r.CompileModule(ctx, wasm)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	defer cm.Close(ctx)
	var out []string
	for _, c := range calls {
		mod, err := r.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName(""))
		if err != nil {
			t.Fatalf("instantiate: %v", err)
		}
		fn := mod.ExportedFunction(c.export)
		if fn == nil {
			t.Fatalf("no export %q", c.export)
		}
		res, err := fn.Call(ctx, c.args...)
		if err != nil {
			out = append(out, fmt.Sprintf("%v: error %v", c, err))
		} else {
			out = append(out, fmt.Sprintf("%v = %v", c, res))
		}
		mod.Close(ctx)
	}
	return out
}

// checkSameResults runs calls on the original and on instrumented variants
// with several TickEvery values (1 ticks on every iteration).
func checkSameResults(t *testing.T, wasm []byte, calls []call) {
	r := newRuntime(t)
	want := runCalls(t, r, wasm, calls)
	for _, s := range want {
		if strings.Contains(s, "error") {
			t.Fatalf("original module: %s", s)
		}
	}
	for _, tick := range []uint32{1, 3, 0} {
		t.Run(fmt.Sprintf("TickEvery=%d", tick), func(t *testing.T) {
			out := instrument(t, wasm, Options{TickEvery: tick})
			wasmValidate(t, out)
			got := runCalls(t, r, out, calls)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("results differ\n got: %q\nwant: %q", got, want)
			}
		})
	}
}

func TestComputeSameResults(t *testing.T) {
	checkSameResults(t, readWasm(t, "compute"), []call{
		{"add", []uint64{40, 2}},
		{"nested", []uint64{300, 200}},
		{"nested", []uint64{0, 5}},
		{"collatz", []uint64{27}},
		{"collatz", []uint64{837799}},
		{"fib", []uint64{90}},
		{"divmod_sum", []uint64{1000}},
		{"machine", []uint64{100001}},
		{"primes", []uint64{65536}},
		{"calls", []uint64{300}},
	})
}

func TestFeaturesSameResults(t *testing.T) {
	checkSameResults(t, readWasm(t, "features"), []call{
		{"simd", []uint64{1000}},
		{"bulk", []uint64{1000}},
		{"tables", []uint64{1001}},
		{"numeric", []uint64{5000}},
		{"atomics", []uint64{2500}},
		{"tail", []uint64{100000}},
	})
}

// Hand-assembled modules (wabt 1.0.32 cannot assemble try_table).

func uleb(v uint32) []byte { return appendU32(nil, v) }

func sec(id byte, payload ...[]byte) []byte {
	p := bytes.Join(payload, nil)
	return append(append([]byte{id}, uleb(uint32(len(p)))...), p...)
}

func vec(n int, items ...[]byte) []byte {
	return append(uleb(uint32(n)), bytes.Join(items, nil)...)
}

func module(sections ...[]byte) []byte {
	return append(bytes.Clone(header), bytes.Join(sections, nil)...)
}

func str(s string) []byte { return append(uleb(uint32(len(s))), s...) }

func body(locals []byte, code ...byte) []byte {
	b := append(bytes.Clone(locals), code...)
	return append(uleb(uint32(len(b))), b...)
}

var (
	memorySec = sec(secMemory, vec(1, []byte{0x00, 0x01}))
	typeVoid  = []byte{0x60, 0x00, 0x00}
	typeII    = []byte{0x60, 0x01, 0x7f, 0x01, 0x7f}
)

// tryTableModule: (func (export "f") (param $n i32) (result i32)) counting
// how often a thrown tag is caught by try_table inside a loop, plus one
// catch_all_ref/throw_ref round trip.
func tryTableModule() []byte {
	code := []byte{
		0x03, 0x40, // loop
		0x02, 0x7f, // block (result i32)        ;; catch target
		0x1f, 0x40, 0x01, 0x00, 0x00, 0x00, //    try_table (catch $tag 0)
		0x20, 0x00, 0x08, 0x00, //                  local.get 0; throw $tag
		0x0b,       //    end
		0x41, 0x00, //                            i32.const 0 (unreachable)
		0x0b,                         //  end
		0x20, 0x01, 0x6a, 0x21, 0x01, // local.get 1; i32.add; local.set 1
		0x20, 0x00, 0x41, 0x01, 0x6b, 0x22, 0x00, // n = n - 1 (tee)
		0x0d, 0x00, // br_if 0 (loop)
		0x0b, // end loop
		// Catch with catch_all_ref, keep the exnref in a local, rethrow it with
		// throw_ref and catch it again with catch_all.
		0x02, 0x40, //                           block $outer
		0x02, 0x69, //                             block (result exnref)
		0x1f, 0x40, 0x01, 0x03, 0x00, //             try_table (catch_all_ref 0)
		0x41, 0x05, 0x08, 0x00, //                     i32.const 5; throw $tag
		0x0b,       //                               end
		0x00,       //                               unreachable
		0x0b,       //                             end
		0x21, 0x02, //                             local.set 2
		0x1f, 0x40, 0x01, 0x02, 0x00, //           try_table (catch_all 0) -> $outer
		0x20, 0x02, 0x0a, //                         local.get 2; throw_ref
		0x0b,                         //                                   end
		0x0b,                         //                                 end
		0x20, 0x01, 0x41, 0x07, 0x6a, // local.get 1; i32.const 7; i32.add
		0x0b,
	}
	return module(
		sec(secType, vec(2, typeII, []byte{0x60, 0x01, 0x7f, 0x00})),
		sec(secFunction, vec(1, uleb(0))),
		memorySec,
		sec(secTag, vec(1, []byte{0x00, 0x01})),
		sec(secExport, vec(1, str("f"), []byte{0x00, 0x00})),
		sec(secCode, vec(1, body(vec(2, []byte{0x01, 0x7f}, []byte{0x01, 0x69}), code...))),
	)
}

func TestTryTable(t *testing.T) {
	wasm := tryTableModule()
	out := instrument(t, wasm, Options{TickEvery: 2})
	if !bytes.Contains(out, []byte(InterruptExport)) {
		t.Fatal("no interrupt export in output")
	}
	r := newRuntime(t)
	if _, err := r.CompileModule(context.Background(), wasm); err != nil {
		t.Fatalf("compile original: %v", err)
	}
	want := runCalls(t, r, wasm, []call{{"f", []uint64{50}}})
	got := runCalls(t, r, out, []call{{"f", []uint64{50}}})
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	// (50+49+...+1) + 7
	if want[0] != "f[50] = [1282]" {
		t.Fatalf("unexpected original result %q", want[0])
	}
}

// TestOpcodeImmediates checks the decoder against hand-encoded bodies, each
// ending in a loop so a wrong immediate length shows up as a missing or
// misplaced instrumentation sequence.
func TestOpcodeImmediates(t *testing.T) {
	cases := []struct {
		name string
		code []byte
	}{
		{"memarg multi-memory", []byte{0x41, 0x00, 0x28, 0x42, 0x00, 0x84, 0x01, 0x1a}},
		{"i64.const max length", []byte{0x42, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x1a}},
		{"f32 f64 consts", []byte{0x43, 0x03, 0x03, 0x03, 0x03, 0x1a, 0x44, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x1a}},
		{"select t", []byte{0x41, 0x01, 0x41, 0x02, 0x41, 0x00, 0x1c, 0x01, 0x7f, 0x1a}},
		{"block type index", []byte{0x02, 0x00, 0x0b}},
		{"br_table", []byte{0x02, 0x40, 0x41, 0x00, 0x0e, 0x02, 0x00, 0x00, 0x00, 0x0b}},
		{"ref.null ref.is_null", []byte{0xd0, 0x70, 0xd1, 0x1a}},
		{"fc sat", []byte{0x43, 0, 0, 0, 0, 0xfc, 0x00, 0x1a}},
		{"fc memory.copy", []byte{0x41, 0, 0x41, 0, 0x41, 0, 0xfc, 0x0a, 0x00, 0x00}},
		{"fc memory.fill", []byte{0x41, 0, 0x41, 0, 0x41, 0, 0xfc, 0x0b, 0x00}},
		{"fd v128.const", append(append([]byte{0xfd, 0x0c}, make([]byte, 16)...), 0x1a)},
		{"fd shuffle", append(append([]byte{0xfd, 0x0c}, make([]byte, 16)...), append(append([]byte{0xfd, 0x0c}, make([]byte, 16)...), append(append([]byte{0xfd, 0x0d}, make([]byte, 16)...), 0x1a)...)...)},
		{"fd lane", append(append([]byte{0xfd, 0x0c}, make([]byte, 16)...), 0xfd, 0x15, 0x0f, 0x1a)},
		{"fd load lane", append(append([]byte{0x41, 0x00, 0xfd, 0x0c}, make([]byte, 16)...), 0xfd, 0x54, 0x00, 0x00, 0x03, 0x1a)},
		{"fd two-byte opcode", append(append([]byte{0xfd, 0x0c}, make([]byte, 16)...), 0xfd, 0xe0, 0x01, 0x1a)}, // f32x4.abs
		{"fe fence", []byte{0xfe, 0x03, 0x00}},
		{"fe rmw", []byte{0x41, 0x00, 0x41, 0x01, 0xfe, 0x1e, 0x02, 0x00, 0x1a}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code := append(bytes.Clone(tc.code), 0x03, 0x40, 0x0b, 0x0b) // loop end; end
			wasm := module(
				sec(secType, vec(2, typeVoid, typeII)),
				sec(secFunction, vec(1, uleb(0))),
				memorySec,
				sec(secCode, vec(1, body(vec(0), code...))),
			)
			out := instrument(t, wasm, Options{})
			// fuel is global 0, $tick is function 1.
			check := []byte{0x23, 0x00, 0x41, 0x01, 0x6b, 0x24, 0x00, 0x23, 0x00, 0x45, 0x04, 0x40, 0x10, 0x01, 0x0b}
			want := append(append(bytes.Clone(tc.code), 0x03, 0x40), check...)
			want = append(want, 0x0b, 0x0b)
			if !bytes.Contains(out, body(vec(0), want...)) {
				t.Fatalf("instrumented body not found in output % x", out)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	funcs := func(code ...byte) [][]byte {
		return [][]byte{
			sec(secType, vec(1, typeVoid)),
			sec(secFunction, vec(1, uleb(0))),
			memorySec,
			sec(secCode, vec(1, body(vec(0), code...))),
		}
	}
	valid := module(funcs(0x03, 0x40, 0x0b, 0x0b)...)
	if _, err := InstrumentLoops(valid, Options{}); err != nil {
		t.Fatalf("valid base module: %v", err)
	}
	cases := []struct {
		name string
		wasm []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"bad magic", []byte("\x00asn\x01\x00\x00\x00"), ErrMalformed},
		{"component", []byte("\x00asm\x0d\x00\x01\x00"), ErrUnsupported},
		{"no memory", module(sec(secType, vec(1, typeVoid))), ErrUnsupported},
		{"memory64", module(sec(secMemory, vec(1, []byte{0x04, 0x01}))), ErrUnsupported},
		{"imported memory64", module(sec(secImport, vec(1, str("a"), str("m"), []byte{0x02, 0x05, 0x01, 0x02}))), ErrUnsupported},
		{"custom page size", module(sec(secMemory, vec(1, []byte{0x08, 0x01, 0x00}))), ErrUnsupported},
		{"table64", module(memorySec[:0], sec(secImport, vec(2, str("a"), str("t"), []byte{0x01, 0x70, 0x04, 0x01}, str("a"), str("m"), []byte{0x02, 0x00, 0x01}))), ErrUnsupported},
		{"export exists", module(memorySec, sec(secExport, vec(1, str(InterruptExport), []byte{0x02, 0x00}))), ErrUnsupported},
		{"gc type", module(sec(secType, vec(1, []byte{0x5f, 0x00})), memorySec), ErrUnsupported},
		{"gc value type", module(sec(secType, vec(1, []byte{0x60, 0x01, 0x6e, 0x00})), memorySec), ErrUnsupported},
		{"unknown opcode", module(funcs(0x27, 0x0b)...), ErrUnsupported},
		{"gc prefix", module(funcs(0xfb, 0x00, 0x0b)...), ErrUnsupported},
		{"unknown fc", module(funcs(0xfc, 0x20, 0x0b)...), ErrUnsupported},
		{"unassigned simd", module(funcs(0xfd, 0x9a, 0x01, 0x0b)...), ErrUnsupported},
		{"unknown fe", module(funcs(0xfe, 0x04, 0x0b)...), ErrUnsupported},
		{"unknown section", module(memorySec, sec(14)), ErrUnsupported},
		{"truncated section", valid[:len(valid)-1], ErrMalformed},
		{"sections out of order", module(memorySec, sec(secType, vec(0))), ErrMalformed},
		{"duplicate section", module(memorySec, memorySec), ErrMalformed},
		{"no code section", module(sec(secType, vec(1, typeVoid)), sec(secFunction, vec(1, uleb(0))), memorySec), ErrMalformed},
		{"function type out of range", module(sec(secType, vec(1, typeVoid)), sec(secFunction, vec(1, uleb(1))), memorySec, sec(secCode, vec(1, body(vec(0), 0x0b)))), ErrMalformed},
		{"import type out of range", module(sec(secImport, vec(1, str("a"), str("f"), []byte{0x00, 0x00})), memorySec), ErrMalformed},
		{"code count mismatch", module(sec(secType, vec(1, typeVoid)), sec(secFunction, vec(1, uleb(0))), memorySec, sec(secCode, vec(0))), ErrMalformed},
		{"body without end", module(funcs(0x03, 0x40, 0x0b)...), ErrMalformed},
		{"bytes after end", module(funcs(0x0b, 0x01)...), ErrMalformed},
		{"truncated immediate", module(funcs(0x41, 0x80)...), ErrMalformed},
		{"overlong u32", module(funcs(0x20, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0x1a, 0x0b)...), ErrMalformed},
		{"global out of range", module(funcs(0x23, 0x00, 0x1a, 0x0b)...), ErrMalformed},
		{"global set of future fuel", module(append(funcs(0x41, 0x00, 0x24, 0x01, 0x0b), sec(secGlobal, vec(1, []byte{0x7f, 0x01, 0x41, 0x00, 0x0b})))...), ErrMalformed},
		{"export of future global", module(memorySec, sec(secExport, vec(1, str("x"), []byte{0x03, 0x00}))), ErrMalformed},
		{"delegate at top", module(funcs(0x18, 0x00, 0x0b)...), ErrMalformed},
		{"bad custom name", module(sec(secCustom, []byte{0x05, 'a'}), memorySec), ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := InstrumentLoops(tc.wasm, Options{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if out != nil {
				t.Fatal("output returned with an error")
			}
		})
	}
}

func TestCustomSections(t *testing.T) {
	custom := func(name, data string) []byte { return sec(secCustom, str(name), []byte(data)) }
	wasm := module(
		custom("producers", "p"),
		sec(secType, vec(1, typeVoid)),
		sec(secFunction, vec(1, uleb(0))),
		memorySec,
		sec(secCode, vec(1, body(vec(0), 0x03, 0x40, 0x0b, 0x0b))),
		custom(".debug_info", "d"),
		custom(".debug_line", "l"),
		custom("sourceMappingURL", "u"),
		custom("external_debug_info", "e"),
		custom("metadata.code.branch_hint", "b"),
		custom("name", "\x01\x04\x01\x00\x01f"), // function 0 is "f"
	)
	out := instrument(t, wasm, Options{})
	for _, s := range []struct {
		name string
		kept bool
	}{{"producers", true}, {"name", true}, {".debug_info", false}, {".debug_line", false},
		{"sourceMappingURL", false}, {"external_debug_info", false}, {"metadata.code.branch_hint", false}} {
		if got := bytes.Contains(out, str(s.name)); got != s.kept {
			t.Errorf("section %q kept = %v, want %v", s.name, got, s.kept)
		}
	}
	r := newRuntime(t)
	cm, err := r.CompileModule(context.Background(), out)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	if name := cm.ExportedFunctions(); len(name) != 0 {
		t.Fatalf("unexpected exports %v", name)
	}
}

// TestMissingSections: a module with nothing but an imported memory gets
// type, function, global, export and code sections, in valid order.
func TestMissingSections(t *testing.T) {
	for _, tc := range []struct {
		name string
		wasm []byte
	}{
		{"imported memory only", module(sec(secImport, vec(1, str("env"), str("memory"), []byte{0x02, 0x00, 0x01})))},
		{"memory and data", module(memorySec, sec(secData, vec(1, []byte{0x00, 0x41, 0x00, 0x0b}, str("hi"))))},
		{"leading custom", module(sec(secCustom, str("c"), []byte{1}), memorySec, sec(secCustom, str("d"), []byte{2}))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := instrument(t, tc.wasm, Options{})
			wasmValidate(t, out)
			ctx := context.Background()
			r := newRuntime(t)
			if bytes.Contains(tc.wasm, []byte("env")) {
				env := module(memorySec, sec(secExport, vec(1, str("memory"), []byte{0x02, 0x00})))
				if _, err := r.InstantiateWithConfig(ctx, env, wazero.NewModuleConfig().WithName("env")); err != nil {
					t.Fatal(err)
				}
			}
			mod, err := r.Instantiate(ctx, out)
			if err != nil {
				t.Fatalf("instantiate: %v", err)
			}
			g, ok := mod.ExportedGlobal(InterruptExport).(api.MutableGlobal)
			if !ok || g.Get() != 0 {
				t.Fatalf("interrupt global = %v (mutable %v)", g, ok)
			}
		})
	}
}
