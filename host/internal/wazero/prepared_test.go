package wazero

import (
	"bytes"
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
