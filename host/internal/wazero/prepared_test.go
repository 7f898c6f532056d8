package wazero

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestPreparedFile(t *testing.T) {
	code, image := []byte("\x00asm\x01\x00\x00\x00code"), []byte("image bytes")
	for _, instrumented := range []bool{false, true} {
		b := encodePrepared(code, image, instrumented)
		c, img, ins, ok := decodePrepared(b)
		if !ok || !bytes.Equal(c, code) || !bytes.Equal(img, image) || ins != instrumented {
			t.Fatalf("round trip: ok %v, code %q, image %q, instrumented %v", ok, c, img, ins)
		}
	}
	if _, img, _, ok := decodePrepared(encodePrepared(code, nil, false)); !ok || img != nil {
		t.Fatalf("no image: ok %v, image %q", ok, img)
	}
	b := encodePrepared(code, image, true)
	for i := range b {
		bad := bytes.Clone(b)
		bad[i] ^= 0x40
		if _, _, _, ok := decodePrepared(bad); ok {
			t.Fatalf("byte %d damaged, still accepted", i)
		}
	}
	for n := range len(b) {
		if _, _, _, ok := decodePrepared(b[:n]); ok {
			t.Fatalf("truncated to %d bytes, still accepted", n)
		}
	}
}

// TestWritePreparedConcurrent: loads of the same module at once each write
// the prepared file through a temporary file of their own; the result is
// one whole file and no temporary file left behind.
func TestWritePreparedConcurrent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "v2-instrumented-x")
	b := encodePrepared(bytes.Repeat([]byte("code"), 1<<16), bytes.Repeat([]byte("image"), 1<<16), true)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { writePrepared(path, b) })
	}
	wg.Wait()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, ok := decodePrepared(got); !ok || !bytes.Equal(got, b) {
		t.Fatal("the prepared file is not the one written")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("%d files in the cache directory, want only the prepared file", len(entries))
	}
}
