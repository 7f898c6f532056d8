package wasmtime

// The functions the C shim calls back. This file's preamble holds only
// declarations, because cgo copies it into _cgo_export.h.

/*
#include "shim.h"
*/
import "C"

import (
	"unsafe"
)

// newTrap makes a trap for the guest (Wasmtime copies the message) and
// returns it as the uintptr the C side expects: the exported functions
// return an integer rather than a pointer, which cgo would check on every
// return.
func newTrap(msg string) C.uintptr_t {
	return C.uintptr_t(uintptr(unsafe.Pointer(C.wasmtime_trap_new((*C.char)(unsafe.Pointer(unsafe.StringData(msg))), C.size_t(len(msg))))))
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
