package abi_test

import (
	"testing"

	"github.com/wasmcorn/wasmcorn/abi"
)

func sampleRequest() *abi.Request {
	return &abi.Request{
		Method: []byte("POST"), Scheme: []byte("https"), Host: []byte("example.com"),
		Path: []byte("/api/items"), RawQuery: []byte("a=1&b=2"), RemoteAddr: []byte("127.0.0.1:4000"),
		RequestID: []byte("req-1"),
		Headers: []abi.Header{
			{Name: []byte("Content-Type"), Value: []byte("application/json")},
			{Name: []byte("Accept"), Value: []byte("*/*")},
			{Name: []byte("User-Agent"), Value: []byte("wrk")},
		},
		Body: []byte(`{"name":"x"}`),
	}
}

func TestAllocs(t *testing.T) {
	req := sampleRequest()
	msg := abi.AppendRequest(nil, req)
	var dec abi.Request
	if err := abi.DecodeRequest(msg, &dec); err != nil { // sizes dec.Headers
		t.Fatal(err)
	}
	buf := make([]byte, 0, 2*len(msg))
	resp := &abi.Response{Status: 200, Headers: req.Headers[:1], Body: req.Body}
	rmsg := abi.AppendResponse(nil, resp)
	var rdec abi.Response
	if err := abi.DecodeResponse(rmsg, &rdec); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		f    func()
	}{
		{"DecodeRequest", func() {
			if err := abi.DecodeRequest(msg, &dec); err != nil {
				t.Fatal(err)
			}
		}},
		{"AppendRequest", func() { buf = abi.AppendRequest(buf[:0], req) }},
		{"DecodeResponse", func() {
			if err := abi.DecodeResponse(rmsg, &rdec); err != nil {
				t.Fatal(err)
			}
		}},
		{"AppendResponse", func() { buf = abi.AppendResponse(buf[:0], resp) }},
		{"Values", func() {
			vs := abi.NewValues(abi.AppendInt(abi.AppendString(buf[:0], "k"), 5))
			if _, err := vs.Bytes("k"); err != nil {
				t.Fatal(err)
			}
			if _, err := vs.Int("n"); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(100, c.f); n != 0 {
				t.Fatalf("%s allocates %.1f times per run, want 0", c.name, n)
			}
		})
	}
}

func BenchmarkDecodeRequest(b *testing.B) {
	msg := abi.AppendRequest(nil, sampleRequest())
	var r abi.Request
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if err := abi.DecodeRequest(msg, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendRequest(b *testing.B) {
	req := sampleRequest()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = abi.AppendRequest(buf[:0], req)
	}
}
