"""The llvm tier: results, traps, sandboxing of memory accesses, host calls, AOT artifacts."""

from __future__ import annotations

import io
import math
import struct

import pytest

pytest.importorskip("llvmlite")

from wasmtee import Config, Engine, Func, FuncType, Instance, Module, Store, Trap, TrapCode, ValType  # noqa: E402
from wasmtee.errors import CompileError, UsageError  # noqa: E402

I32, I64, F32, F64 = ValType.I32, ValType.I64, ValType.F32, ValType.F64


@pytest.fixture(autouse=True)
def private_state_dir(tmp_path, monkeypatch) -> None:
    """Keep the JIT cache and the artifact key of each test in its own directory."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def instantiate(wat: str, imports: list | None = None, **config: object):
    engine = Engine(Config(tier="llvm", **config))
    store = Store(engine)
    module = Module(engine, wat)
    instance = Instance(store, module, imports or [])
    return store, instance.exports(store)


def call(wat: str, name: str, *args: object) -> object:
    store, exports = instantiate(wat)
    return exports[name](store, *args)


def trap_code(wat: str, name: str, *args: object) -> TrapCode:
    store, exports = instantiate(wat)
    with pytest.raises(Trap) as info:
        exports[name](store, *args)
    return info.value.code


FIB = """
(module
  (func $fib (export "fib") (param i32) (result i32)
    local.get 0 i32.const 2 i32.lt_u
    if (result i32) local.get 0
    else
      local.get 0 i32.const 1 i32.sub call $fib
      local.get 0 i32.const 2 i32.sub call $fib
      i32.add
    end))
"""


def test_recursive_fib() -> None:
    assert call(FIB, "fib", 20) == 6765


def test_integer_semantics() -> None:
    wat = """
    (module
      (func (export "div_s") (param i32 i32) (result i32) local.get 0 local.get 1 i32.div_s)
      (func (export "rem_s") (param i32 i32) (result i32) local.get 0 local.get 1 i32.rem_s)
      (func (export "shl") (param i64 i64) (result i64) local.get 0 local.get 1 i64.shl)
      (func (export "rotl") (param i32 i32) (result i32) local.get 0 local.get 1 i32.rotl)
      (func (export "clz") (param i64) (result i64) local.get 0 i64.clz)
      (func (export "ext8") (param i32) (result i32) local.get 0 i32.extend8_s))
    """
    store, exports = instantiate(wat)
    assert exports["div_s"](store, -7, 2) == -3
    assert exports["rem_s"](store, -(2**31), -1) == 0
    assert exports["shl"](store, 1, 65) == 2
    assert exports["rotl"](store, 0x80000001, 1) == 3
    assert exports["clz"](store, 0) == 64
    assert exports["ext8"](store, 0x80) == -128


def test_integer_traps() -> None:
    wat = """
    (module
      (func (export "div") (param i32 i32) (result i32) local.get 0 local.get 1 i32.div_s)
      (func (export "trunc") (param f64) (result i32) local.get 0 i32.trunc_f64_s)
      (func (export "unreachable") unreachable))
    """
    assert trap_code(wat, "div", 1, 0) is TrapCode.INTEGER_DIVIDE_BY_ZERO
    assert trap_code(wat, "div", -(2**31), -1) is TrapCode.INTEGER_OVERFLOW
    assert trap_code(wat, "trunc", 2.0**31) is TrapCode.INTEGER_OVERFLOW
    assert trap_code(wat, "trunc", math.nan) is TrapCode.BAD_CONVERSION_TO_INTEGER
    assert trap_code(wat, "unreachable") is TrapCode.UNREACHABLE
    assert call(wat, "trunc", -2147483648.9) == -(2**31)


def test_float_semantics() -> None:
    wat = """
    (module
      (func (export "min") (param f32 f32) (result f32) local.get 0 local.get 1 f32.min)
      (func (export "nearest") (param f64) (result f64) local.get 0 f64.nearest)
      (func (export "nan_bits") (result i32) f32.const nan:0x200000 i32.reinterpret_f32)
      (func (export "neg_bits") (param i32) (result i32)
        local.get 0 f32.reinterpret_i32 f32.neg i32.reinterpret_f32))
    """
    store, exports = instantiate(wat)
    assert math.copysign(1.0, exports["min"](store, 0.0, -0.0)) == -1.0
    assert math.isnan(exports["min"](store, math.nan, 1.0))
    assert exports["nearest"](store, 2.5) == 2.0
    assert exports["nan_bits"](store) == 0x7FA00000
    # A signalling NaN keeps its payload through neg, which is a bit operation.
    assert exports["neg_bits"](store, 0x7FA00001) & 0xFFFFFFFF == 0xFFA00001


def test_multi_value_and_loops() -> None:
    wat = """
    (module
      (func (export "pair") (result i32 i64 f64) i32.const 1 i64.const 2 f64.const 3.5)
      (func (export "sum") (param $n i32) (result i64) (local $acc i64)
        block $done
          loop $top
            local.get $n i32.eqz br_if $done
            local.get $acc local.get $n i64.extend_i32_u i64.add local.set $acc
            local.get $n i32.const 1 i32.sub local.set $n
            br $top
          end
        end
        local.get $acc)
      (func (export "table") (param i32) (result i32)
        block $a block $b block $c
          local.get 0 br_table $a $b $c
        end i32.const 30 return
        end i32.const 20 return
        end i32.const 10))
    """
    store, exports = instantiate(wat)
    assert exports["pair"](store) == [1, 2, 3.5]
    assert exports["sum"](store, 1000) == 500500
    assert [exports["table"](store, i) for i in range(4)] == [10, 20, 30, 30]


MEMORY = """
(module
  (memory (export "memory") 1 3)
  (func (export "load8") (param i32) (result i32) local.get 0 i32.load8_u)
  (func (export "load16") (param i32) (result i32) local.get 0 i32.load16_u)
  (func (export "load32") (param i32) (result i32) local.get 0 i32.load)
  (func (export "load64") (param i32) (result i64) local.get 0 i64.load)
  (func (export "load_offset") (param i32) (result i32) local.get 0 i32.load offset=4294967295)
  (func (export "store64") (param i32 i64) local.get 0 local.get 1 i64.store)
  (func (export "grow") (param i32) (result i32) local.get 0 memory.grow)
  (func (export "fill") (param i32 i32 i32) local.get 0 local.get 1 local.get 2 memory.fill)
  (func (export "copy") (param i32 i32 i32) local.get 0 local.get 1 local.get 2 memory.copy))
