;; Hands the host an argument pointer far outside its memory.
(module
  (import "wasmcorn" "call" (func $call (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "wasmcorn_abi_version") (result i32) (i32.const 1))
  (func (export "wasmcorn_alloc") (param i32) (result i32) (i32.const 65536))
  (func (export "wasmcorn_handle") (param i32 i32) (result i64)
    (drop (call $call (i32.const 1) (i32.const 0x7fff0000) (i32.const 100) (i32.const 0) (i32.const 0)))
    (i64.const 0)))
