package host

import "github.com/wasmcorn/wasmcorn/abi"

// DispatchKV runs op through the op registry for the external cache and lock
// tests (package host_test), which import backends that import host and so
// cannot live in package host.
func DispatchKV(c *Call, op abi.Op, in, reply []byte) []byte {
	return dispatch(c, uint32(op), in, reply)
}