"""


@pytest.mark.parametrize(
    ("name", "width"), [("load8", 1), ("load16", 2), ("load32", 4), ("load64", 8)]
)
def test_loads_trap_at_every_edge(name: str, width: int) -> None:
    store, exports = instantiate(MEMORY)
    size = 65536
    exports[name](store, 0)
    exports[name](store, size - width)
    for address in (size - width + 1, size, size + 1, 2**31, 2**32 - 1, 2**32 - width):
        with pytest.raises(Trap) as info:
            exports[name](store, address - 2**32 if address >= 2**31 else address)
        assert info.value.code is TrapCode.MEMORY_OUT_OF_BOUNDS


def test_offset_cannot_wrap_around_4gib() -> None:
    store, exports = instantiate(MEMORY)
    for address in (0, 1, -1):
        with pytest.raises(Trap) as info:
            exports["load_offset"](store, address)
        assert info.value.code is TrapCode.MEMORY_OUT_OF_BOUNDS


def test_bounds_follow_memory_grow() -> None:
    store, exports = instantiate(MEMORY)
    with pytest.raises(Trap):
        exports["store64"](store, 65536, 7)
    assert exports["grow"](store, 1) == 1
    exports["store64"](store, 65536, 7)
    assert exports["load64"](store, 65536) == 7
    assert exports["grow"](store, 5) == -1
    with pytest.raises(Trap):
        exports["load8"](store, 2 * 65536)


def test_bulk_memory_bounds() -> None:
    store, exports = instantiate(MEMORY)
    exports["fill"](store, 65530, 0xAB, 6)
    assert exports["load8"](store, 65535) == 0xAB
    for args in ((65531, 1, 6), (-1, 1, 2), (0, 0, 65537)):
        with pytest.raises(Trap) as info:
            exports["fill"](store, *args)
        assert info.value.code is TrapCode.MEMORY_OUT_OF_BOUNDS
    exports["copy"](store, 0, 65530, 6)
    assert exports["load8"](store, 5) == 0xAB
    with pytest.raises(Trap):
        exports["copy"](store, 65535, 0, 2)
    with pytest.raises(Trap):
        exports["copy"](store, 0, 65535, 2)


def test_deep_recursion_is_a_trap() -> None:
    wat = "(module (func $f (export \"f\") (param i32) (result i32) local.get 0 call $f))"
    assert trap_code(wat, "f", 0) is TrapCode.STACK_EXHAUSTED


def test_host_calls_both_directions() -> None:
    engine = Engine(Config(tier="llvm"))
    store = Store(engine)
    seen = []

    def host(x: int) -> int:
        seen.append(x)
        return x * 3

    callback = Func(store, FuncType((I32,), (I32,)), host)
    module = Module(engine, """
    (module
      (import "host" "triple" (func $triple (param i32) (result i32)))
      (func (export "run") (param i32) (result i32) local.get 0 call $triple i32.const 1 i32.add))
    """)
    exports = Instance(store, module, [callback]).exports(store)
    assert exports["run"](store, 5) == 16
    assert seen == [5]


def test_host_exception_propagates_through_native_frames() -> None:
    engine = Engine(Config(tier="llvm"))
    store = Store(engine)

    def failing() -> None:
        raise Trap(TrapCode.UNREACHABLE, "from the host")

    module = Module(engine, """
    (module
      (import "host" "fail" (func $fail))
      (func (export "run") call $fail))
    """)
    exports = Instance(store, module, [Func(store, FuncType((), ()), failing)]).exports(store)
    with pytest.raises(Trap) as info:
        exports["run"](store)
    assert info.value.detail == "from the host"


def test_call_indirect_checks() -> None:
    wat = """
    (module
      (type $unary (func (param i32) (result i32)))
      (table 3 funcref)
      (elem (i32.const 0) $inc $other)
      (func $inc (param i32) (result i32) local.get 0 i32.const 1 i32.add)
      (func $other (result i32) i32.const 0)
      (func (export "call") (param i32 i32) (result i32)
        local.get 0 local.get 1 call_indirect (type $unary)))
    """
    assert call(wat, "call", 41, 0) == 42
    assert trap_code(wat, "call", 0, 1) is TrapCode.INDIRECT_CALL_TYPE_MISMATCH
    assert trap_code(wat, "call", 0, 2) is TrapCode.UNINITIALIZED_ELEMENT
    assert trap_code(wat, "call", 0, 3) is TrapCode.UNDEFINED_ELEMENT


def test_fuel_runs_out_in_a_loop() -> None:
    wat = "(module (func (export \"spin\") (loop $l br $l)))"
    store, exports = instantiate(wat, consume_fuel=True)
    store.set_fuel(10_000)
    with pytest.raises(Trap) as info:
        exports["spin"](store)
    assert info.value.code is TrapCode.OUT_OF_FUEL


def test_globals_are_shared_with_python() -> None:
    wat = """
    (module
      (global $g (export "g") (mut i64) (i64.const 5))
      (func (export "bump") (result i64)
        global.get $g i64.const 1 i64.add global.set $g global.get $g))
    """
    store, exports = instantiate(wat)
    assert exports["bump"](store) == 6
    assert exports["g"].value(store) == 6
    exports["g"].set_value(store, 100)
    assert exports["bump"](store) == 101


def test_aot_artifact_round_trip(tmp_path, monkeypatch) -> None:
    from wasmtee.llvm import aot

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    wasm = fib_wasm()
    artifact = aot.compile_artifact(wasm)
    header, source, objects = aot.read_artifact(artifact)
    assert source == wasm
    assert header.module_sha256 == __import__("hashlib").sha256(wasm).hexdigest()
    assert objects


def test_aot_artifact_tampering_is_rejected(tmp_path, monkeypatch) -> None:
    from wasmtee.llvm import aot

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    artifact = bytearray(aot.compile_artifact(fib_wasm()))
    artifact[-10] ^= 1
    with pytest.raises(CompileError, match="integrity"):
        aot.read_artifact(bytes(artifact))
    with pytest.raises(CompileError, match="magic"):
        aot.read_artifact(b"\0asm" + bytes(artifact[4:]))


STORES = """
(module
  (memory (export "memory") 1 2)
  (data $d "abcd")
  (func (export "store8") (param i32) local.get 0 i32.const 1 i32.store8)
  (func (export "store16") (param i32) local.get 0 i32.const 1 i32.store16)
  (func (export "store32") (param i32) local.get 0 i32.const 1 i32.store)
  (func (export "store64") (param i32) local.get 0 i64.const 1 i64.store)
  (func (export "storef32") (param i32) local.get 0 f32.const 1 f32.store)
  (func (export "storef64") (param i32) local.get 0 f64.const 1 f64.store)
  (func (export "grow") (param i32) (result i32) local.get 0 memory.grow)
  (func (export "init") (param i32 i32 i32) local.get 0 local.get 1 local.get 2 memory.init $d))
