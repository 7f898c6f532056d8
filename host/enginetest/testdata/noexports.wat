;; A module without the wasmcorn exports.
(module (memory (export "memory") 1) (func (export "hello")))
