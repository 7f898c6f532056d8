;; Exercises what a guest gets through WASI: the request body (4 bytes,
;; the last field of the message) picks the action.
;;   "envv"  body = the environment, "K=V\0" per variable
;;   "prnt"  writes two lines to stdout and one to stderr
;;   "read"  body = contents of in.txt in the first preopened directory
;;   "writ"  creates out.txt there and writes "written" into it
;;   "syml"  creates the symbolic link esc -> ../../../../../../../../etc there
;;   "rdes"  body = contents of esc/passwd there (through that link)
;; A failed WASI call answers status 500 with the errno as a 4-byte LE body.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_symlink" (func $path_symlink (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (memory (export "memory") 2)
  ;; scratch: iovec at 16, count at 24, fd at 28, environ count/size at 32/36
  (data (i32.const 100) "in.txt")
  (data (i32.const 110) "out.txt")
  (data (i32.const 200) "out line 1\nout line 2\n")
  (data (i32.const 240) "err line\n")
  (data (i32.const 260) "written")
  (data (i32.const 300) "../../../../../../../../etc")
  (data (i32.const 340) "esc")
  (data (i32.const 350) "esc/passwd")
  (func (export "wasmcorn_abi_version") (result i32) (i32.const 1))
  (func (export "wasmcorn_alloc") (param $n i32) (result i32)
    (if (i32.gt_u (local.get $n) (i32.const 65536)) (then (return (i32.const 0))))
    (i32.const 65536))
  ;; the response: status, no headers, a body of $len bytes at 1036
  (func $respond (param $status i32) (param $len i32) (result i64)
    (i32.store (i32.const 1024) (local.get $status))
    (i32.store (i32.const 1028) (i32.const 0))
    (i32.store (i32.const 1032) (local.get $len))
    (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.extend_i32_u (i32.add (i32.const 12) (local.get $len)))))
  (func $fail (param $errno i32) (result i64)
    (i32.store (i32.const 1036) (local.get $errno))
    (call $respond (i32.const 500) (i32.const 4)))
  (func $write (param $fd i32) (param $ptr i32) (param $len i32) (result i32)
    (i32.store (i32.const 16) (local.get $ptr))
    (i32.store (i32.const 20) (local.get $len))
    (call $fd_write (local.get $fd) (i32.const 16) (i32.const 1) (i32.const 24)))
  (func (export "wasmcorn_handle") (param $p i32) (param $n i32) (result i64)
    (local $action i32) (local $e i32)
    (local.set $action (i32.load (i32.sub (i32.add (local.get $p) (local.get $n)) (i32.const 4))))
    ;; "envv"
    (if (i32.eq (local.get $action) (i32.const 0x76766e65))
      (then
        (local.set $e (call $environ_sizes_get (i32.const 32) (i32.const 36)))
        (if (local.get $e) (then (return (call $fail (local.get $e)))))
        (local.set $e (call $environ_get (i32.const 4096) (i32.const 1036)))
        (if (local.get $e) (then (return (call $fail (local.get $e)))))
        (return (call $respond (i32.const 200) (i32.load (i32.const 36))))))
    ;; "prnt"
    (if (i32.eq (local.get $action) (i32.const 0x746e7270))
      (then
        (local.set $e (call $write (i32.const 1) (i32.const 200) (i32.const 22)))
        (if (local.get $e) (then (return (call $fail (local.get $e)))))
        (local.set $e (call $write (i32.const 2) (i32.const 240) (i32.const 9)))
        (if (local.get $e) (then (return (call $fail (local.get $e)))))
        (return (call $respond (i32.const 200) (i32.const 0)))))
    ;; "read"
    (if (i32.eq (local.get $action) (i32.const 0x64616572))
      (then
        (local.set $e (call $path_open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 6)
          (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 28)))
        (if (local.get $e) (then (return (call $fail (local.get $e)))))
        (i32.store (i32.const 16) (i32.const 1036))
        (i32.store (i32.const 20) (i32.const 2048))
        (local.set $e (call $fd_read (i32.load (i32.const 28)) (i32.const 16) (i32.const 1) (i32.const 24)))
        (if (local.get $e) (then (return (call $fail (local.get $e)))))
        (drop (call $fd_close (i32.load (i32.const 28))))
        (return (call $respond (i32.const 200) (i32.load (i32.const 24))))))
    ;; "writ": O_CREAT|O_TRUNC, right fd_write
    (if (i32.eq (local.get $action) (i32.const 0x74697277))
      (then
        (local.set $e (call $path_open (i32.const 3) (i32.const 0) (i32.const 110) (i32.const 7)
          (i32.const 9) (i64.const 0x40) (i64.const 0) (i32.const 0) (i32.const 28)))
        (if (local.get $e) (then (return (call $fail (local.get $e)))))
        (local.set $e (call $write (i32.load (i32.const 28)) (i32.const 260) (i32.const 7)))
        (if (local.get $e) (then (return (call $fail (local.get $e)))))
        (drop (call $fd_close (i32.load (i32.const 28))))
        (return (call $respond (i32.const 200) (i32.const 0)))))
    ;; "syml": 200 on success, else the errno
    (if (i32.eq (local.get $action) (i32.const 0x6c6d7973))
      (then (local.set $e (call $path_symlink (i32.const 300) (i32.const 27) (i32.const 3) (i32.const 340) (i32.const 3)))
        (if (local.get $e) (then (return (call $fail (local.get $e)))))
        (return (call $respond (i32.const 200) (i32.const 0)))))
    ;; "rdes": path_open with LOOKUP_SYMLINK_FOLLOW
    (if (i32.eq (local.get $action) (i32.const 0x73656472))
      (then
        (local.set $e (call $path_open (i32.const 3) (i32.const 1) (i32.const 350) (i32.const 10)
          (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 28)))
        (if (local.get $e) (then (return (call $fail (local.get $e)))))
        (i32.store (i32.const 16) (i32.const 1036))
        (i32.store (i32.const 20) (i32.const 2048))
        (local.set $e (call $fd_read (i32.load (i32.const 28)) (i32.const 16) (i32.const 1) (i32.const 24)))
        (if (local.get $e) (then (return (call $fail (local.get $e)))))
        (drop (call $fd_close (i32.load (i32.const 28))))
        (return (call $respond (i32.const 200) (i32.load (i32.const 24))))))
    (call $respond (i32.const 400) (i32.const 0))))