"""


@pytest.mark.parametrize(
    ("name", "width"),
    [("store8", 1), ("store16", 2), ("store32", 4), ("store64", 8), ("storef32", 4), ("storef64", 8)],
)
def test_stores_trap_at_every_edge(name: str, width: int) -> None:
    store, exports = instantiate(STORES)
    memory = exports["memory"]
    size = 65536
    exports[name](store, 0)
    exports[name](store, size - width)
    for address in (size - width + 1, size, 2**31, 2**32 - width, 2**32 - 1):
        with pytest.raises(Trap) as info:
            exports[name](store, address - 2**32 if address >= 2**31 else address)
        assert info.value.code is TrapCode.MEMORY_OUT_OF_BOUNDS
    assert exports["grow"](store, 1) == 1
    exports[name](store, 2 * size - width)
    tail = memory.read(store, 2 * size - width, 2 * size)
    with pytest.raises(Trap) as info:
        exports[name](store, 2 * size - width + 1)
    assert info.value.code is TrapCode.MEMORY_OUT_OF_BOUNDS
    # A trapping store writes nothing, not even the bytes that are inside the memory.
    assert memory.read(store, 2 * size - width, 2 * size) == tail


def test_memory_init_bounds() -> None:
    store, exports = instantiate(STORES)
    memory = exports["memory"]
    exports["init"](store, 65532, 0, 4)
    assert memory.read(store, 65532, 65536) == b"abcd"
    for args in ((65533, 0, 4), (0, 1, 4), (-1, 0, 1)):
        with pytest.raises(Trap) as info:
            exports["init"](store, *args)
        assert info.value.code is TrapCode.MEMORY_OUT_OF_BOUNDS


INDIRECT = """
(module
  (type $unary (func (param i32) (result i32)))
  (import "host" "triple" (func $triple (type $unary)))
  (table $t (export "table") 4 10 funcref)
  (elem (i32.const 0) $inc $double $triple)
  (func $inc (param i32) (result i32) local.get 0 i32.const 1 i32.add)
  (func $double (param i32) (result i32) local.get 0 i32.const 2 i32.mul)
  (func (export "call") (param i32 i32) (result i32)
    local.get 1 local.get 0 call_indirect (type $unary))
  (func (export "swap") i32.const 0 i32.const 1 table.get $t table.set $t)
  (func (export "grow") (result i32) ref.func $inc i32.const 2 table.grow $t)
  (func $down (export "down") (param i32) (result i32)
    local.get 0 i32.eqz
    if (result i32) i32.const 0
    else local.get 0 i32.const 1 i32.sub i32.const 3 call_indirect (type $unary) i32.const 1 i32.add
    end)
  (elem (i32.const 3) $down))
