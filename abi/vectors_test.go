package abi_test

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/abi/abitest"
)

const vectorsFile = "testdata/vectors.json"

func TestVectors(t *testing.T) {
	vs, err := abitest.Load(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for i := range vs {
		v := &vs[i]
		kinds[v.Kind]++
		t.Run(v.Name, func(t *testing.T) {
			if err := abitest.Check(v); err != nil {
				t.Fatal(err)
			}
		})
	}
	for _, k := range []string{abitest.KindRequest, abitest.KindResponse, abitest.KindJob,
		abitest.KindJobResult, abitest.KindValues, abitest.KindReply} {
		if kinds[k] == 0 {
			t.Errorf("no vectors of kind %s", k)
		}
	}
}

// TestVectorsUpToDate fails when the checked-in file differs from the
// generator; run `go run ./abi/internal/genvectors` from the repository root.
func TestVectorsUpToDate(t *testing.T) {
	want, err := abitest.Marshal(abitest.Generate())
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: run `go run ./abi/internal/genvectors` from the repository root", vectorsFile)
	}
}

// TestVectorNamesUnique keeps the vector names usable as test names in
// every SDK.
func TestVectorNamesUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range abitest.Generate() {
		if seen[v.Name] {
			t.Errorf("duplicate vector name %s", v.Name)
		}
		seen[v.Name] = true
		if (v.Error == "") == (v.Decoded == nil) {
			t.Errorf("vector %s must have exactly one of decoded and error", v.Name)
		}
	}
}

func TestHeaderCountOverLimit(t *testing.T) {
	// Enough bytes for MaxHeaders+1 empty headers: refused by the limit,
	// not by the remaining length.
	msg := make([]byte, 0, 32+8*(abi.MaxHeaders+1)+4)
	for range 7 {
		msg = abi.AppendU32(msg, 0)
	}
	msg = abi.AppendU32(msg, abi.MaxHeaders+1)
	msg = append(msg, make([]byte, 8*(abi.MaxHeaders+1)+4)...)
	var r abi.Request
	if err := abi.DecodeRequest(msg, &r); !errors.Is(err, abi.ErrShort) {
		t.Fatalf("MaxHeaders+1 headers: %v, want ErrShort", err)
	}
	// Exactly MaxHeaders is accepted.
	msg = msg[:28]
	msg = abi.AppendU32(msg, abi.MaxHeaders)
	msg = append(msg, make([]byte, 8*abi.MaxHeaders+4)...)
	if err := abi.DecodeRequest(msg, &r); err != nil || len(r.Headers) != abi.MaxHeaders {
		t.Fatalf("MaxHeaders headers: %v, %d decoded", err, len(r.Headers))
	}
}

func TestPackPtrLen(t *testing.T) {
	cases := []struct {
		ptr, n uint32
		packed uint64
	}{
		{0x10000, 42, 0x0001_0000_0000_002a},
		{0, 0, 0},
		{0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF},
		{1, 0, 1 << 32},
	}
	for _, c := range cases {
		if got := abi.PackPtrLen(c.ptr, c.n); got != c.packed {
			t.Errorf("PackPtrLen(%#x, %d) = %#x, want %#x", c.ptr, c.n, got, c.packed)
		}
		if p, n := abi.UnpackPtrLen(c.packed); p != c.ptr || n != c.n {
			t.Errorf("UnpackPtrLen(%#x) = %#x, %d", c.packed, p, n)
		}
	}
}

func TestReplyError(t *testing.T) {
	_, err := abi.DecodeReply(abi.OpCacheGet, abi.AppendReplyError(nil, abi.ErrNotFound, "miss"))
	var re *abi.ReplyError
	if !errors.As(err, &re) || re.Op != abi.OpCacheGet || re.Code != abi.ErrNotFound || re.Msg != "miss" {
		t.Fatalf("got %#v", err)
	}
	if got, want := err.Error(), "wasmcorn cache.get: not_found: miss"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	// An error reply never carries OK: AppendReplyError maps it to internal.
	_, err = abi.DecodeReply(abi.OpLog, abi.AppendReplyError(nil, abi.OK, "oops"))
	if !errors.As(err, &re) || re.Code != abi.ErrInternal {
		t.Fatalf("OK error reply decoded as %v", err)
	}
}

func TestNames(t *testing.T) {
	if abi.OpCacheGet.String() != "cache.get" || abi.Op(0x7f).String() != "op(0x7f)" {
		t.Errorf("op names: %s %s", abi.OpCacheGet, abi.Op(0x7f))
	}
	if abi.ErrSQL.String() != "sql" || abi.Code(200).String() != "code(200)" {
		t.Errorf("code names: %s %s", abi.ErrSQL, abi.Code(200))
	}
	if abi.KindBool.String() != "bool" || abi.Kind(9).String() != "kind(9)" {
		t.Errorf("kind names: %s %s", abi.KindBool, abi.Kind(9))
	}
}
