//go:build wasmtime

// Built with -tags wasmtime (make build-wasmtime), the binary also has the
// wasmtime engine (cgo): `engine = "wasmtime"` in [plugins] or in a plugin's
// manifest selects it. The package lives in its own Go module
// (host/wasmtime) that the root go.mod does not require, so default builds
// never download it; host/wasmtime/go.work provides it to tagged builds
// (GOWORK=host/wasmtime/go.work).
package main

import _ "github.com/wasmcorn/wasmcorn/host/wasmtime" // registers "wasmtime"
