package abi_test

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/abi/abitest"
)

// seed adds every vector of kind (valid and malformed) to the corpus.
func seed(f *testing.F, kind string) {
	f.Helper()
	vs, err := abitest.Load(vectorsFile)
	if err != nil {
		f.Fatal(err)
	}
	for _, v := range vs {
		if v.Kind != kind {
			continue
		}
		b, err := hex.DecodeString(v.Hex)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// Each fuzz target checks that a decoder never panics and that whatever it
// accepts re-encodes to exactly the input (the encodings are canonical),
// which then decodes to the same value.

func FuzzDecodeRequest(f *testing.F) {
	seed(f, abitest.KindRequest)
	f.Fuzz(func(t *testing.T, b []byte) {
		var r abi.Request
		if abi.DecodeRequest(b, &r) != nil {
			return
		}
		enc := abi.AppendRequest(nil, &r)
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoded %x, input %x", enc, b)
		}
		var r2 abi.Request
		if err := abi.DecodeRequest(enc, &r2); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(abi.AppendRequest(nil, &r2), enc) {
			t.Fatal("second round trip differs")
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	seed(f, abitest.KindResponse)
	f.Fuzz(func(t *testing.T, b []byte) {
		var r abi.Response
		if abi.DecodeResponse(b, &r) != nil {
			return
		}
		if r.Status < 100 || r.Status > 999 {
			t.Fatalf("accepted status %d", r.Status)
		}
		enc := abi.AppendResponse(nil, &r)
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoded %x, input %x", enc, b)
		}
		var r2 abi.Response
		if err := abi.DecodeResponse(enc, &r2); err != nil || !bytes.Equal(abi.AppendResponse(nil, &r2), enc) {
			t.Fatalf("second round trip: %v", err)
		}
	})
}

func FuzzDecodeJob(f *testing.F) {
	seed(f, abitest.KindJob)
	f.Fuzz(func(t *testing.T, b []byte) {
		var j abi.Job
		if abi.DecodeJob(b, &j) != nil {
			return
		}
		enc := abi.AppendJob(nil, &j)
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoded %x, input %x", enc, b)
		}
		var j2 abi.Job
		if err := abi.DecodeJob(enc, &j2); err != nil || !bytes.Equal(abi.AppendJob(nil, &j2), enc) {
			t.Fatalf("second round trip: %v", err)
		}
	})
}

func FuzzDecodeJobResult(f *testing.F) {
	seed(f, abitest.KindJobResult)
	f.Fuzz(func(t *testing.T, b []byte) {
		var r abi.JobResult
		if abi.DecodeJobResult(b, &r) != nil {
			return
		}
		if r.Status > abi.JobFail {
			t.Fatalf("accepted status %d", r.Status)
		}
		enc := abi.AppendJobResult(nil, &r)
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoded %x, input %x", enc, b)
		}
		var r2 abi.JobResult
		if err := abi.DecodeJobResult(enc, &r2); err != nil || !bytes.Equal(abi.AppendJobResult(nil, &r2), enc) {
			t.Fatalf("second round trip: %v", err)
		}
	})
}

// FuzzValuesNext drives Values.Next (through DecodeValues and the typed
// readers) over arbitrary bytes.
func FuzzValuesNext(f *testing.F) {
	seed(f, abitest.KindValues)
	f.Fuzz(func(t *testing.T, b []byte) {
		vs := abi.NewValues(b)
		vs.Int("a")
		vs.Bytes("b")
		vs.Bool("c")
		all, err := abi.DecodeValues(nil, b)
		if err != nil {
			return
		}
		var enc []byte
		for _, v := range all {
			enc = abi.AppendValue(enc, v)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoded %x, input %x", enc, b)
		}
		again, err := abi.DecodeValues(nil, enc)
		if err != nil || len(again) != len(all) {
			t.Fatalf("second round trip: %v, %d values of %d", err, len(again), len(all))
		}
	})
}

func FuzzDecodeReply(f *testing.F) {
	seed(f, abitest.KindReply)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := abitest.DecodeReply(b)
		if err != nil {
			return
		}
		enc, err := r.Encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		// An error reply with code OK cannot exist, so every accepted reply
		// is canonical.
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoded %x, input %x", enc, b)
		}
		if _, err := abitest.DecodeReply(enc); err != nil {
			t.Fatal(err)
		}
	})
}
