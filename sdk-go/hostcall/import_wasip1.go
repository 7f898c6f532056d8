//go:build wasip1

package hostcall

import (
	"runtime"
	"unsafe"
)

// wasmcornCall is the wasmcorn.call import of ABI.md.
//
//go:wasmimport wasmcorn call
func wasmcornCall(op uint32, inPtr unsafe.Pointer, inLen uint32, outPtr unsafe.Pointer, outCap uint32) int32

// wasmcornResult is the wasmcorn.result import of ABI.md.
//
//go:wasmimport wasmcorn result
func wasmcornResult(ptr unsafe.Pointer, capacity uint32) int32

func hostAvailable() bool { return true }

func hostCall(op uint32, in, out []byte) int32 {
	n := wasmcornCall(op, unsafe.Pointer(unsafe.SliceData(in)), uint32(len(in)),
		unsafe.Pointer(unsafe.SliceData(out)), uint32(len(out)))
	runtime.KeepAlive(in)
	runtime.KeepAlive(out)
	return n
}

func hostResult(dst []byte) int32 {
	n := wasmcornResult(unsafe.Pointer(unsafe.SliceData(dst)), uint32(len(dst)))
	runtime.KeepAlive(dst)
	return n
}