"""


def instantiate_indirect():
    engine = Engine(Config(tier="llvm"))
    store = Store(engine)
    triple = Func(store, FuncType((I32,), (I32,)), lambda x: x * 3)
    exports = Instance(store, Module(engine, INDIRECT), [triple]).exports(store)
    return store, exports, triple


def test_indirect_calls_follow_table_writes() -> None:
    store, exports, triple = instantiate_indirect()
    call_ = exports["call"]
    assert call_(store, 0, 5) == 6
    assert call_(store, 1, 5) == 10
    assert call_(store, 2, 5) == 15  # a host function: the runtime path
    exports["swap"](store)  # table[0] = table[1]
    assert call_(store, 0, 5) == 10
    assert exports["grow"](store) == 4
    assert call_(store, 5, 5) == 6
    with pytest.raises(Trap) as info:
        call_(store, 6, 5)
    assert info.value.code is TrapCode.UNDEFINED_ELEMENT
    table = exports["table"]
    table.set(store, 1, triple)
    assert call_(store, 1, 5) == 15
    table.set(store, 1, None)
    with pytest.raises(Trap) as info:
        call_(store, 1, 5)
    assert info.value.code is TrapCode.UNINITIALIZED_ELEMENT


def test_deep_indirect_recursion_stays_native() -> None:
    store, exports, _ = instantiate_indirect()
    # 5000 nested call_indirect frames would overflow Python's recursion limit
    # if each went through the runtime callback.
    assert exports["down"](store, 5000) == 5000
    with pytest.raises(Trap) as info:
        exports["down"](store, 10**8)
    assert info.value.code is TrapCode.STACK_EXHAUSTED


def test_jit_cache_skips_recompilation(monkeypatch) -> None:
    from wasmtee.llvm import jit

    assert call(FIB, "fib", 10) == 55

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the module was compiled again")

    monkeypatch.setattr(jit, "compile_objects", fail)
    assert call(FIB, "fib", 12) == 144
    monkeypatch.setenv("WASMTEE_JIT_CACHE", "0")
    with pytest.raises(CompileError, match="compiled again"):
        call(FIB, "fib", 12)


def test_artifact_loads_without_compiling(monkeypatch) -> None:
    from wasmtee.llvm import aot, jit

    artifact = aot.compile_artifact(fib_wasm())

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the artifact was compiled again")

    monkeypatch.setattr(jit, "compile_objects", fail)
    engine = Engine(Config(tier="llvm"))
    module = aot.load_module(engine, artifact)
    store = Store(engine)
    exports = Instance(store, module, []).exports(store)
    assert exports["fib"](store, 15) == 610


def test_artifact_option_mismatch_is_rejected() -> None:
    from wasmtee.llvm import aot

    artifact = aot.compile_artifact(fib_wasm())
    with pytest.raises(CompileError, match="--consume-fuel"):
        aot.load_module(Engine(Config(tier="llvm", consume_fuel=True)), artifact)
    with pytest.raises(CompileError, match="llvm tier"):
        aot.load_module(Engine(Config(tier="python")), artifact)


def test_artifact_for_foreign_cpu_is_rejected() -> None:
    from wasmtee.llvm import aot

    host_cpu = aot.host_identity()[1]
    other = "znver4" if host_cpu != "znver4" else "skylake"
    artifact = aot.compile_artifact(fib_wasm(), opt_level=0, cpu=other)
    with pytest.raises(CompileError, match=f"targets CPU {other}"):
        aot.read_artifact(artifact)
    portable = aot.compile_artifact(fib_wasm(), opt_level=0, cpu="x86-64")
    assert aot.read_artifact(portable)[0].cpu_name == "x86-64"


def fib_wasm() -> bytes:
    """Return FIB as a binary module, encoded by hand so the test needs no tools."""
    body = bytes.fromhex("200041024904" "7f" "2000" "0520004101" "6b1000" "20004102" "6b1000" "6a0b0b")
    code = bytes([len(body) + 1, 0]) + body
    sections = [
        (1, bytes.fromhex("0160017f017f")),
        (3, bytes.fromhex("0100")),
        (7, b"\x01\x03fib\x00\x00"),
        (10, b"\x01" + code),
    ]
    out = b"\0asm" + struct.pack("<I", 1)
    for section_id, payload in sections:
        out += bytes([section_id, len(payload)]) + payload
    return out


# Each export recurses without bound in a shape that LLVM's optimizer can turn
# into a loop (tail-recursion and accumulator elimination), which would hang
# or return a value instead of trapping.
UNBOUNDED_RECURSION = """
(module
  (type $v (func))
  (table 1 funcref)
  (elem (i32.const 0) $indirect)
  (func $runaway (export "runaway") (call $runaway))
  (func $even (export "mutual") (call $odd))
  (func $odd (call $even))
  (func $indirect (export "indirect") (call_indirect (type $v) (i32.const 0)))
  (func $count (export "count") (param i32) (result i32)
    (call $count (i32.add (local.get 0) (i32.const 1))))
  (func $fac (export "fac") (param i64) (result i64)
    (if (result i64) (i64.eqz (local.get 0))
      (then (i64.const 1))
      (else (i64.mul (local.get 0) (call $fac (i64.sub (local.get 0) (i64.const 1))))))))
"""


@pytest.mark.parametrize("opt_level", [0, 1, 2, 3])
def test_recursion_traps_at_each_opt_level(opt_level: int) -> None:
    from wasmtee.binary import encode_module
    from wasmtee.llvm import aot
    from wasmtee.text import parse_wat

    wasm = encode_module(parse_wat(UNBOUNDED_RECURSION))
    artifact = aot.compile_artifact(wasm, opt_level=opt_level, interruptible=True)
    engine = Engine(Config(tier="llvm", epoch_interruption=True))
    module = aot.load_module(engine, artifact)
    store = Store(engine)
    # A hang becomes an INTERRUPTED trap, which fails the code check below.
    store.set_deadline(20)
    exports = Instance(store, module, []).exports(store)
    cases = [("runaway", ()), ("mutual", ()), ("indirect", ()), ("count", (0,)), ("fac", (1 << 30,))]
    for name, args in cases:
        with pytest.raises(Trap) as info:
            exports[name](store, *args)
        assert info.value.code is TrapCode.STACK_EXHAUSTED, f"{name} at -O{opt_level}"
    assert exports["fac"](store, 10) == 3628800


# Functions that call each other directly and through a table, so a module
# split into one chunk per function must link calls across chunks.
CROSS_CHUNK = """
(module
  (type $unary (func (param i32) (result i32)))
  (table 2 funcref)
  (elem (i32.const 0) $double $triple)
  (func $double (param i32) (result i32) (i32.mul (local.get 0) (i32.const 2)))
  (func $triple (param i32) (result i32) (i32.mul (local.get 0) (i32.const 3)))
  (func $both (export "both") (param i32) (result i32)
    (i32.add (call $double (local.get 0))
             (call_indirect (type $unary) (local.get 0) (i32.const 1))))
  (func $fib (export "fib") (param i32) (result i32)
    (if (result i32) (i32.lt_u (local.get 0) (i32.const 2))
      (then (local.get 0))
      (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                     (call $fib (i32.sub (local.get 0) (i32.const 2))))))))
