// Command badptr is a hostile test plugin that hands the host bad pointers
// through its own declaration of the wasmcorn.call and result imports:
//
//	/badptr/out     a reply region past the end of linear memory
//	/badptr/result  result into a region past the end of memory, after a
//	                call left a reply pending
//	/badptr/result-none  the same with no reply pending
//	/badptr/ok      a well-formed call (log), then 200: the control case
//	anything else   an argument region past the end of linear memory
//
// The host must trap the instance (ABI.md) and keep running.
package main

import (
	"net/http"
	"unsafe"

	"github.com/wasmcorn/wasmcorn/abi"
	wasmcorn "github.com/wasmcorn/wasmcorn/sdk-go"
)

//go:wasmimport wasmcorn call
func call(op, inPtr, inLen, outPtr, outCap uint32) int32

//go:wasmimport wasmcorn result
func result(ptr, capacity uint32) int32

const far = 0xFFFF_FF00 // beyond any memory a 32-bit guest has

var scratch [64]byte

func ptr(b []byte) uint32 { return uint32(uintptr(unsafe.Pointer(&b[0]))) }

func handle(w http.ResponseWriter, r *http.Request) {
	msg := abi.AppendString(abi.AppendInt(nil, abi.LevelInfo), "badptr")
	switch r.URL.Path {
	case "/badptr/ok":
		if n := call(uint32(abi.OpLog), ptr(msg), uint32(len(msg)), ptr(scratch[:]), uint32(len(scratch))); n < 1 || scratch[0] != byte(abi.OK) {
			http.Error(w, "log call failed", http.StatusInternalServerError)
			return
		}
		w.Write([]byte("ok\n"))
		return
	case "/badptr/out":
		call(uint32(abi.OpLog), ptr(msg), uint32(len(msg)), far, 64)
	case "/badptr/result":
		n := call(uint32(abi.OpLog), ptr(msg), uint32(len(msg)), ptr(scratch[:]), 0) // reply pending
		result(far, uint32(n))
	case "/badptr/result-none":
		result(far, 64)
	default:
		call(uint32(abi.OpLog), far, 64, ptr(scratch[:]), uint32(len(scratch)))
	}
	w.Write([]byte("the host accepted a bad pointer\n"))
}

func init() { wasmcorn.Serve(http.HandlerFunc(handle)) }

func main() {}
