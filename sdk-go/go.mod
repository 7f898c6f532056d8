module github.com/wasmcorn/wasmcorn/sdk-go

go 1.26.8

require github.com/wasmcorn/wasmcorn v0.0.0

replace github.com/wasmcorn/wasmcorn => ../