"""


@pytest.mark.parametrize("workers", ["0", "2"])
def test_chunked_compile_links_calls(monkeypatch, workers: str) -> None:
    from wasmtee.llvm import jit

    monkeypatch.setattr(jit, "CHUNK_INSTRUCTIONS", 1)
    monkeypatch.setattr(jit, "MIN_CHUNKS_FOR_WORKERS", 2)
    monkeypatch.setenv("WASMTEE_COMPILE_WORKERS", workers)
    compiled: list[int] = []
    original = jit.compile_objects

    def counting(*args: object, **kwargs: object) -> list[bytes]:
        objects = original(*args, **kwargs)
        compiled.append(len(objects))
        return objects

    monkeypatch.setattr(jit, "compile_objects", counting)
    store, exports = instantiate(CROSS_CHUNK)
    assert compiled == [4]
    assert exports["both"](store, 7) == 35
    assert exports["fib"](store, 15) == 610


def test_worker_reports_invalid_ir() -> None:
    from wasmtee.llvm import workers

    with pytest.raises(CompileError, match="LLVM rejected the generated IR"):
        workers.compile_in_workers(iter(["define void @f( {"]), 1, 1, None, 2)


def test_large_module_gets_fast_opt_level(monkeypatch) -> None:
    from wasmtee.binary import encode_module
    from wasmtee.llvm import aot, jit
    from wasmtee.text import parse_wat

    wasm = encode_module(parse_wat(CROSS_CHUNK))
    assert aot.read_artifact(aot.compile_artifact(wasm))[0].opt_level == jit.DEFAULT_OPT_LEVEL
    monkeypatch.setattr(jit, "LARGE_MODULE_INSTRUCTIONS", 10)
    assert aot.read_artifact(aot.compile_artifact(wasm))[0].opt_level == jit.FAST_OPT_LEVEL
    assert aot.read_artifact(aot.compile_artifact(wasm, opt_level=3))[0].opt_level == 3
    store, exports = instantiate(CROSS_CHUNK)
    assert exports["fib"](store, 15) == 610


def test_opt_level_from_environment(monkeypatch) -> None:
    monkeypatch.setenv("WASMTEE_OPT_LEVEL", "0")
    assert call(FIB, "fib", 12) == 144
    monkeypatch.setenv("WASMTEE_OPT_LEVEL", "fast")
    with pytest.raises(CompileError, match="WASMTEE_OPT_LEVEL 'fast'"):
        instantiate(FIB)
    monkeypatch.setenv("WASMTEE_OPT_LEVEL", "7")
    with pytest.raises(CompileError, match="invalid LLVM opt level 7"):
        instantiate(FIB)


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_compile_progress_draws_only_on_terminals(monkeypatch) -> None:
    from wasmtee.llvm import jit

    terminal = FakeTerminal()
    progress = jit.CompileProgress(123, 1, terminal)
    progress.started -= 10  # as if the compile had run for 10 s
    progress(1, 2)
    progress(2, 2)
    assert "compiling 123 wasm instructions" in terminal.getvalue()
    assert "2/2" in terminal.getvalue()
    assert terminal.getvalue().endswith("\n")
    pipe = io.StringIO()
    progress = jit.CompileProgress(123, 1, pipe)
    progress.started -= 10
    progress(1, 1)
    assert pipe.getvalue() == ""
    quick = FakeTerminal()
    jit.CompileProgress(123, 1, quick)(1, 1)
    assert quick.getvalue() == ""


def test_cache_key_uses_source_binary(monkeypatch) -> None:
    import wasmtee.binary

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the module was encoded again for the cache key")

    monkeypatch.setattr(wasmtee.binary, "encode_module", fail)
    engine = Engine(Config(tier="llvm"))
    module = Module(engine, fib_wasm())
    assert not hasattr(module._model, "source_binary")
    store = Store(engine)
    assert Instance(store, module, []).exports(store)["fib"](store, 10) == 55


SHARED_BASE = """
(module (memory 1)
  (func (export "pair") (param i32) (result i32)
    (i32.add (i32.load (local.get 0)) (i32.load offset=65532 (local.get 0))))
  (func (export "reverse") (param i32) (result i32)
    (i32.add (i32.load offset=65532 (local.get 0)) (i32.load8_u (local.get 0))))
  (func (export "grow_between") (param i32) (result i32)
    (drop (i32.load (local.get 0)))
    (drop (memory.grow (i32.const 1)))
    (i32.store offset=65536 (local.get 0) (i32.const 7))
    (i32.load offset=65536 (local.get 0))))
"""


def test_shared_base_checks_each_range() -> None:
    store, exports = instantiate(SHARED_BASE)
    # The second access of each pair ends past the first one's checked range.
    assert exports["pair"](store, 0) == 0
    with pytest.raises(Trap) as info:
        exports["pair"](store, 1)
    assert info.value.code is TrapCode.MEMORY_OUT_OF_BOUNDS
    assert exports["reverse"](store, 0) == 0
    with pytest.raises(Trap) as info:
        exports["reverse"](store, 1)
    assert info.value.code is TrapCode.MEMORY_OUT_OF_BOUNDS
    # memory.grow between two accesses: the second is checked against the new size.
    assert exports["grow_between"](store, 0) == 7


def test_broken_workers_fall_back_in_process(monkeypatch, caplog) -> None:
    import sys

    from wasmtee.llvm import jit

    monkeypatch.setattr(jit, "CHUNK_INSTRUCTIONS", 1)
    monkeypatch.setattr(jit, "MIN_CHUNKS_FOR_WORKERS", 2)
    monkeypatch.setenv("WASMTEE_COMPILE_WORKERS", "2")
    # Each worker exits with status 1 at once, as when its interpreter cannot import wasmtee.
    monkeypatch.setattr(sys, "executable", "/bin/false")
    store, exports = instantiate(CROSS_CHUNK)
    assert exports["fib"](store, 15) == 610
    assert "LLVM worker processes are unavailable" in caplog.text


@pytest.mark.parametrize("opt_level", ["0", "1", "2"])
def test_fuel_and_interrupt_checks_at_each_opt_level(monkeypatch, opt_level: str) -> None:
    import threading

    monkeypatch.setenv("WASMTEE_OPT_LEVEL", opt_level)
    spin = "(module (func (export \"spin\") (loop $l br $l)))"
    store, exports = instantiate(spin, consume_fuel=True)
    store.set_fuel(10_000)
    with pytest.raises(Trap) as info:
        exports["spin"](store)
    assert info.value.code is TrapCode.OUT_OF_FUEL
    # The fuel bounds the loop if the interruption check is missing, and the
    # code check below then fails instead of the test hanging.
    store, exports = instantiate(spin, consume_fuel=True, epoch_interruption=True)
    store.set_fuel(2_000_000_000)
    timer = threading.Timer(0.2, store.interrupt)
    timer.start()
    try:
        with pytest.raises(Trap) as info:
            exports["spin"](store)
    finally:
        timer.cancel()
    assert info.value.code is TrapCode.INTERRUPTED


# Runs unbounded recursion on threads with small and default stacks, in a
# child process, so that a wrong stack limit crashes the child, not pytest.
SMALL_STACK_SCRIPT = """
import threading
from wasmtee import Config, Engine, Instance, Module, Store, Trap, TrapCode
from wasmtee.llvm import jit

