module github.com/wasmcorn/wasmcorn/plugins/testdata/noexports

go 1.26.8
