module github.com/wasmcorn/wasmcorn/plugins/testdata/inittx

go 1.26.8

require (
	github.com/wasmcorn/wasmcorn v0.0.0
	github.com/wasmcorn/wasmcorn/sdk-go v0.0.0
)

replace (
	github.com/wasmcorn/wasmcorn => ../../..
	github.com/wasmcorn/wasmcorn/sdk-go => ../../../sdk-go
)
