package wasmtime

// The functions the C shim calls back. This file's preamble holds only
// declarations, because cgo copies it into _cgo_export.h.

/*
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// newTrap makes a trap for the guest (Wasmtime copies the message) and
// returns it as the uintptr the C side expects: the exported functions
// return an integer rather than a pointer, which cgo would check on every
// return.
func newTrap(msg string) C.uintptr_t {
	return C.uintptr_t(uintptr(unsafe.Pointer(C.wasmtime_trap_new((*C.char)(unsafe.Pointer(unsafe.StringData(msg))), C.size_t(len(msg))))))
}

// recoverTrap turns a panic in a host function into a guest trap: a Go
// panic must never unwind through Wasmtime's frames.
func recoverTrap(trap *C.uintptr_t, what string) {
	if r := recover(); r != nil {
		*trap = newTrap(fmt.Sprintf("%s: host function panicked: %v", what, r))
	}
}

//export wtHostCall
func wtHostCall(id C.uintptr_t, op, inPtr, inLen, outPtr, outCap C.uint32_t, ret *C.int32_t) (trap C.uintptr_t) {
	defer recoverTrap(&trap, "wasmcorn.call")
	n, msg := lookup(uintptr(id)).hostCall(uint32(op), uint32(inPtr), uint32(inLen), uint32(outPtr), uint32(outCap))
	if msg != "" {
		return newTrap(msg)
	}
	*ret = C.int32_t(n)
	return 0
}

//export wtHostResult
func wtHostResult(id C.uintptr_t, ptr, capacity C.uint32_t, ret *C.int32_t) (trap C.uintptr_t) {
	defer recoverTrap(&trap, "wasmcorn.result")
	n, msg := lookup(uintptr(id)).hostResult(uint32(ptr), uint32(capacity))
	if msg != "" {
		return newTrap(msg)
	}
	*ret = C.int32_t(n)
	return 0
}

// wtGuestOutput receives the guest's stdout (stream 1) and stderr (2).
// Wasmtime calls it from one of its own threads while the guest waits in
// fd_write, so it is not on the goroutine running the call.
//
//export wtGuestOutput
func wtGuestOutput(id C.uintptr_t, stream C.int, buf unsafe.Pointer, n C.size_t) C.ptrdiff_t {
	in := lookup(uintptr(id))
	if in == nil {
		return C.ptrdiff_t(n)
	}
	w := in.stdout
	if stream == 2 {
		w = in.stderr
	}
	if w != nil && n > 0 {
		w.Write(unsafe.Slice((*byte)(buf), int(n)))
	}
	return C.ptrdiff_t(n)
}
