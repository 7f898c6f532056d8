module github.com/wasmcorn/wasmcorn

go 1.26.8
