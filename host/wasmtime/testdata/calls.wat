;; For the call-overhead benchmarks: wasmcorn_handle reads K (the first
;; 4 bytes of the request, little endian), calls wasmcorn.call K times with
;; empty arguments, and answers a fixed 12-byte response (status 200).
(module
  (import "wasmcorn" "call" (func $call (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 1024) "\c8\00\00\00\00\00\00\00\00\00\00\00")
  (func (export "wasmcorn_abi_version") (result i32) (i32.const 1))
  (func (export "wasmcorn_alloc") (param $n i32) (result i32)
    (if (i32.gt_u (local.get $n) (i32.const 65536)) (then (return (i32.const 0))))
    (i32.const 65536))
  (func (export "wasmcorn_handle") (param $p i32) (param $n i32) (result i64)
    (local $k i32)
    (local.set $k (i32.load (local.get $p)))
    (block $done
      (loop $l
        (br_if $done (i32.eqz (local.get $k)))
        (drop (call $call (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))
        (local.set $k (i32.sub (local.get $k) (i32.const 1)))
        (br $l)))
    (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const 12))))
