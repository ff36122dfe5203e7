;; Every trap code that WebAssembly 2.0 defines, from a function and from instantiation.

(module
  (memory 1)
  (table 2 funcref)
  (func $nothing)
  (elem (i32.const 1) $nothing)
  (func (export "unreachable") (unreachable))
  (func (export "div_s") (param i32 i32) (result i32) (i32.div_s (local.get 0) (local.get 1)))
  (func (export "div_u") (param i64 i64) (result i64) (i64.div_u (local.get 0) (local.get 1)))
  (func (export "rem_s") (param i32 i32) (result i32) (i32.rem_s (local.get 0) (local.get 1)))
  (func (export "trunc_f32_s") (param f32) (result i32) (i32.trunc_f32_s (local.get 0)))
  (func (export "trunc_f64_u") (param f64) (result i64) (i64.trunc_f64_u (local.get 0)))
  (func (export "load") (param i32) (result i32) (i32.load (local.get 0)))
  (func (export "load8-offset") (param i32) (result i32)
    (i32.load8_u offset=0xffff (local.get 0)))
  (func (export "store") (param i32) (i64.store (local.get 0) (i64.const 1)))
  (func (export "call-table") (param i32) (call_indirect (local.get 0)))
  (func $recurse (export "recurse") (param i32) (result i32)
    (i32.add (call $recurse (local.get 0)) (i32.const 1)))
  (func (export "fill") (param i32 i32) (memory.fill (local.get 0) (i32.const 0) (local.get 1)))
  (func (export "table-get") (param i32) (result funcref) (table.get (local.get 0)))
)

(assert_trap (invoke "unreachable") "unreachable")
(assert_trap (invoke "div_s" (i32.const 1) (i32.const 0)) "integer divide by zero")
(assert_trap (invoke "div_s" (i32.const 0x80000000) (i32.const -1)) "integer overflow")
(assert_return (invoke "rem_s" (i32.const 0x80000000) (i32.const -1)) (i32.const 0))
(assert_trap (invoke "rem_s" (i32.const 5) (i32.const 0)) "integer divide by zero")
(assert_trap (invoke "div_u" (i64.const 1) (i64.const 0)) "integer divide by zero")
(assert_trap (invoke "trunc_f32_s" (f32.const nan)) "invalid conversion to integer")
(assert_trap (invoke "trunc_f32_s" (f32.const 0x1p31)) "integer overflow")
(assert_return (invoke "trunc_f32_s" (f32.const -0x1p31)) (i32.const 0x80000000))
(assert_trap (invoke "trunc_f64_u" (f64.const -1)) "integer overflow")
(assert_return (invoke "trunc_f64_u" (f64.const -0x1.fffffffffffffp-1)) (i64.const 0))
(assert_return (invoke "trunc_f64_u" (f64.const 0x1.fffffffffffffp63)) (i64.const 0xfffffffffffff800))
(assert_trap (invoke "trunc_f64_u" (f64.const 0x1p64)) "integer overflow")
(assert_return (invoke "load" (i32.const 65532)) (i32.const 0))
(assert_trap (invoke "load" (i32.const 65533)) "out of bounds memory access")
(assert_trap (invoke "load" (i32.const -1)) "out of bounds memory access")
(assert_return (invoke "load8-offset" (i32.const 0)) (i32.const 0))
(assert_trap (invoke "load8-offset" (i32.const 1)) "out of bounds memory access")
(assert_trap (invoke "store" (i32.const 65529)) "out of bounds memory access")
(assert_trap (invoke "call-table" (i32.const 0)) "uninitialized element")
(assert_return (invoke "call-table" (i32.const 1)))
(assert_trap (invoke "call-table" (i32.const 2)) "undefined element")
(assert_exhaustion (invoke "recurse" (i32.const 0)) "call stack exhausted")
(assert_trap (invoke "fill" (i32.const 65535) (i32.const 2)) "out of bounds memory access")
(assert_return (invoke "fill" (i32.const 65536) (i32.const 0)))
(assert_trap (invoke "table-get" (i32.const 2)) "out of bounds table access")

;; A failing start function leaves the module uninstantiated.
(assert_trap
  (module (func $start (unreachable)) (start $start))
  "unreachable")

(assert_uninstantiable
  (module (func $start (drop (i32.div_u (i32.const 1) (i32.const 0)))) (start $start))
  "integer divide by zero")

;; Segments are bounds-checked at instantiation.
(assert_trap
  (module (memory 1) (data (i32.const 65535) "ab"))
  "out of bounds memory access")

(assert_trap
  (module (table 1 funcref) (func $f) (elem (i32.const 1) $f))
  "out of bounds table access")

;; Writes of earlier segments stay visible through a shared memory.
(module $M
  (memory (export "mem") 1)
  (func (export "peek") (param i32) (result i32) (i32.load8_u (local.get 0))))
(register "M" $M)

(assert_trap
  (module
    (memory (import "M" "mem") 1)
    (data (i32.const 0) "x")
    (data (i32.const 65536) "y"))
  "out of bounds memory access")

(assert_return (invoke $M "peek" (i32.const 0)) (i32.const 0x78))
