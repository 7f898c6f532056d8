;; Recurses without end in handle: the engine must turn the stack overflow
;; into a trap, for this instance only.
(module
  (memory (export "memory") 2)
  (func (export "wasmcorn_abi_version") (result i32) (i32.const 1))
  (func (export "wasmcorn_alloc") (param i32) (result i32) (i32.const 65536))
  (func $down (param $n i64) (result i64)
    (i64.add (call $down (i64.add (local.get $n) (i64.const 1))) (i64.const 1)))
  (func (export "wasmcorn_handle") (param i32 i32) (result i64)
    (call $down (i64.const 0))))
