;; Structured control flow, branches, calls and recursion.

(module
  (func $fac (export "fac") (param $n i64) (result i64)
    (if (result i64) (i64.eqz (local.get $n))
      (then (i64.const 1))
      (else (i64.mul (local.get $n) (call $fac (i64.sub (local.get $n) (i64.const 1)))))))

  (func (export "fac-iter") (param $n i64) (result i64) (local $acc i64)
    (local.set $acc (i64.const 1))
    (block $done
      (loop $next
        (br_if $done (i64.le_u (local.get $n) (i64.const 1)))
        (local.set $acc (i64.mul (local.get $acc) (local.get $n)))
        (local.set $n (i64.sub (local.get $n) (i64.const 1)))
        (br $next)))
    (local.get $acc))

  (func (export "switch") (param i32) (result i32)
    (block $default
      (block $two
        (block $one
          (block $zero
            (br_table $zero $one $two $default (local.get 0)))
          (return (i32.const 100)))
        (return (i32.const 101)))
      (return (i32.const 102)))
    (i32.const -1))

  (func (export "br-value") (param i32) (result i32)
    (block $out (result i32)
      (drop (br_if $out (i32.const 7) (local.get 0)))
      (i32.const 8)))

  (func (export "nested-labels") (result i32)
    (block $a (result i32)
      (block $b (result i32)
        (br $a (i32.const 1)))
      (drop)
      (i32.const 2)))

  (func (export "loop-sum") (param $n i32) (result i32) (local $sum i32)
    loop $again
      local.get $sum
      local.get $n
      i32.add
      local.set $sum
      local.get $n
      i32.const 1
      i32.sub
      local.tee $n
      br_if $again
    end
    local.get $sum)

  (func (export "if-no-else") (param i32) (result i32) (local $r i32)
    (local.set $r (i32.const 5))
    (if (local.get 0) (then (local.set $r (i32.const 6))))
    (local.get $r))

  (func (export "select") (param i32) (result i64)
    (select (i64.const 10) (i64.const 20) (local.get 0)))

  (func (export "select-typed") (param i32) (result f64)
    (select (result f64) (f64.const 1.5) (f64.const -2.5) (local.get 0)))

  (func (export "return-early") (param i32) (result i32)
    (if (local.get 0) (then (return (i32.const 1))))
    (i32.const 0))

  (func $even (export "even") (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0))
      (then (i32.const 1))
      (else (call $odd (i32.sub (local.get 0) (i32.const 1))))))
  (func $odd (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0))
      (then (i32.const 0))
      (else (call $even (i32.sub (local.get 0) (i32.const 1))))))

  (func (export "unreachable-after-br") (result i32)
    (block $b (result i32) (br $b (i32.const 3)) (unreachable)))
)

(assert_return (invoke "fac" (i64.const 0)) (i64.const 1))
(assert_return (invoke "fac" (i64.const 20)) (i64.const 2432902008176640000))
(assert_return (invoke "fac" (i64.const 25)) (i64.const 7034535277573963776))
(assert_return (invoke "fac-iter" (i64.const 20)) (i64.const 2432902008176640000))
(assert_return (invoke "switch" (i32.const 0)) (i32.const 100))
(assert_return (invoke "switch" (i32.const 1)) (i32.const 101))
(assert_return (invoke "switch" (i32.const 2)) (i32.const 102))
(assert_return (invoke "switch" (i32.const 3)) (i32.const -1))
(assert_return (invoke "switch" (i32.const -1)) (i32.const -1))
(assert_return (invoke "br-value" (i32.const 0)) (i32.const 8))
(assert_return (invoke "br-value" (i32.const 1)) (i32.const 7))
(assert_return (invoke "nested-labels") (i32.const 1))
(assert_return (invoke "loop-sum" (i32.const 100)) (i32.const 5050))
(assert_return (invoke "if-no-else" (i32.const 0)) (i32.const 5))
(assert_return (invoke "if-no-else" (i32.const 9)) (i32.const 6))
(assert_return (invoke "select" (i32.const 1)) (i64.const 10))
(assert_return (invoke "select" (i32.const 0)) (i64.const 20))
(assert_return (invoke "select-typed" (i32.const 0)) (f64.const -2.5))
(assert_return (invoke "return-early" (i32.const 1)) (i32.const 1))
(assert_return (invoke "return-early" (i32.const 0)) (i32.const 0))
(assert_return (invoke "even" (i32.const 100)) (i32.const 1))
(assert_return (invoke "even" (i32.const 77)) (i32.const 0))
(assert_return (invoke "unreachable-after-br") (i32.const 3))

;; Indirect calls through a table.
(module
  (type $unop (func (param i32) (result i32)))
  (type $nullary (func (result i64)))
  (table funcref (elem $double $square $wide))
  (func $double (type $unop) (i32.shl (local.get 0) (i32.const 1)))
  (func $square (type $unop) (i32.mul (local.get 0) (local.get 0)))
  (func $wide (type $nullary) (i64.const 1))
  (func (export "apply") (param $f i32) (param $x i32) (result i32)
    (call_indirect (type $unop) (local.get $x) (local.get $f)))
)

(assert_return (invoke "apply" (i32.const 0) (i32.const 21)) (i32.const 42))
(assert_return (invoke "apply" (i32.const 1) (i32.const 12)) (i32.const 144))
(assert_trap (invoke "apply" (i32.const 2) (i32.const 1)) "indirect call type mismatch")
(assert_trap (invoke "apply" (i32.const 3) (i32.const 1)) "undefined element")
