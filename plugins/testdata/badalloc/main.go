// Command badalloc is a hostile test plugin whose wasmcorn_alloc returns a
// region the host must refuse: 0 when asked for less than 64 KiB,
// otherwise a pointer past the end of linear memory. Every call into it
// must fail without the host writing anywhere.
package main

import (
	"unsafe"

	"github.com/wasmcorn/wasmcorn/abi"
)

var out []byte

//go:wasmexport wasmcorn_abi_version
func version() int32 { return abi.Version }

//go:wasmexport wasmcorn_alloc
func alloc(size int32) uint32 {
	if size < 64<<10 {
		return 0
	}
	return 0xFFFF_0000
}

//go:wasmexport wasmcorn_handle
func handle(ptr, n uint32) uint64 {
	out = abi.AppendResponse(out[:0], &abi.Response{Status: 200, Body: []byte("badalloc was called\n")})
	return abi.PackPtrLen(uint32(uintptr(unsafe.Pointer(&out[0]))), uint32(len(out)))
}

func main() {}
