;; wat2wasm-flags:
;; MVP + multi-value functions whose results must not change when instrumented.
(module
  (memory (export "memory") 1)
  (global $counter (mut i32) (i32.const 0))

  ;; No loop: its body must be copied verbatim.
  (func (export "add") (param i32 i32) (result i32)
    (i32.add (local.get 0) (local.get 1)))

  ;; sum over i<n, j<m of i*j, in nested loops.
  (func (export "nested") (param $n i32) (param $m i32) (result i64)
    (local $i i32) (local $j i32) (local $acc i64)
    (block $done
      (loop $outer
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $j (i32.const 0))
        (block $inner_done
          (loop $inner
            (br_if $inner_done (i32.ge_u (local.get $j) (local.get $m)))
            (local.set $acc
              (i64.add (local.get $acc)
                (i64.extend_i32_u (i32.mul (local.get $i) (local.get $j)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $inner)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $outer)))
    (local.get $acc))

  ;; A loop that produces the function's value: Collatz steps of n.
  (func (export "collatz") (param $n i64) (result i32)
    (local $steps i32)
    (loop $l (result i32)
      (if (result i32) (i64.le_u (local.get $n) (i64.const 1))
        (then (local.get $steps))
        (else
          (local.set $n
            (if (result i64) (i64.eqz (i64.rem_u (local.get $n) (i64.const 2)))
              (then (i64.div_u (local.get $n) (i64.const 2)))
              (else (i64.add (i64.mul (local.get $n) (i64.const 3)) (i64.const 1)))))
          (local.set $steps (i32.add (local.get $steps) (i32.const 1)))
          (br $l)))))

  ;; A loop with block parameters carrying (a, b) across iterations.
  (func (export "fib") (param $n i32) (result i64)
    (local $t i64) (local $u i64)
    i64.const 0
    i64.const 1
    loop $l (param i64 i64) (result i64)
      local.get $n
      i32.eqz
      if (param i64 i64) (result i64)
        drop
      else
        local.set $t
        local.get $t
        i64.add
        local.set $u
        local.get $t
        local.get $u
        local.get $n
        i32.const 1
        i32.sub
        local.set $n
        br $l
      end
    end)

  ;; A block with params and two results, inside a loop: sums of x/7 and x%7.
  (func (export "divmod_sum") (param $n i32) (result i32 i32)
    (local $q i32) (local $r i32) (local $t0 i32) (local $t1 i32)
    (block $done
      (loop $l
        (br_if $done (i32.eqz (local.get $n)))
        local.get $n
        i32.const 7
        block (param i32 i32) (result i32 i32)
          local.set $t0
          local.set $t1
          (i32.div_u (local.get $t1) (local.get $t0))
          (i32.rem_u (local.get $t1) (local.get $t0))
        end
        (local.set $r (i32.add (local.get $r)))
        (local.set $q (i32.add (local.get $q)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $l)))
    (local.get $q) (local.get $r))

  ;; A br_table state machine driven by a loop.
  (func (export "machine") (param $n i32) (result i32)
    (local $state i32) (local $acc i32)
    (block $exit
      (loop $top
        (br_if $exit (i32.eqz (local.get $n)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (block $s2
          (block $s1
            (block $s0
              (br_table $s0 $s1 $s2 (local.get $state)))
            (local.set $acc (i32.add (local.get $acc) (i32.const 3)))
            (local.set $state (i32.const 1))
            (br $top))
          (local.set $acc (i32.mul (local.get $acc) (i32.const 7)))
          (local.set $state (i32.const 2))
          (br $top))
        (local.set $acc (i32.xor (local.get $acc) (i32.const 0x5a5a)))
        (local.set $state (i32.const 0))
        (br $top)))
    (local.get $acc))

  ;; Sieve of Eratosthenes in linear memory; counts primes below n (n <= 65536).
  (func (export "primes") (param $n i32) (result i32)
    (local $i i32) (local $j i32) (local $count i32)
    (memory.fill (i32.const 0) (i32.const 0) (local.get $n))
    (local.set $i (i32.const 2))
    (block $done
      (loop $outer
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (if (i32.eqz (i32.load8_u (local.get $i)))
          (then
            (local.set $count (i32.add (local.get $count) (i32.const 1)))
            (local.set $j (i32.mul (local.get $i) (local.get $i)))
            (block $jdone
              (loop $mark
                (br_if $jdone (i32.ge_u (local.get $j) (local.get $n)))
                (i32.store8 (local.get $j) (i32.const 1))
                (local.set $j (i32.add (local.get $j) (local.get $i)))
                (br $mark)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $outer)))
    (local.get $count))

  ;; A loop calling a function that loops and mutates a global.
  (func $bump (param $k i32)
    (loop $l
      (global.set $counter (i32.add (global.get $counter) (i32.const 1)))
      (local.set $k (i32.sub (local.get $k) (i32.const 1)))
      (br_if $l (i32.gt_s (local.get $k) (i32.const 0)))))
  (func (export "calls") (param $n i32) (result i32)
    (global.set $counter (i32.const 0))
    (loop $l
      (call $bump (local.get $n))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (i32.gt_s (local.get $n) (i32.const 0))))
    (global.get $counter))
)
