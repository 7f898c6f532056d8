//go:build !wasip1

package hostcall

import (
	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/sdk-go/internal/testhost"
)

// pending is the emulated host's reply waiting for result; mu guards it.
var pending []byte

func hostAvailable() bool { return testhost.Get() != nil }

// hostCall emulates wasmcorn.call: the reply is copied into out when it
// fits, else kept pending for hostResult, exactly as ABI.md specifies.
func hostCall(op uint32, in, out []byte) int32 {
	reply := testhost.Get()(abi.Op(op), in)
	pending = nil
	if len(reply) <= len(out) {
		copy(out, reply)
	} else {
		pending = reply
	}
	return int32(len(reply))
}

// hostResult emulates wasmcorn.result.
func hostResult(dst []byte) int32 {
	if pending == nil || len(pending) > len(dst) {
		return -1
	}
	n := copy(dst, pending)
	pending = nil
	return int32(n)
}
