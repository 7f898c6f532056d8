;; wat2wasm-flags: --enable-exceptions
;; Expected output of InstrumentLoops(golden_eh_in.wasm, Options{}), written by hand.
(module
  (type $v (func))
  (type $i_v (func (param i32)))
  (type $i_i (func (param i32) (result i32)))
  (type $tick_t (func))
  (memory 1)
  (tag $ex (type $i_v))
  (global $fuel (mut i32) (i32.const 10000))
  (global $interrupt (mut i32) (i32.const 0))
  (export "wasmcorn.interrupt" (global $interrupt))
  (func $thrower (type $i_v) (throw $ex (local.get 0)))
  (func $f (type $i_i)
    (local $acc i32)
    (loop $l
      global.get $fuel i32.const 1 i32.sub global.set $fuel
      global.get $fuel i32.eqz if call $tick end
      (try
        (do (try (do
          (local.get 0)
          global.get $fuel i32.const 1 i32.sub global.set $fuel
          global.get $fuel i32.eqz if call $tick end
          (call $thrower)) (delegate 0)))
        (catch $ex (local.set $acc (i32.add (local.get $acc)))))
      (try
        (do
          (try (do (loop $in
            global.get $fuel i32.const 1 i32.sub global.set $fuel
            global.get $fuel i32.eqz if call $tick end
              (throw $ex (i32.const 1))))
            (catch_all (rethrow 0))))
        (catch $ex (drop) (local.set $acc (i32.add (local.get $acc) (i32.const 100)))))
      (local.set 0 (i32.sub (local.get 0) (i32.const 1)))
      (br_if $l (local.get 0)))
    (local.get $acc))
  (func $tick (type $tick_t)
    i32.const 0 memory.grow drop
    i32.const 10000 global.set $fuel
    global.get $interrupt if unreachable end))
