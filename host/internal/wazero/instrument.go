package wazero

import "github.com/wasmcorn/wasmcorn/internal/wasmrewrite"

func init() {
	interruptExport = wasmrewrite.InterruptExport
	instrumentLoops = func(wasm []byte) ([]byte, error) {
		return wasmrewrite.InstrumentLoops(wasm, wasmrewrite.Options{})
	}
	dataImage = func(wasm []byte) ([]byte, []byte, bool) {
		code, image, ok, err := wasmrewrite.DataImage(wasm)
		return code, image, ok && err == nil
	}
}
