;; A guest whose interrupt table (ABI.md "Soft deadlines") has an unaligned
;; address (0x201): the instance must fail to start. It is never called.
;; Regenerate: wat2wasm softbad.wat -o softbad.wasm
(module
  (memory (export "memory") 1)
  (data (i32.const 256) "\01\00\00\00\01\02\00\00\01\00\00\00")
  (func (export "wasmcorn_abi_version") (result i32) (i32.const 1))
  (func (export "wasmcorn_alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "wasmcorn_interrupt_stores") (result i32) (i32.const 256))
  (func (export "wasmcorn_handle") (param i32 i32) (result i64) (i64.const 0)))
