;; A guest with state: each call increments a counter initialised by a data
;; segment (100, in the module's data image) and one in zeroed memory past
;; the data (at 72 KiB), and answers 200 with both as two little-endian
;; i32s. A new instance must start from 100 and 0 again, whatever memory it
;; was given (the wazero engine reuses closed instances' memory).
(module
  (memory (export "memory") 2)
  (data (i32.const 4096) "\64\00\00\00")
  (func (export "wasmcorn_abi_version") (result i32) (i32.const 1))
  ;; requests are written at 64 KiB, below the second counter
  (func (export "wasmcorn_alloc") (param $n i32) (result i32)
    (if (i32.gt_u (local.get $n) (i32.const 4096)) (then (return (i32.const 0))))
    (i32.const 65536))
  (func (export "wasmcorn_handle") (param $p i32) (param $n i32) (result i64)
    (i32.store (i32.const 4096) (i32.add (i32.load (i32.const 4096)) (i32.const 1)))
    (i32.store (i32.const 73728) (i32.add (i32.load (i32.const 73728)) (i32.const 1)))
    (i32.store (i32.const 1024) (i32.const 200))
    (i32.store (i32.const 1028) (i32.const 0))
    (i32.store (i32.const 1032) (i32.const 8))
    (i32.store (i32.const 1036) (i32.load (i32.const 4096)))
    (i32.store (i32.const 1040) (i32.load (i32.const 73728)))
    (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const 20))))
