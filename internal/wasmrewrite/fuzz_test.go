package wasmrewrite

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/tetratelabs/wazero"
)

// FuzzInstrumentLoops checks that InstrumentLoops never panics, leaves its
// input alone, wraps every error in ErrMalformed or ErrUnsupported, and,
// against wazero's own decoder and validator, that the rewrite of a module
// wazero accepts is accepted too.
//
// wazero's decoder allocates by the counts it reads before checking them
// (a 5-byte vector length can cost it gigabytes), so the comparison only runs
// on inputs that InstrumentLoops accepted (which checks most counts against
// the bytes present) and that pass wazeroSafe.
func FuzzInstrumentLoops(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.wasm"))
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint32(0))
	}
	f.Add(tryTableModule(), uint32(1))
	f.Add(spinTryTableModule(), uint32(7))

	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter().WithCoreFeatures(allFeatures))
	defer r.Close(ctx)

	f.Fuzz(func(t *testing.T, wasm []byte, tick uint32) {
		in := bytes.Clone(wasm)
		out, err := InstrumentLoops(wasm, Options{TickEvery: tick})
		if !bytes.Equal(in, wasm) {
			t.Fatal("input modified")
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error wraps neither sentinel: %v", err)
			}
			if out != nil {
				t.Fatal("output with error")
			}
		}
		if err != nil || !wazeroSafe(wasm) {
			return
		}
		if !compiles(ctx, r, wasm) {
			return // wazero rejects the input (or panics on it): nothing to compare
		}
		cm, cerr := r.CompileModule(ctx, out)
		if cerr != nil {
			t.Fatalf("wazero accepts the input but rejects its rewrite: %v", cerr)
		}
		cm.Close(ctx)
	})
}

// compiles reports whether wazero compiles wasm. wazero v1.12.0 panics on
// some malformed modules (e.g. a call to a function whose type index is out
// of range); that counts as not compiling.
func compiles(ctx context.Context, r wazero.Runtime, wasm []byte) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	cm, err := r.CompileModule(ctx, wasm)
	if err != nil {
		return false
	}
	cm.Close(ctx)
	return true
}

// wazeroSafe reports whether wazero can decode wasm without huge
// allocations: no section that InstrumentLoops copies without parsing
// contains a LEB128 value above 1<<20 at any offset, and no function
// declares more than 1<<16 locals.
func wazeroSafe(wasm []byte) bool {
	const limit = 1 << 20
	for p := 8; p < len(wasm); {
		id := wasm[p]
		size, q := readU32(wasm, p+1)
		if q < 0 || uint64(size) > uint64(len(wasm)-q) {
			return false
		}
		payload := wasm[q : q+int(size)]
		p = q + int(size)
		switch id {
		case secCode:
			n, q := readU32(payload, 0)
			for i := uint32(0); i < n && q >= 0; i++ {
				size, b := readU32(payload, q)
				if b < 0 || uint64(size) > uint64(len(payload)-b) {
					return false
				}
				body := payload[b : b+int(size)]
				q = b + int(size)
				var sum uint64
				m, l := readU32(body, 0)
				for j := uint32(0); j < m && l >= 0; j++ {
					var k uint32
					if k, l = readU32(body, l); l >= 0 {
						sum += uint64(k)
						l = skipValType(body, l)
					}
				}
				if sum > 1<<16 {
					return false
				}
			}
		case secType, secImport, secFunction, secMemory, secExport:
			// Fully parsed by InstrumentLoops.
		default:
			for i := range payload {
				if v, q := readU32(payload, i); q >= 0 && v > limit {
					return false
				}
			}
		}
	}
	return true
}
