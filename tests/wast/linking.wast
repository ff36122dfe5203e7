;; Imports and exports between modules, registration and the spectest module.

(module $A
  (global (export "g") (mut i32) (i32.const 10))
  (global (export "c") i64 (i64.const -2))
  (memory (export "mem") 1 4)
  (table (export "tab") 4 funcref)
  (func $get (export "get") (result i32) (global.get 0))
  (func (export "double") (param i32) (result i32) (i32.mul (local.get 0) (i32.const 2)))
  (func (export "peek") (param i32) (result i32) (i32.load8_u (local.get 0)))
  (func (export "call") (param i32) (result i32) (call_indirect (result i32) (local.get 0)))
  (elem (i32.const 0) $get))
(register "A" $A)

(module $B
  (import "A" "g" (global $g (mut i32)))
  (import "A" "c" (global $c i64))
  (import "A" "mem" (memory 1))
  (import "A" "tab" (table 2 funcref))
  (import "A" "double" (func $double (param i32) (result i32)))
  (import "spectest" "print_i32" (func $print (param i32)))
  (import "spectest" "global_i32" (global $sg i32))
  (func $seven (result i32) (i32.const 7))
  (elem (i32.const 1) $seven)
  (data (i32.const 5) "\2a")
  (func (export "bump") (global.set $g (call $double (global.get $g))))
  (func (export "c") (result i64) (global.get $c))
  (func (export "spectest-global") (result i32) (call $print (global.get $sg)) (global.get $sg))
  (func (export "grow") (result i32) (memory.grow (i32.const 1))))

(assert_return (invoke $A "get") (i32.const 10))
(invoke $B "bump")
(assert_return (invoke $A "get") (i32.const 20))
(assert_return (get $A "g") (i32.const 20))
(assert_return (invoke $B "c") (i64.const -2))
(assert_return (invoke $B "spectest-global") (i32.const 666))
(assert_return (invoke $A "peek" (i32.const 5)) (i32.const 42))
(assert_return (invoke $A "call" (i32.const 1)) (i32.const 7))
(assert_return (invoke $A "call" (i32.const 0)) (i32.const 20))
(assert_return (invoke $B "grow") (i32.const 1))
(assert_return (invoke $A "peek" (i32.const 70000)) (i32.const 0))

;; A function re-exported through a second module keeps its identity.
(module $C
  (import "A" "double" (func $d (param i32) (result i32)))
  (export "double-again" (func $d)))
(register "C" $C)
(module
  (import "C" "double-again" (func $d (param i32) (result i32)))
  (func (export "quad") (param i32) (result i32) (call $d (call $d (local.get 0)))))
(assert_return (invoke "quad" (i32.const 3)) (i32.const 12))

;; The spectest host module.
(module
  (import "spectest" "print" (func))
  (import "spectest" "print_i64" (func (param i64)))
  (import "spectest" "print_f32" (func (param f32)))
  (import "spectest" "print_f64" (func (param f64)))
  (import "spectest" "print_i32_f32" (func (param i32 f32)))
  (import "spectest" "print_f64_f64" (func (param f64 f64)))
  (import "spectest" "global_i64" (global i64))
  (import "spectest" "global_f32" (global f32))
  (import "spectest" "global_f64" (global f64))
  (import "spectest" "table" (table 10 20 funcref))
  (import "spectest" "memory" (memory 1 2))
  (func (export "f32") (result f32) (global.get 1))
  (func (export "f64") (result f64) (global.get 2))
  (func (export "i64") (result i64) (global.get 0))
  (func (export "sizes") (result i32 i32) (table.size) (memory.size)))
(assert_return (invoke "f32") (f32.const 666.6))
(assert_return (invoke "f64") (f64.const 666.6))
(assert_return (invoke "i64") (i64.const 666))
(assert_return (invoke "sizes") (i32.const 10) (i32.const 1))

;; Link errors.
(assert_unlinkable
  (module (import "A" "missing" (func)))
  "unknown import")
(assert_unlinkable
  (module (import "nowhere" "f" (func)))
  "unknown import")
(assert_unlinkable
  (module (import "A" "double" (func (param i64) (result i32))))
  "incompatible import type")
(assert_unlinkable
  (module (import "A" "g" (global i32)))
  "incompatible import type")
(assert_unlinkable
  (module (import "A" "c" (global (mut i64))))
  "incompatible import type")
(assert_unlinkable
  (module (import "A" "mem" (memory 3)))
  "incompatible import type")
(assert_unlinkable
  (module (import "A" "mem" (memory 1 3)))
  "incompatible import type")
(assert_unlinkable
  (module (import "A" "tab" (table 5 funcref)))
  "incompatible import type")
(assert_unlinkable
  (module (import "A" "get" (memory 1)))
  "incompatible import type")
(assert_unlinkable
  (module (import "spectest" "print_i32" (func (param i64))))
  "incompatible import type")