engine = Engine(Config(tier="llvm"))
module = Module(engine, '(module (func $f (export "f") (param i64) (result i64)'
                        ' (i64.add (local.get 0) (call $f (i64.add (local.get 0) (i64.const 1))))))')
codes = []

def run():
    floor, top = jit.stack_bounds()
    assert floor < top, (floor, top)
    store = Store(engine)
    try:
        Instance(store, module, []).exports(store)["f"](store, 0)
    except Trap as exc:
        codes.append(exc.code)

for size in (256 * 1024, 1024 * 1024, 0):
    threading.stack_size(size)
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
run()
print(codes == [TrapCode.STACK_EXHAUSTED] * 4, codes)
"""


def test_recursion_traps_on_small_thread_stacks(tmp_path) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    environment = {**os.environ, "PYTHONPATH": str(repo), "XDG_STATE_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", SMALL_STACK_SCRIPT], capture_output=True,
                          timeout=300, env=environment)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(b"True"), proc.stdout


# Each function counts its work in the mutable global $n, so a run that
# stops partway shows how far it got.
FUEL_WAT = """
(module
  (global $n (export "n") (mut i32) (i32.const 0))
  (func $tick (global.set $n (i32.add (global.get $n) (i32.const 1))))
  (func (export "loop") (param i32)
    (loop local.get 0 i32.const 1 i32.sub local.tee 0 call $tick br_if 0))
  (func (export "straight") (param i32) (result i32)
    local.get 0 i32.const 1 i32.add i32.const 2 i32.mul i32.const 3 i32.xor
    i32.const 4 i32.add i32.const 5 i32.mul i32.const 6 i32.xor)
  (func (export "branches") (param i32) (result i32)
    (if (result i32) (i32.and (local.get 0) (i32.const 1))
      (then (call $tick) (i32.mul (local.get 0) (i32.const 3)))
      (else (i32.const 7))))
  (func (export "nested") (param i32 i32)
    (local $j i32)
    (loop $outer
      (local.set $j (local.get 1))
      (loop $inner
        (call $tick)
        (br_if $inner (local.tee $j (i32.sub (local.get $j) (i32.const 1)))))
      (br_if $outer (local.tee 0 (i32.sub (local.get 0) (i32.const 1))))))
  (func (export "once") (result i32)
    (loop (result i32) (call $tick) (i32.const 5)))
  (func (export "table") (param i32) (result i32)
    (block (block (block
      (br_table 0 1 2 (local.get 0)))
      (call $tick) (return (i32.const 10)))
      (return (i32.const 20)))
    (call $tick) (i32.const 30))
  (func (export "divide") (param i32) (result i32)
    (call $tick) (i32.div_u (i32.const 100) (local.get 0)) (call $tick)
    (i32.const 1) (i32.add))
  (func $down (export "recurse") (param i32)
    (call $tick)
    (if (local.get 0) (then (call $down (i32.sub (local.get 0) (i32.const 1)))))))
