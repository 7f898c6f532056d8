;; wat2wasm-flags: --enable-tail-call
;; Guests that never return on their own. Each calls env.started first so the
;; test knows the guest is running before it interrupts it. (A spin inside
;; try_table is assembled in spin_test.go: wabt 1.0.32 has no try_table.)
(module
  (import "env" "started" (func $started))
  (memory 1)

  (func (export "spin") (call $started) (loop $l (br $l)))

  (func $inner (loop $l (br $l)))
  (func (export "spin_nested") (call $started) (call $inner))

  ;; The shape of Go's compiled functions: one dispatch loop whose jumps are
  ;; "i32.const K; local.set 0; br $l". Region 0 jumps forward to region 1,
  ;; which jumps back; and a region that jumps to itself.
  (func $dispatch (param i32) (result i32)
    (loop $l
      (block $r1
        (block $r0
          (br_table $r0 $r1 $r1 (local.get 0)))
        (local.set 0 (i32.const 1))
        (br $l))
      (local.set 0 (i32.const 0))
      (br $l))
    (unreachable))
  (func (export "spin_dispatch") (call $started) (drop (call $dispatch (i32.const 0))))
  (func $dispatch_self (param i32) (result i32)
    (loop $l
      (block $r0
        (br_table $r0 $r0 (local.get 0)))
      (local.set 0 (i32.const 0))
      (br $l))
    (unreachable))
  (func (export "spin_dispatch_self") (call $started) (drop (call $dispatch_self (i32.const 0))))

  ;; Recursion with no loop: f(n) calls f(n-1) twice, 2^60 calls at a depth
  ;; of at most 60 frames.
  (func $fan (param i32)
    (if (local.get 0) (then
      (call $fan (i32.sub (local.get 0) (i32.const 1)))
      (call $fan (i32.sub (local.get 0) (i32.const 1))))))
  (func (export "spin_recursion") (call $started) (call $fan (i32.const 60)))

  ;; A cycle of tail calls, with no loop instruction at all.
  (func $a (param i32) (return_call $b (i32.add (local.get 0) (i32.const 1))))
  (func $b (param i32) (return_call $a (local.get 0)))
  (func (export "spin_tail") (call $started) (call $a (i32.const 0)))
)
