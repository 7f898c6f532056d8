// Package testhost lets native (non-wasm) tests of the SDK play the host.
//
// On wasip1 the hostcall package talks to the real wasmcorn.call and
// wasmcorn.result imports. Built for any other platform it forwards host
// calls to the function installed here, and emulates the out-buffer and
// pending-reply protocol of ABI.md, so the same SDK code paths run under
// `go test` on the build machine.
package testhost

import (
	"sync"

	"github.com/wasmcorn/wasmcorn/abi"
)

// Func answers one host call: it receives the op and the argument message
// and returns a complete reply message (abi.AppendReplyOK plus values, or
// abi.AppendReplyError). It may be called from several goroutines.
type Func func(op abi.Op, args []byte) []byte

var (
	mu  sync.Mutex
	cur Func
)

// Set installs f as the host and returns a function that restores the
// previous one. Tests that install a host must not run in parallel with
// other tests that do.
func Set(f Func) (restore func()) {
	mu.Lock()
	prev := cur
	cur = f
	mu.Unlock()
	return func() {
		mu.Lock()
		cur = prev
		mu.Unlock()
	}
}

// Get returns the installed host, or nil.
func Get() Func {
	mu.Lock()
	defer mu.Unlock()
	return cur
}
