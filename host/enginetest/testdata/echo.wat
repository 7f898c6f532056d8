;; A minimal wasmcorn ABI v1 guest, hand-written for hermetic host tests.
;; handle: answers 200 with the raw request message as body, except when
;; the request body is "config", where it answers config.get("greeting").
(module
  (import "wasmcorn" "call" (func $call (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "wasmcorn_abi_version") (result i32) (i32.const 1))
  ;; requests are written at 64 KiB; one page is enough for the tests
  (func (export "wasmcorn_alloc") (param $n i32) (result i32)
    (if (i32.gt_u (local.get $n) (i32.const 65536)) (then (return (i32.const 0))))
    (i32.const 65536))
  (func $copy (param $dst i32) (param $src i32) (param $n i32)
    (block $done
      (loop $l
        (br_if $done (i32.eqz (local.get $n)))
        (i32.store8 (local.get $dst) (i32.load8_u (local.get $src)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 1)))
        (local.set $src (i32.add (local.get $src) (i32.const 1)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $l))))
  ;; the config.get argument message: string "greeting"
  (data (i32.const 512) "\03\08\00\00\00greeting")
  (func (export "wasmcorn_handle") (param $p i32) (param $n i32) (result i64)
    (local $r i32)
    ;; body is the last field: its 4 length bytes + bytes end the message
    (if (i32.eq (i32.load (i32.sub (i32.add (local.get $p) (local.get $n)) (i32.const 10))) (i32.const 6))
      (then
        ;; reply (ok byte + string value) lands at 2048, body taken from it
        (local.set $r (call $call (i32.const 2) (i32.const 512) (i32.const 13) (i32.const 2048) (i32.const 1024)))
        (i32.store (i32.const 1024) (i32.const 200))
        (i32.store (i32.const 1028) (i32.const 0))
        (i32.store (i32.const 1032) (local.get $r))
        (call $copy (i32.const 1036) (i32.const 2048) (local.get $r))
        (return (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.extend_i32_u (i32.add (i32.const 12) (local.get $r)))))))
    (i32.store (i32.const 1024) (i32.const 200))
    (i32.store (i32.const 1028) (i32.const 0))
    (i32.store (i32.const 1032) (local.get $n))
    (call $copy (i32.const 1036) (local.get $p) (local.get $n))
    (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.extend_i32_u (i32.add (i32.const 12) (local.get $n))))))
