;; Traps (unreachable) in handle.
(module
  (memory (export "memory") 2)
  (func (export "wasmcorn_abi_version") (result i32) (i32.const 1))
  (func (export "wasmcorn_alloc") (param i32) (result i32) (i32.const 65536))
  (func (export "wasmcorn_handle") (param i32 i32) (result i64) (unreachable)))
