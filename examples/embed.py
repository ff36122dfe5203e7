"""Embed wasmtee in a Python program: instantiate a WAT module, call it, share memory.

From the repository root, run `PYTHONPATH=. python3 examples/embed.py [TIER]`,
where TIER is python (the default), llvm or auto.
It prints what each step produced, including the errors of a grow past the
store's memory limit and of a call after the store is closed.
"""

from __future__ import annotations

import sys

import wasmtee
from wasmtee import Config, Engine, Func, FuncType, Linker, Module, Store, ValType

I32 = ValType.I32

WAT = r"""
(module
  (import "host" "log" (func $log (param i32 i32)))
  (import "host" "scale" (func $scale (param i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "Hello from wasm!")
  (global $calls (export "calls") (mut i32) (i32.const 0))

  ;; Ask the host to print the greeting stored at offset 16.
  (func (export "greet")
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (call $log (i32.const 16) (i32.const 16)))

  ;; Sum the bytes of memory[ptr, ptr+len).
  (func (export "checksum") (param $ptr i32) (param $len i32) (result i32)
    (local $sum i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $len)))
        (local.set $sum (i32.add (local.get $sum) (i32.load8_u (local.get $ptr))))
        (local.set $ptr (i32.add (local.get $ptr) (i32.const 1)))
        (local.set $len (i32.sub (local.get $len) (i32.const 1)))
        (br $next)))
    (local.get $sum))

  ;; Call back into the host, then return two results.
  (func (export "scaled_pair") (param i32) (result i32 i64)
    (call $scale (local.get 0))
    (i64.extend_i32_s (local.get 0))))
"""


def main(tier: str = "python") -> None:
    engine = Engine(Config(tier=tier))
    store = Store(engine)
    # The limit is in bytes: each memory of this store may grow to at most 4 pages of 64 KiB.
    store.set_limits(memory_size=4 * 65536)
    module = Module(engine, WAT)
    print("imports:", [(i.module, i.name, str(i.type)) for i in module.imports])
    print("exports:", [e.name for e in module.exports])

    linker = Linker(engine)

    def log(caller: wasmtee.Caller, ptr: int, length: int) -> None:
        # A host function with access_caller=True reads the guest's memory.
        memory = caller["memory"]
        print("guest says:", memory.read(caller, ptr, ptr + length).decode())

    linker.define_func("host", "log", FuncType((I32, I32), ()), log, access_caller=True)
    scale = Func(store, FuncType((I32,), (I32,)), lambda x: x * 10)
    linker.define(store, "host", "scale", scale)

    instance = linker.instantiate(store, module)
    exports = instance.exports(store)
    exports["greet"](store)

    memory = exports["memory"]
    memory.write(store, bytes([1, 2, 3, 250]), 1000)
    print("checksum:", exports["checksum"](store, 1000, 4))
    print("scaled_pair(-7):", exports.scaled_pair(store, -7))
    print("calls:", exports["calls"].value(store))
    print("memory pages:", memory.size(store), "grow returned", memory.grow(store, 1))
    try:
        memory.grow(store, 10)
    except wasmtee.ResourceLimitExceeded as exc:
        print("grow failed:", exc)

    # Closing the store releases its memories, and every later use raises UsageError.
    store.close()
    try:
        exports["checksum"](store, 1000, 4)
    except wasmtee.UsageError as exc:
        print("after close:", exc)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "python")
