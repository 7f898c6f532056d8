package wazero

import "github.com/wasmcorn/wasmcorn/internal/wasmrewrite"

func init() {
	interruptExport = wasmrewrite.InterruptExport
	instrument = func(wasm []byte) ([]byte, error) {
		return wasmrewrite.InstrumentLoops(wasm, wasmrewrite.Options{})
	}
}
