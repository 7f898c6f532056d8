;; wat2wasm-flags: --enable-tail-call
;; Expected output of InstrumentLoops(golden_in.wasm, Options{}), written by hand.
(module
  (type $v (func))
  (type $i_i (func (param i32) (result i32)))
  (type $i_v (func (param i32)))
  (type $v_i (func (result i32)))
  (type $l_l (func (param i64) (result i64)))
  (type $tick_t (func))
  (import "env" "f" (func $f (type $i_v)))
  (import "env" "g" (global $g i32))
  (import "env" "mem" (memory 1))
  (global $x (mut i32) (i32.const 5))
  (global $fuel (mut i32) (i32.const 10000))
  (global $interrupt (mut i32) (i32.const 0))
  (export "count" (func $count))
  (export "noloop" (func $noloop))
  (export "wasmcorn.interrupt" (global $interrupt))
  (func $count (type $i_i)
    (local $i i32)
    (block $done
      (loop $l
        global.get $fuel i32.const 1 i32.sub global.set $fuel
        global.get $fuel i32.eqz if call $tick end
        (br_if $done (i32.ge_u (local.get $i) (local.get 0)))
        (local.get $i)
        global.get $fuel i32.const 1 i32.sub global.set $fuel
        global.get $fuel i32.eqz if call $tick end
        (call $f)
        (local.set $i (i32.add (local.get $i) (global.get $g)))
        (br $l)))
    (local.get $i))
  (func $noloop (type $v_i) (global.get $x))
  (func $tail (type $i_i)
    (local.get 0)
    global.get $fuel i32.const 1 i32.sub global.set $fuel
    global.get $fuel i32.eqz if call $tick end
    return_call $count)
  (func $params (type $l_l)
    (local.get 0)
    (loop (type $l_l)
      global.get $fuel i32.const 1 i32.sub global.set $fuel
      global.get $fuel i32.eqz if call $tick end
      (i64.const 1) (i64.add)))
  (func $tick (type $tick_t)
    i32.const 0 memory.grow drop
    i32.const 10000 global.set $fuel
    global.get $interrupt if unreachable end))
