;; wat2wasm-flags: --enable-exceptions
;; Legacy exception handling (try/catch/catch_all/delegate/rethrow/throw) in
;; loops. wazero does not run these instructions, so this pair checks the
;; rewrite byte for byte: InstrumentLoops(golden_eh_in) == golden_eh_out.
(module
  (type $v (func))
  (type $i_v (func (param i32)))
  (type $i_i (func (param i32) (result i32)))
  (memory 1)
  (tag $ex (type $i_v))
  (func $thrower (type $i_v) (throw $ex (local.get 0)))
  (func $f (type $i_i)
    (local $acc i32)
    (loop $l
      (try
        (do (try (do (call $thrower (local.get 0))) (delegate 0)))
        (catch $ex (local.set $acc (i32.add (local.get $acc)))))
      (try
        (do
          (try (do (loop $in (throw $ex (i32.const 1))))
            (catch_all (rethrow 0))))
        (catch $ex (drop) (local.set $acc (i32.add (local.get $acc) (i32.const 100)))))
      (local.set 0 (i32.sub (local.get 0) (i32.const 1)))
      (br_if $l (local.get 0)))
    (local.get $acc)))
