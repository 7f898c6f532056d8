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

  ;; A cycle of tail calls, with no loop instruction at all.
  (func $a (param i32) (return_call $b (i32.add (local.get 0) (i32.const 1))))
  (func $b (param i32) (return_call $a (local.get 0)))
  (func (export "spin_tail") (call $started) (call $a (i32.const 0)))
)
