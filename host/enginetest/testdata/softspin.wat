;; A guest with soft deadlines (ABI.md "Soft deadlines"): its interrupt
;; table asks the host to store 1 at 0x200. Method "S..." loops until that
;; word is set, then answers 504 by itself; "I..." loops ignoring it (only
;; the hard stop ends it); anything else answers status 200 + the number of
;; calls this instance has served (so a test sees whether it was reused).
;; Regenerate: wat2wasm softspin.wat -o softspin.wasm
(module
  (memory (export "memory") 1)
  (data (i32.const 256) "\01\00\00\00\00\02\00\00\01\00\00\00")
  (func (export "wasmcorn_abi_version") (result i32) (i32.const 1))
  (func (export "wasmcorn_alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "wasmcorn_interrupt_stores") (result i32) (i32.const 256))
  (func $reply (param $status i32) (result i64)
    (i32.store (i32.const 768) (local.get $status))
    (i32.store (i32.const 772) (i32.const 0))
    (i32.store (i32.const 776) (i32.const 0))
    (i64.or (i64.shl (i64.const 768) (i64.const 32)) (i64.const 12)))
  (func (export "wasmcorn_handle") (param $p i32) (param $n i32) (result i64)
    (local $m i32)
    (i32.store (i32.const 512) (i32.const 0)) ;; clear a stop that landed late
    (i32.store (i32.const 1024) (i32.add (i32.load (i32.const 1024)) (i32.const 1)))
    (local.set $m (i32.load8_u (i32.add (local.get $p) (i32.const 4))))
    (block $stopped
      (if (i32.eq (local.get $m) (i32.const 83)) ;; 'S'
        (then (loop $l (br_if $stopped (i32.load (i32.const 512))) (br $l))))
      (if (i32.eq (local.get $m) (i32.const 73)) ;; 'I'
        (then (loop $l2 (br $l2))))
      (return (call $reply (i32.add (i32.const 200) (i32.load (i32.const 1024))))))
    (call $reply (i32.const 504))))
