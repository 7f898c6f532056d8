;; wat2wasm-flags: --enable-tail-call
;; Input of TestGolden: InstrumentLoops(golden_in.wasm) must equal golden_out.wasm.
(module
  (type $v (func))
  (type $i_i (func (param i32) (result i32)))
  (type $i_v (func (param i32)))
  (type $v_i (func (result i32)))
  (type $l_l (func (param i64) (result i64)))
  (import "env" "f" (func $f (type $i_v)))
  (import "env" "g" (global $g i32))
  (import "env" "mem" (memory 1))
  (global $x (mut i32) (i32.const 5))
  (export "count" (func $count))
  (export "noloop" (func $noloop))
  (func $count (type $i_i)
    (local $i i32)
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get 0)))
        (call $f (local.get $i))
        (local.set $i (i32.add (local.get $i) (global.get $g)))
        (br $l)))
    (local.get $i))
  (func $noloop (type $v_i) (global.get $x))
  (func $tail (type $i_i) (return_call $count (local.get 0)))
  (func $params (type $l_l)
    (local.get 0)
    (loop (type $l_l) (i64.const 1) (i64.add))))
