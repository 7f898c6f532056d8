package wazero

import "github.com/wasmcorn/wasmcorn/internal/wasmrewrite"

func init() {
	interruptExport = wasmrewrite.InterruptExport
	instrumentLoops = func(wasm []byte) ([]byte, error) {
		return wasmrewrite.InstrumentLoops(wasm, wasmrewrite.Options{})
	}
	hasStart = func(wasm []byte) bool {
		ok, err := wasmrewrite.HasStart(wasm)
		return ok && err == nil
	}
	dataImage = func(wasm []byte) ([]byte, []byte, bool) {
		code, image, ok, err := wasmrewrite.DataImage(wasm)
		return code, image, ok && err == nil
	}
}
