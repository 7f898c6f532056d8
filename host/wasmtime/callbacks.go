package wasmtime

// The functions the C shim calls back. This file's preamble holds only
// declarations, because cgo copies it into _cgo_export.h.

/*
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"runtime/cgo"
	"unsafe"
)

// guestMemory views the guest's linear memory (Wasmtime's mapping, outside
// the Go heap) as a slice, valid until the guest runs again.
func guestMemory(mem *C.uint8_t, size C.size_t) []byte {
	if mem == nil {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(mem)), int(size))
}

// newTrap makes a trap for the guest; Wasmtime copies the message.
func newTrap(msg string) *C.wasm_trap_t {
	return C.wasmtime_trap_new((*C.char)(unsafe.Pointer(unsafe.StringData(msg))), C.size_t(len(msg)))
}

// recoverTrap turns a panic in a host function into a guest trap: a Go
// panic must never unwind through Wasmtime's frames.
func recoverTrap(trap **C.wasm_trap_t, what string) {
	if r := recover(); r != nil {
		*trap = newTrap(fmt.Sprintf("%s: host function panicked: %v", what, r))
	}
}

//export wtHostCall
func wtHostCall(h C.uintptr_t, op, inPtr, inLen, outPtr, outCap C.uint32_t, mem *C.uint8_t, size C.size_t, ret *C.int32_t) (trap *C.wasm_trap_t) {
	defer recoverTrap(&trap, "wasmcorn.call")
	in := cgo.Handle(h).Value().(*instance)
	n, msg := in.hostCall(uint32(op), uint32(inPtr), uint32(inLen), uint32(outPtr), uint32(outCap), guestMemory(mem, size))
	if msg != "" {
		return newTrap(msg)
	}
	*ret = C.int32_t(n)
	return nil
}

//export wtHostResult
func wtHostResult(h C.uintptr_t, ptr, capacity C.uint32_t, mem *C.uint8_t, size C.size_t, ret *C.int32_t) (trap *C.wasm_trap_t) {
	defer recoverTrap(&trap, "wasmcorn.result")
	in := cgo.Handle(h).Value().(*instance)
	n, msg := in.hostResult(uint32(ptr), uint32(capacity), guestMemory(mem, size))
	if msg != "" {
		return newTrap(msg)
	}
	*ret = C.int32_t(n)
	return nil
}

//export wtGuestOutput
func wtGuestOutput(h C.uintptr_t, stream C.int, buf unsafe.Pointer, n C.size_t) C.ptrdiff_t {
	in := cgo.Handle(h).Value().(*instance)
	w := in.stdout
	if stream == 2 {
		w = in.stderr
	}
	if w != nil && n > 0 {
		w.Write(unsafe.Slice((*byte)(buf), int(n)))
	}
	return C.ptrdiff_t(n)
}