"""

FUEL_CALLS = [
    ("loop", (1000,)),
    ("straight", (1,)),
    ("branches", (3,)),
    ("branches", (4,)),
    ("nested", (7, 5)),
    ("once", ()),
    ("table", (0,)),
    ("table", (1,)),
    ("table", (2,)),
    ("table", (99,)),
    ("divide", (5,)),
    ("recurse", (50,)),
]


def run_with_fuel(tier: str, name: str, args: tuple, fuel: int) -> tuple[object, int, int]:
    """Call `name` with `fuel`; return (result or trap code, remaining fuel, $n)."""
    engine = Engine(Config(tier=tier, consume_fuel=True))
    store = Store(engine)
    exports = Instance(store, Module(engine, FUEL_WAT), []).exports(store)
    store.set_fuel(fuel)
    try:
        outcome: object = exports[name](store, *args)
    except Trap as trap:
        outcome = trap.code
    return outcome, store.get_fuel(), exports["n"].value(store)


def test_fuel_matches_python_tier_on_known_counts() -> None:
    # 7 instructions per iteration plus `loop` and `end`, and 5 more per
    # call of $tick, which has no loop.
    assert run_with_fuel("llvm", "loop", (1000,), 10**6)[1] == 10**6 - (7002 + 5 * 1000)
    assert run_with_fuel("python", "loop", (1000,), 10**6)[1] == 10**6 - (7002 + 5 * 1000)
    assert run_with_fuel("llvm", "straight", (1,), 10**6)[1] == 10**6 - 14
    assert run_with_fuel("python", "straight", (1,), 10**6)[1] == 10**6 - 14


@pytest.mark.parametrize("name,args", FUEL_CALLS)
def test_fuel_same_on_both_tiers(name: str, args: tuple) -> None:
    start = 10**6
    python = run_with_fuel("python", name, args, start)
    llvm = run_with_fuel("llvm", name, args, start)
    assert llvm == python
    used = start - python[1]
    assert used > 0
    # Exactly enough fuel succeeds and leaves 0.
    assert run_with_fuel("llvm", name, args, used) == (python[0], 0, python[2])
    assert run_with_fuel("python", name, args, used) == (python[0], 0, python[2])
    # With less, both tiers run out at the same point.
    for fuel in sorted({0, 1, used // 3, used // 2, used - 1}):
        python_short = run_with_fuel("python", name, args, fuel)
        llvm_short = run_with_fuel("llvm", name, args, fuel)
        assert python_short[0] == TrapCode.OUT_OF_FUEL
        assert llvm_short == python_short, f"fuel {fuel}"


def test_fuel_left_after_trap_mid_segment() -> None:
    python = run_with_fuel("python", "divide", (0,), 1000)
    llvm = run_with_fuel("llvm", "divide", (0,), 1000)
    assert python[0] == TrapCode.INTEGER_DIVIDE_BY_ZERO
    assert llvm == python
    # The whole body was charged at entry, before the division trapped.
    assert python[1] == 1000 - (8 + 5)


@pytest.mark.parametrize("tier", ["python", "llvm"])
@pytest.mark.parametrize("fuel", [2**62, 2**63 - 1, 2**63, 2**64 - 2, 2**64 - 1])
def test_fuel_up_to_u64_max(tier: str, fuel: int) -> None:
    outcome, remaining, ticks = run_with_fuel(tier, "loop", (1000,), fuel)
    assert outcome is None
    assert ticks == 1000
    assert remaining == fuel - (7002 + 5 * 1000)


@pytest.mark.parametrize("tier", ["python", "llvm"])
@pytest.mark.parametrize("fuel", [2**64, 2**70])
def test_fuel_above_u64_max_is_rejected(tier: str, fuel: int) -> None:
    store = Store(Engine(Config(tier=tier, consume_fuel=True)))
    with pytest.raises(UsageError, match=str(fuel)):
        store.set_fuel(fuel)


def test_fuel_above_i64_survives_host_calls() -> None:
    # A host call syncs the fuel to Python and back; the part above
    # 2**63-1 must come back unchanged.
    wat = """(module (import "h" "f" (func $f))
      (func (export "run") (param i32)
        (loop (call $f) local.get 0 i32.const 1 i32.sub local.tee 0 br_if 0)))"""
    seen: list[int] = []
    engine = Engine(Config(tier="llvm", consume_fuel=True))
    store = Store(engine)
    host = Func(store, FuncType([], []), lambda: seen.append(store.get_fuel()))
    exports = Instance(store, Module(engine, wat), [host]).exports(store)
    store.set_fuel(2**64 - 1)
    exports["run"](store, 3)
    assert seen == [2**64 - 1 - 2 - 7, 2**64 - 1 - 2 - 14, 2**64 - 1 - 2 - 21]
    assert store.get_fuel() == 2**64 - 1 - 2 - 21


def many_functions_wasm(count: int, distinct: bool) -> bytes:
    """Return a module of `count` exported functions [] -> [i32], all `i32.const 7` or each its own constant."""
    from wasmtee.binary import encode_module
    from wasmtee.text import parse_wat

    funcs = "".join(
        f'(func (export "f{index}") (result i32) i32.const {index if distinct else 7})'
        for index in range(count)
    )
    return encode_module(parse_wat(f"(module {funcs})"))


def test_identical_functions_share_code() -> None:
    from wasmtee.binary import decode_module
    from wasmtee.llvm import jit, lower
    from wasmtee.valid import validate_module

    model = decode_module(many_functions_wasm(50, distinct=False))
    func_types = validate_module(model).func_types
    shared = lower.find_shared_code(model, func_types, 0)
    assert shared == {index: 0 for index in range(1, 50)}
    assert jit.plan_chunks(model, 0, shared) == [[0]]
    ir = lower.ModuleLowering(model, func_types, lower.Options()).module_ir()
    assert "define i32 @f0(" in ir
    assert "@f1(" not in ir
    distinct = decode_module(many_functions_wasm(50, distinct=True))
    assert lower.find_shared_code(distinct, validate_module(distinct).func_types, 0) == {}


@pytest.mark.parametrize("distinct", [False, True])
def test_many_small_functions_run(distinct: bool) -> None:
    engine = Engine(Config(tier="llvm"))
    store = Store(engine)
    exports = Instance(store, Module(engine, many_functions_wasm(300, distinct)), []).exports(store)
    for index in (0, 1, 150, 299):
        assert exports[f"f{index}"](store) == (index if distinct else 7)


def test_function_count_raises_compile_cost(monkeypatch) -> None:
    from wasmtee.binary import decode_module
    from wasmtee.llvm import jit

    model = decode_module(many_functions_wasm(300, distinct=True))
    assert jit.compile_cost(model) == 600 + 300 * jit.FUNCTION_COST_INSTRUCTIONS
    monkeypatch.setattr(jit, "LARGE_MODULE_INSTRUCTIONS", 2000)
    assert jit.choose_opt_level(model, None) == jit.FAST_OPT_LEVEL
    monkeypatch.setattr(jit, "CHUNK_INSTRUCTIONS", 100)
    chunks = jit.plan_chunks(model, 0)
    assert all(len(chunk) <= 100 // (2 + jit.FUNCTION_COST_INSTRUCTIONS) for chunk in chunks)
    assert sum(len(chunk) for chunk in chunks) == 300


def test_cache_hit_skips_validation(monkeypatch) -> None:
    import wasmtee.valid

    wasm = fib_wasm()
    assert call(wasm, "fib", 10) == 55
    validated: list[object] = []
    original = wasmtee.valid.validate_module
    monkeypatch.setattr(wasmtee.valid, "validate_module", lambda m: validated.append(m) or original(m))
    assert call(wasm, "fib", 12) == 144
    assert validated == []
    # Without a cache entry the module is validated.
    monkeypatch.setenv("WASMTEE_JIT_CACHE", "0")
    assert call(wasm, "fib", 12) == 144
    assert len(validated) == 1


def test_cache_entry_of_another_module_is_ignored(monkeypatch) -> None:
    import wasmtee.valid
    from wasmtee.llvm import aot, lower

    fib = fib_wasm()
    other = many_functions_wasm(3, distinct=True)
    assert call(fib, "fib", 10) == 55
    assert call(other, "f2") == 2
    options = lower.Options()
    # Put fib's valid, MAC-checked entry where the other module's entry belongs.
    fib_path = aot.cache_path(fib, options, 2)
    other_path = aot.cache_path(other, options, 2)
    assert fib_path.exists()
    assert other_path.exists()
    other_path.write_bytes(fib_path.read_bytes())
    validated: list[object] = []
    original = wasmtee.valid.validate_module
    monkeypatch.setattr(wasmtee.valid, "validate_module", lambda m: validated.append(m) or original(m))
    assert aot.load_cached(other, options, 2) is None
    assert call(other, "f2") == 2
    assert len(validated) == 1


def test_tampered_cache_entry_is_validated_and_recompiled(monkeypatch) -> None:
    import wasmtee.valid
    from wasmtee.llvm import aot, lower

    wasm = fib_wasm()
    assert call(wasm, "fib", 10) == 55
    path = aot.cache_path(wasm, lower.Options(), 2)
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    validated: list[object] = []
    original = wasmtee.valid.validate_module
    monkeypatch.setattr(wasmtee.valid, "validate_module", lambda m: validated.append(m) or original(m))
    assert call(wasm, "fib", 12) == 144
    assert len(validated) == 1


def test_sigint_stops_long_compile(tmp_path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from wasmtee.binary import encode_module
    from wasmtee.model import Function, Instr
    from wasmtee.model import Module as ModelModule
    from wasmtee import opcodes as op

    # 100,000 distinct functions take tens of seconds to compile, so the
    # signal arrives during compilation.
    model = ModelModule()
    model.types.append(FuncType([], []))
    for index in range(100_000):
        body = [Instr(op.I32_CONST, index), Instr(op.DROP), Instr(op.END)]
        model.funcs.append(Function(0, [], body))
    path = tmp_path / "many.wasm"
    path.write_bytes(encode_module(model))
    environment = dict(os.environ, WASMTEE_JIT_CACHE="0")
    proc = subprocess.Popen([sys.executable, "-m", "wasmtee", "run", "--tier", "llvm", str(path)],
                            stderr=subprocess.PIPE, text=True, env=environment)
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError("SIGINT did not stop the compile within 30 s") from None
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr


def test_small_leaf_skips_stack_check() -> None:
    from wasmtee.binary import decode_module
    from wasmtee.llvm import lower
    from wasmtee.valid import validate_module

    wat = """(module
      (func $leaf (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
      (func $caller (param i32) (result i32) (call $leaf (local.get 0)))
      (func $big_leaf (param i32) (result i32)
        (local.get 0)
        (i32.const 1) i32.add (i32.const 1) i32.add (i32.const 1) i32.add
        (i32.const 1) i32.add (i32.const 1) i32.add (i32.const 1) i32.add
        (i32.const 1) i32.add (i32.const 1) i32.add (i32.const 1) i32.add))"""
    from wasmtee.binary import encode_module
    from wasmtee.text import parse_wat

    model = decode_module(encode_module(parse_wat(wat)))
    lowering = lower.ModuleLowering(model, validate_module(model).func_types, lower.Options())
    ir = lowering.module_ir()
    functions = {name: ir[ir.index(f"@{name}("):] for name in ("f0", "f1", "f2")}
    for name, text in functions.items():
        functions[name] = text[:text.index("\n}\n")]
    assert "stacksave" not in functions["f0"]
    assert "stacksave" in functions["f1"]
    assert "stacksave" in functions["f2"]
    counted = lower.ModuleLowering(model, validate_module(model).func_types,
                                   lower.Options(count_depth=True)).module_ir()
    assert "stacksave" in counted[counted.index("@f0("):counted.index("@f1(")]


@pytest.mark.parametrize("tier", ["python", "llvm"])
def test_cli_fuel_limits(tmp_path, tier: str) -> None:
    import subprocess
    import sys

    from wasmtee.binary import encode_module
    from wasmtee.text import parse_wat

    wat = """(module (func (export "_start") (local i32)
      (local.set 0 (i32.const 1000))
      (loop local.get 0 i32.const 1 i32.sub local.tee 0 br_if 0)))"""
    path = tmp_path / "loop.wasm"
    path.write_bytes(encode_module(parse_wat(wat)))

    def run(fuel: int) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "wasmtee", "run", "--tier", tier, "--fuel", str(fuel), str(path)]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    largest = run(2**64 - 1)
    assert largest.returncode == 0, largest.stderr
    too_large = run(2**64)
    assert too_large.returncode == 2
    assert str(2**64) in too_large.stderr
    assert "Traceback" not in too_large.stderr
    short = run(100)
    assert "all fuel consumed" in short.stderr


@pytest.mark.parametrize(("body", "message"), [
    ("(drop (i32.div_u (i32.const 1) (i32.const 0)))", "integer divide by zero"),
    ("(drop (i32.load (i32.const 70000)))", "out of bounds memory access"),
    ("unreachable", "unreachable"),
])
def test_trap_names_trapping_function(body: str, message: str) -> None:
    # Padding keeps $inner above the size at which identical functions share code.
    padding = " (nop)" * 20
    wat = f"""(module (memory 1)
      (func $inner {body}{padding})
      (func $middle (call $inner))
      (func (export "outer") (call $middle)))"""
    store, exports = instantiate(wat)
    with pytest.raises(Trap, match=message) as info:
        exports["outer"](store)
    assert [frame.func_name for frame in info.value.frames] == ["inner"]
    assert not info.value.callers_recorded
