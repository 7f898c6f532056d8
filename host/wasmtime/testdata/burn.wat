;; A guest that computes for a while and then answers: wasmcorn_handle runs
;; K loop iterations (K is the request's first 4 bytes, little endian),
;; then answers a fixed 12-byte response (status 200). Unlike spin it ends
;; by itself, so it can run with deadlines off.
(module
  (memory (export "memory") 2)
  (global $acc (mut i32) (i32.const 0))
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
        (global.set $acc (i32.add (i32.mul (global.get $acc) (i32.const 31)) (local.get $k)))
        (local.set $k (i32.sub (local.get $k) (i32.const 1)))
        (br $l)))
    (i32.store (i32.const 1032) (i32.const 0))
    (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const 12))))
