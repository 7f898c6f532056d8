// Command badresp is a hostile test plugin whose wasmcorn_handle returns
// bad responses, selected by the request path:
//
//	/badresp/oob       a pointer and length past the end of linear memory
//	/badresp/garbage   bytes that are not an encoded Response
//	/badresp/status    a well-formed Response with status 42
//	/badresp/trailing  a valid Response followed by extra bytes
//	anything else      a valid 200 response (the control case)
//
// It does not use the SDK, so nothing stands between it and the host.
package main

import (
	"unsafe"

	"github.com/wasmcorn/wasmcorn/abi"
)

var (
	in, out []byte
	req     abi.Request
)

func addr(b []byte) uint32 { return uint32(uintptr(unsafe.Pointer(&b[0]))) }

//go:wasmexport wasmcorn_abi_version
func version() int32 { return abi.Version }

//go:wasmexport wasmcorn_alloc
func alloc(size int32) uint32 {
	if int(size) > cap(in) {
		in = make([]byte, max(size, 1))
	}
	return addr(in[:1])
}

//go:wasmexport wasmcorn_handle
func handle(ptr, n uint32) uint64 {
	base := addr(in[:1])
	path := ""
	if ptr >= base && uint64(ptr-base)+uint64(n) <= uint64(cap(in)) {
		if abi.DecodeRequest(in[ptr-base:ptr-base+n], &req) == nil {
			path = string(req.Path)
		}
	}
	switch path {
	case "/badresp/oob":
		return abi.PackPtrLen(0xFFFF_0000, 4096)
	case "/badresp/garbage":
		out = append(out[:0], "this is not a response"...)
	case "/badresp/status":
		out = abi.AppendResponse(out[:0], &abi.Response{Status: 42, Body: []byte("bad status\n")})
	case "/badresp/trailing":
		out = abi.AppendResponse(out[:0], &abi.Response{Status: 200, Body: []byte("trailing\n")})
		out = append(out, 0xde, 0xad)
	default:
		out = abi.AppendResponse(out[:0], &abi.Response{Status: 200, Body: []byte("ok\n")})
	}
	return abi.PackPtrLen(addr(out), uint32(len(out)))
}

func main() {}
