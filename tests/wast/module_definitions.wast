;; Module definitions: validated once, instantiated by `module instance`.
;; Each instance has its own state.

(module definition $M
  (global $count (export "count") (mut i32) (i32.const 0))
  (func (export "inc") (global.set $count (i32.add (global.get $count) (i32.const 1))))
  (func (export "get") (result i32) (global.get $count)))

(module instance $I1 $M)
(module instance $I2 $M)
(invoke $I1 "inc")
(invoke $I1 "inc")
(invoke $I2 "inc")
(assert_return (invoke $I1 "get") (i32.const 2))
(assert_return (invoke $I2 "get") (i32.const 1))
(assert_return (get $I1 "count") (i32.const 2))

;; An unnamed instance of the latest definition becomes the current module.
(module instance)
(assert_return (invoke "get") (i32.const 0))

;; Instances link like ordinary modules.
(register "counter" $I1)
(module
  (import "counter" "get" (func $get (result i32)))
  (func (export "via") (result i32) (call $get)))
(assert_return (invoke "via") (i32.const 2))

;; A valid definition that would need 4 GiB is never instantiated.
(module definition (memory 65536))

;; Binary definitions work the same way.
(module definition $B binary
  "\00asm" "\01\00\00\00"
  "\01\05\01\60\00\01\7f"                      ;; type: [] -> [i32]
  "\03\02\01\00"                               ;; func 0 has type 0
  "\07\07\01\03\6f\6e\65\00\00"                ;; export "one" = func 0
  "\0a\06\01\04\00\41\01\0b")                  ;; body: i32.const 1
(module instance $One $B)
(assert_return (invoke $One "one") (i32.const 1))
(assert_invalid
  (module (func (result i32)))
  "type mismatch")
