// Command badabi is a hostile test plugin that declares ABI version 999.
// Apart from the version it is a complete guest (alloc and handle work),
// so the only reason to refuse it is the version check.
package main

import (
	"unsafe"

	"github.com/wasmcorn/wasmcorn/abi"
)

var in, out []byte

//go:wasmexport wasmcorn_abi_version
func version() int32 { return 999 }

//go:wasmexport wasmcorn_alloc
func alloc(size int32) uint32 {
	in = make([]byte, max(size, 1))
	return uint32(uintptr(unsafe.Pointer(&in[0])))
}

//go:wasmexport wasmcorn_handle
func handle(ptr, n uint32) uint64 {
	out = abi.AppendResponse(out[:0], &abi.Response{Status: 200, Body: []byte("abi 999\n")})
	return abi.PackPtrLen(uint32(uintptr(unsafe.Pointer(&out[0]))), uint32(len(out)))
}

func main() {}
