package wasmrewrite

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/tetratelabs/wazero"
)

// dataModule builds a module with one 1-page memory exported as "mem",
// optionally imported instead of defined, and a data section made of raw
// segment encodings.
func dataModule(importMem bool, segs ...[]byte) []byte {
	m := append([]byte(nil), header...)
	section := func(id byte, payload []byte) {
		m = append(m, id)
		m = appendU32(m, uint32(len(payload)))
		m = append(m, payload...)
	}
	if importMem {
		section(secImport, []byte{1, 3, 'e', 'n', 'v', 3, 'm', 'e', 'm', 0x02, 0x00, 0x01})
	} else {
		section(secMemory, []byte{1, 0x00, 0x01})
	}
	section(secExport, []byte{1, 3, 'm', 'e', 'm', 0x02, 0x00})
	section(secCustom, []byte{7, 'l', 'i', 'n', 'k', 'i', 'n', 'g', 2})
	data := appendU32(nil, uint32(len(segs)))
	for _, s := range segs {
		data = append(data, s...)
	}
	section(secData, data)
	return m
}

// active encodes an active segment on memory 0 at off.
func active(off int32, b ...byte) []byte {
	s := appendS32([]byte{0x00, 0x41}, off)
	s = append(s, 0x0b)
	s = appendU32(s, uint32(len(b)))
	return append(s, b...)
}

// memoryAfterInstantiate returns the first page of a fresh instance's
// memory, after writing image (if any) at address 0.
func memoryAfterInstantiate(t *testing.T, wasm, image []byte) []byte {
	t.Helper()
	ctx := context.Background()
	r := newRuntime(t)
	mod, err := r.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	defer mod.Close(ctx)
	if len(image) > 0 && !mod.Memory().Write(0, image) {
		t.Fatal("image larger than memory")
	}
	b, ok := mod.Memory().Read(0, 65536)
	if !ok {
		t.Fatal("memory smaller than a page")
	}
	return bytes.Clone(b)
}

func TestDataImage(t *testing.T) {
	// Out of order on purpose.
	in := dataModule(false,
		active(9, 'c', 'd'),
		active(5, 'a', 'b', 0, 0),
		active(11, 'e'),
		active(5012, 'z'),
	)
	code, image, ok, err := DataImage(in)
	if err != nil || !ok {
		t.Fatalf("DataImage: ok %v, %v", ok, err)
	}
	if len(image) != 5013 || string(image[5:12]) != "ab\x00\x00cde" || image[5012] != 'z' || image[4] != 0 {
		t.Fatalf("image of %d bytes: %q...%q", len(image), image[:12], image[5000:])
	}
	if bytes.Contains(code, []byte("linking")) {
		t.Fatal("the linking custom section was kept")
	}
	want := memoryAfterInstantiate(t, in, nil)
	if got := memoryAfterInstantiate(t, code, nil); got[9] != 0 {
		t.Fatal("the module without its data section still writes data")
	}
	if got := memoryAfterInstantiate(t, code, image); !bytes.Equal(got, want) {
		t.Fatal("memory with the image differs from the original module's")
	}
}

func TestDataImageLeavesModuleAlone(t *testing.T) {
	passive := []byte{0x01, 2, 'p', 'q'}
	for name, in := range map[string][]byte{
		"overlapping":      dataModule(false, active(4, 'a', 'b', 'c'), active(5, 'x')),
		"imported memory":  dataModule(true, active(4, 'a'), active(6, 'b')),
		"passive segment":  dataModule(false, active(4, 'a'), passive),
		"beyond memory":    dataModule(false, active(0, 'a'), active(65536, 'b')),
		"global offset":    dataModule(false, active(0, 'a'), []byte{0x00, 0x23, 0x00, 0x0b, 1, 'b'}),
		"no data sections": append([]byte(nil), header...),
	} {
		code, image, ok, err := DataImage(in)
		if err != nil || ok || image != nil || !bytes.Equal(code, in) {
			t.Errorf("%s: ok %v, err %v, image %d bytes, code equal %v; want the input unchanged", name, ok, err, len(image), bytes.Equal(code, in))
		}
	}
}

func TestDataImageMalformed(t *testing.T) {
	in := dataModule(false, active(4, 'a', 'b'), active(8, 'c'))
	for cut := 9; cut < len(in); cut++ {
		if _, _, _, err := DataImage(in[:cut]); err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
			t.Fatalf("cut at %d: %v, want ErrMalformed", cut, err)
		}
	}
	bad := dataModule(false, active(4, 'a'), []byte{0x00, 0x41, 0x04, 0x0b, 200, 'b'}) // length past the end
	if _, _, _, err := DataImage(bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("segment past the end: %v, want ErrMalformed", err)
	}
}

// TestDataImageGoReactor: a Go reactor (tens of thousands of segments)
// started from its image has the same memory and results.
func TestDataImageGoReactor(t *testing.T) {
	wasm := buildGoGuest(t, "reactor", "-buildmode=c-shared")
	code, image, ok, err := DataImage(wasm)
	if err != nil || !ok {
		t.Fatalf("DataImage: ok %v, %v", ok, err)
	}
	t.Logf("go reactor: %d bytes -> %d bytes of code and a %d byte image", len(wasm), len(code), len(image))
	ctx := context.Background()
	r := newWASIRuntime(t)
	run := func(wasm, image []byte) ([]byte, uint64) {
		mod, err := r.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName("").WithStartFunctions())
		if err != nil {
			t.Fatalf("instantiate: %v", err)
		}
		defer mod.Close(ctx)
		if image != nil && !mod.Memory().Write(0, image) {
			t.Fatal("image larger than memory")
		}
		mem, _ := mod.Memory().Read(0, mod.Memory().Size())
		mem = bytes.Clone(mem)
		if _, err := mod.ExportedFunction("_initialize").Call(ctx); err != nil {
			t.Fatal(err)
		}
		v, err := mod.ExportedFunction("compute").Call(ctx, 1000)
		if err != nil {
			t.Fatal(err)
		}
		return mem, v[0]
	}
	wantMem, want := run(wasm, nil)
	gotMem, got := run(code, image)
	if !bytes.Equal(gotMem, wantMem) {
		t.Fatal("memory before _initialize differs")
	}
	if got != want {
		t.Fatalf("compute(1000) = %d, want %d", got, want)
	}
}

func BenchmarkDataImageGo(b *testing.B) {
	wasm := buildGoGuest(b, "reactor", "-buildmode=c-shared")
	for b.Loop() {
		if _, _, ok, err := DataImage(wasm); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
