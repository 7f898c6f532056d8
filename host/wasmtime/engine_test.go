package wasmtime_test

import (
	"testing"

	"github.com/wasmcorn/wasmcorn/host/enginetest"
	"github.com/wasmcorn/wasmcorn/host/wasmtime"
)

func TestConformance(t *testing.T) {
	enginetest.Run(t, wasmtime.Name)
}

func TestPlugins(t *testing.T) {
	enginetest.RunPlugins(t, wasmtime.Name)
}
