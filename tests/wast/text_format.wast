;; Text-format abbreviations and literal forms, checked by running the result.

(module $lits
  (func (export "i32-max-unsigned") (result i32) (i32.const 0xffff_ffff))
  (func (export "i32-min") (result i32) (i32.const -0x8000_0000))
  (func (export "i64-underscores") (result i64) (i64.const 1_000_000_000_000))
  (func (export "f32-hex") (result f32) (f32.const 0x1.8p-1))
  (func (export "f32-round") (result i32) (i32.reinterpret_f32 (f32.const 0.1)))
  (func (export "f32-subnormal") (result i32) (i32.reinterpret_f32 (f32.const 0x1p-149)))
  (func (export "f64-bits") (result i64) (i64.reinterpret_f64 (f64.const -0x1.fffffffffffffp1023)))
  (func (export "f64-nan-payload") (result i64) (i64.reinterpret_f64 (f64.const -nan:0x8_0000_0000_0001)))
  (func (export "f32-inf") (result i32) (i32.reinterpret_f32 (f32.const -inf)))
)
(assert_return (invoke "i32-max-unsigned") (i32.const -1))
(assert_return (invoke "i32-min") (i32.const 0x80000000))
(assert_return (invoke "i64-underscores") (i64.const 1000000000000))
(assert_return (invoke "f32-hex") (f32.const 0.75))
(assert_return (invoke "f32-round") (i32.const 0x3dcccccd))
(assert_return (invoke "f32-subnormal") (i32.const 1))
(assert_return (invoke "f64-bits") (i64.const 0xffefffffffffffff))
(assert_return (invoke "f64-nan-payload") (i64.const 0xfff8000000000001))
(assert_return (invoke "f32-inf") (i32.const 0xff800000))

;; Inline imports and exports, implicit types and named parameters.
(module $inline
  (func $print (import "spectest" "print_i32") (param i32))
  (global $g (export "g") (import "spectest" "global_i32") i32)
  (memory (export "mem") (data "\2a\00\00\00" "\u{1F600}"))
  (table $t (export "tab") funcref (elem $forty-two $plus))
  (func $forty-two (result i32) (i32.load (i32.const 0)))
  (func $plus (param $a i32) (param $b i32) (result i32) (i32.add (local.get $a) (local.get $b)))
  (func (export "call-0") (result i32) (call_indirect $t (result i32) (i32.const 0)))
  (func (export "call-1") (param i32 i32) (result i32)
    (call_indirect $t (param i32 i32) (result i32) (local.get 0) (local.get 1) (i32.const 1)))
  (func (export "emoji-byte") (result i32) (i32.load8_u (i32.const 7)))
  (func (export "print-g") (result i32) (call $print (global.get $g)) (global.get $g))
  (func (export "memsize") (result i32) (memory.size))
)
(assert_return (invoke "call-0") (i32.const 42))
(assert_return (invoke "call-1" (i32.const 40) (i32.const 2)) (i32.const 42))
(assert_return (invoke "emoji-byte") (i32.const 0x80))
(assert_return (invoke "print-g") (i32.const 666))
(assert_return (get "g") (i32.const 666))
(assert_return (invoke "memsize") (i32.const 1))

;; Element segment forms: legacy function lists, typed expressions, passive and declared.
(module $elems
  (type $v (func (result i32)))
  (table $t 6 funcref)
  (func $a (type $v) (i32.const 1))
  (func $b (type $v) (i32.const 2))
  (elem (i32.const 0) $a $b)
  (elem (table $t) (offset (i32.const 2)) func $b $a)
  (elem (table $t) (i32.const 4) funcref (ref.func $a) (item ref.null func))
  (elem $late funcref (ref.func $b))
  (elem declare func $a)
  (func (export "call") (param i32) (result i32) (call_indirect $t (type $v) (local.get 0)))
  (func (export "init-late") (table.init $t $late (i32.const 5) (i32.const 0) (i32.const 1)))
  (func (export "ref-a-not-null") (result i32) (i32.eqz (ref.is_null (ref.func $a))))
)
(assert_return (invoke "call" (i32.const 0)) (i32.const 1))
(assert_return (invoke "call" (i32.const 1)) (i32.const 2))
(assert_return (invoke "call" (i32.const 2)) (i32.const 2))
(assert_return (invoke "call" (i32.const 3)) (i32.const 1))
(assert_return (invoke "call" (i32.const 4)) (i32.const 1))
(assert_trap (invoke "call" (i32.const 5)) "uninitialized element")
(invoke "init-late")
(assert_return (invoke "call" (i32.const 5)) (i32.const 2))
(assert_return (invoke "ref-a-not-null") (i32.const 1))

;; Flat and folded instructions with labels, block types given as type uses.
(module
  (type $i2i (func (param i32) (result i32)))
  (func (export "mix") (param i32) (result i32)
    local.get 0
    block $b (type $i2i)
      i32.const 3
      i32.mul
      (br_if $b (i32.eqz (local.get 0)))
      i32.const 1
      i32.add
    end $b
    (if (result i32) (i32.gt_u (local.get 0) (i32.const 100))
      (then (i32.const 1000))
      (else (local.get 0)))
    i32.add)
  (func (export "comments") (result i32)
    (; block (; nested ;) comment ;) (i32.const 7) ;; line comment
    (@an annotation (with "parens") here))
)
(assert_return (invoke "mix" (i32.const 0)) (i32.const 0))
(assert_return (invoke "mix" (i32.const 5)) (i32.const 21))
(assert_return (invoke "mix" (i32.const 200)) (i32.const 1601))
(assert_return (invoke "comments") (i32.const 7))

;; Quoted and binary modules.
(module quote
  "(func (export \"q\") (result i64)"
  "  (i64.const 0x7fff_ffff_ffff_ffff))")
(assert_return (invoke "q") (i64.const 9223372036854775807))

(module binary
  "\00asm" "\01\00\00\00"
  "\01\05\01\60\00\01\7f"        ;; type section: [] -> [i32]
  "\03\02\01\00"                 ;; function section: one function of type 0
  "\07\05\01\01\62\00\00"        ;; export section: "b" is function 0
  "\0a\06\01\04\00\41\2a\0b")    ;; code: i32.const 42, end
(assert_return (invoke "b") (i32.const 42))
