;; wat2wasm-flags:
;; Guest for BenchmarkGuest: a compute-heavy loop and thin functions.
(module
  (memory 1)
  ;; sum of i*i for i < n (wrapping).
  (func (export "sum") (param $n i64) (result i64)
    (local $i i64) (local $acc i64)
    (block $done
      (loop $l
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (local.set $acc (i64.add (local.get $acc) (i64.mul (local.get $i) (local.get $i))))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $l)))
    (local.get $acc))
  ;; A thin function without a loop.
  (func (export "thin") (param $x i32) (result i32)
    (i32.add (i32.mul (local.get $x) (i32.const 2)) (i32.const 1)))
  ;; A thin function with a short loop (8 iterations).
  (func (export "thin_loop") (param $x i32) (result i32)
    (local $i i32)
    (loop $l
      (local.set $x (i32.add (i32.mul (local.get $x) (i32.const 3)) (i32.const 1)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 8))))
    (local.get $x))
)
