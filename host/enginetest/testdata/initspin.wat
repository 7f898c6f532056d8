;; _initialize never returns: loading must fail at the deadline, not hang.
(module
  (memory (export "memory") 2)
  (func (export "_initialize") (loop $l (br $l)))
  (func (export "wasmcorn_abi_version") (result i32) (i32.const 1))
  (func (export "wasmcorn_alloc") (param i32) (result i32) (i32.const 65536))
  (func (export "wasmcorn_handle") (param i32 i32) (result i64) (i64.const 0)))
