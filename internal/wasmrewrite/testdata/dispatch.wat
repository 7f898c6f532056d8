;; wat2wasm-flags:
;; The shape of Go's compiled functions (see code.go): one dispatch loop,
;; m region blocks, "local.get 0; br_table" to the resume point's region,
;; and jumps written "i32.const K; local.set 0; br $l".
(module
  (memory 1)
  ;; forward(0) jumps forward from region 0 to region 2 and returns 42;
  ;; forward(1) starts in region 1, which jumps back to region 0.
  (func (export "forward") (param i32) (result i32)
    (loop $l
      (block $r2
        (block $r1
          (block $r0
            (br_table $r0 $r1 $r2 $r2 (local.get 0)))
          (local.set 0 (i32.const 2))
          (br $l))
        (local.set 0 (i32.const 0))
        (br $l))
      (return (i32.const 42)))
    (unreachable))
  ;; brif(0, c) branches back into the loop with br_if when c is not 0
  ;; (charged whatever it sets first), then returns 1 from region 1.
  (func (export "brif") (param i32) (param $c i32) (result i32)
    (loop $l
      (block $r1
        (block $r0
          (br_table $r0 $r1 $r1 (local.get 0)))
        (local.set 0 (i32.const 1))
        (br_if $l (local.get $c))
        (return (i32.const 2)))
      (return (i32.const 1)))
    (unreachable))
  ;; count(n) counts down in region 1 with backward jumps to itself, then
  ;; jumps forward to region 2: n back-edges.
  (func (export "count") (param $pc i32) (param $n i32) (result i32)
    (local $acc i32)
    (loop $l
      (block $r2
        (block $r1
          (block $r0
            (br_table $r0 $r1 $r2 $r2 (local.get 0)))
          (local.set 0 (i32.const 1))
          (br $l))
        (local.set $acc (i32.add (local.get $acc) (local.get $n)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (if (local.get $n)
          (then
            (local.set 0 (i32.const 1))
            (br $l)))
        (local.set 0 (i32.const 2))
        (br $l))
      (return (local.get $acc)))
    (unreachable))
)
