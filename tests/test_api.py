"""The public embedding API end to end: WAT or binary in, typed values out."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

import wasmtee
from wasmtee import (
    Caller,
    Config,
    DecodeError,
    Engine,
    Func,
    FuncType,
    Global,
    GlobalType,
    Instance,
    Limits,
    Linker,
    LinkError,
    Memory,
    MemoryType,
    Module,
    ResourceLimitExceeded,
    Store,
    Table,
    TableType,
    Trap,
    TrapCode,
    UsageError,
    ValidationError,
    ValType,
    WasiExit,
    WatSyntaxError,
)
from wasmtee.runtime.tiers import available_tiers, get_tier

I32, I64, F32, F64 = ValType.I32, ValType.I64, ValType.F32, ValType.F64

# (module (func (export "ans") (result i32) i32.const 42))
ANSWER_WASM = bytes.fromhex(
    "0061736d01000000" "0105016000017f" "03020100" "07070103616e730000" "0a06010400412a0b"
)

ARITH = """
(module
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
  (func (export "add64") (param i64 i64) (result i64) (i64.add (local.get 0) (local.get 1)))
  (func (export "half32") (param f32) (result f32) (f32.mul (local.get 0) (f32.const 0.5)))
  (func (export "sqrt64") (param f64) (result f64) (f64.sqrt (local.get 0)))
  (func (export "swap") (param i32 i64) (result i64 i32) (local.get 1) (local.get 0))
  (func (export "nothing"))
  (func (export "boom") unreachable)
  (func (export "div") (param i32 i32) (result i32) (i32.div_s (local.get 0) (local.get 1))))
"""


TIERS = [tier for tier in ("python", "llvm") if tier in available_tiers()]


@pytest.fixture(params=TIERS)
def engine(request):
    return Engine(Config(tier=request.param))


def exports_of(engine, wat, imports=()):
    store = Store(engine)
    instance = Instance(store, Module(engine, wat), list(imports))
    return store, instance.exports(store)


def test_all_names_are_exported():
    for name in wasmtee.__all__:
        assert getattr(wasmtee, name) is not None
    with pytest.raises(AttributeError):
        wasmtee.NoSuchThing  # noqa: B018


def test_module_from_binary_text_and_file(engine, tmp_path):
    store = Store(engine)
    for source in (ANSWER_WASM, '(module (func (export "ans") (result i32) i32.const 42))',
                   b'(module (func (export "ans") (result i32) i32.const 42))'):
        module = Module(engine, source)
        assert Instance(store, module, []).exports(store)["ans"](store) == 42
    path = tmp_path / "answer.wasm"
    path.write_bytes(ANSWER_WASM)
    module = Module.from_file(engine, path)
    assert [(e.name, e.type) for e in module.exports] == [("ans", FuncType((), (I32,)))]
    with pytest.raises(UsageError, match="cannot read module"):
        Module.from_file(engine, tmp_path / "missing.wasm")


def test_module_errors(engine):
    with pytest.raises(DecodeError):
        Module(engine, b"\0asm\x02\0\0\0")
    with pytest.raises(WatSyntaxError):
        Module(engine, "(module (func")
    with pytest.raises(ValidationError, match="type mismatch"):
        Module(engine, "(module (func (result i32) (i64.const 1)))")
    with pytest.raises(ValidationError):
        Module.validate(engine, "(module (func (result i32)))")
    Module.validate(engine, ANSWER_WASM)
    with pytest.raises(UsageError):
        Module(engine, 42)  # type: ignore[arg-type]


def test_import_and_export_types(engine):
    module = Module(engine, """
      (module
        (import "env" "f" (func (param i32) (result f64)))
        (import "env" "m" (memory 1 2))
        (import "env" "t" (table 3 funcref))
        (import "env" "g" (global (mut i64)))
        (global (export "c") f32 (f32.const 1))
        (export "f2" (func 0))
        (export "m2" (memory 0)))""")
    assert [(i.module, i.name, i.type) for i in module.imports] == [
        ("env", "f", FuncType((I32,), (F64,))),
        ("env", "m", MemoryType(Limits(1, 2))),
        ("env", "t", TableType(ValType.FUNCREF, Limits(3))),
        ("env", "g", GlobalType(I64, True)),
    ]
    assert [(e.name, e.type) for e in module.exports] == [
        ("c", GlobalType(F32, False)),
        ("f2", FuncType((I32,), (F64,))),
        ("m2", MemoryType(Limits(1, 2))),
    ]


def test_value_conversions(engine):
    store, ex = exports_of(engine, ARITH)
    assert ex["add"](store, -1, -2) == -3
    assert ex["add"](store, 2**31 - 1, 1) == -(2**31)
    assert ex["add"](store, 0xFFFFFFFF, 0) == -1  # unsigned input accepted, signed output
    assert ex.add64(store, 2**63 - 1, 1) == -(2**63)
    assert ex["half32"](store, 3.0) == 1.5
    assert ex["half32"](store, 0.1) == pytest.approx(0.05, rel=1e-6)
    assert ex["half32"](store, 0.1) != 0.05  # f32 rounding is visible
    assert math.isnan(ex["sqrt64"](store, -1.0))
    assert ex["swap"](store, 7, -8) == [-8, 7]
    assert ex["nothing"](store) is None
    assert isinstance(ex["add"], Func)
    assert ex["add"].type(store) == FuncType((I32, I32), (I32,))
    assert len(ex) == 8
    assert "boom" in ex


def test_call_argument_errors(engine):
    store, ex = exports_of(engine, ARITH)
    with pytest.raises(UsageError, match="wrong number of arguments"):
        ex["add"](store, 1)
    with pytest.raises(UsageError, match="expected an int"):
        ex["add"](store, 1, "2")
    with pytest.raises(UsageError, match="does not fit"):
        ex["add"](store, 1, 2**32)
    with pytest.raises(UsageError):
        ex["add"](object(), 1, 2)


def test_traps(engine):
    store, ex = exports_of(engine, ARITH)
    with pytest.raises(Trap) as info:
        ex["boom"](store)
    assert info.value.code is TrapCode.UNREACHABLE
    with pytest.raises(Trap) as info:
        ex["div"](store, 1, 0)
    assert info.value.code is TrapCode.INTEGER_DIVIDE_BY_ZERO
    with pytest.raises(Trap) as info:
        ex["div"](store, -(2**31), -1)
    assert info.value.code is TrapCode.INTEGER_OVERFLOW
    # The store stays usable after a trap.
    assert ex["div"](store, 7, 2) == 3


CALLS_HOST = """
(module
  (import "host" "f" (func $f (param i32 i64 f32 f64) (result i32)))
  (import "host" "pair" (func $pair (result i32 i32)))
  (func (export "call_f") (param i32) (result i32)
    (call $f (local.get 0) (i64.const -5) (f32.const 1.5) (f64.const -2.25)))
  (func (export "call_pair") (result i32) (call $pair) (i32.sub)))
"""


def test_host_functions(engine):
    store = Store(engine)
    seen = []

    def f(a, b, c, d):
        seen.append((a, b, c, d))
        return a * 2

    host_f = Func(store, FuncType((I32, I64, F32, F64), (I32,)), f)
    pair = Func(store, FuncType((), (I32, I32)), lambda: (10, 3))
    ex = Instance(store, Module(engine, CALLS_HOST), [host_f, pair]).exports(store)
    assert ex["call_f"](store, -4) == -8
    assert seen == [(-4, -5, 1.5, -2.25)]
    assert ex["call_pair"](store) == 7
    # Host functions are callable from Python too.
    assert host_f(store, 1, 2, 3.0, 4.0) == 2


def host_exports(engine, f, pair=lambda: (1, 2)):
    store = Store(engine)
    host_f = Func(store, FuncType((I32, I64, F32, F64), (I32,)), f)
    pair_f = Func(store, FuncType((), (I32, I32)), pair)
    return store, Instance(store, Module(engine, CALLS_HOST), [host_f, pair_f]).exports(store)


def test_host_errors(engine):
    def fails(*args):
        raise ValueError("bad input")

    store, ex = host_exports(engine, fails)
    with pytest.raises(Trap) as info:
        ex["call_f"](store, 1)
    assert info.value.code is TrapCode.HOST_ERROR
    assert isinstance(info.value.__cause__, ValueError)

    def exits(*args):
        raise WasiExit(7)

    store, ex = host_exports(engine, exits)
    with pytest.raises(WasiExit) as exit_info:
        ex["call_f"](store, 1)
    assert exit_info.value.code == 7

    store, ex = host_exports(engine, lambda *a: "not an int")
    with pytest.raises(Trap) as info:
        ex["call_f"](store, 1)
    assert info.value.code is TrapCode.HOST_ERROR
    store, ex = host_exports(engine, lambda *a: 1, pair=lambda: 5)
    with pytest.raises(Trap, match="must return 2 values"):
        ex["call_pair"](store)


def test_caller_reads_memory(engine):
    store = Store(engine, data={"log": []})
    wat = """
      (module
        (import "env" "print" (func $print (param i32 i32)))
        (memory (export "memory") 1)
        (data (i32.const 8) "hi there")
        (func (export "run") (call $print (i32.const 8) (i32.const 8))))"""

    def print_(caller: Caller, ptr: int, length: int) -> None:
        memory = caller["memory"]
        assert isinstance(memory, Memory)
        caller.data["log"].append(bytes(memory.read(caller, ptr, ptr + length)))

    linker = Linker(engine)
    linker.define_func("env", "print", FuncType((I32, I32), ()), print_, access_caller=True)
    ex = linker.instantiate(store, Module(engine, wat)).exports(store)
    ex["run"](store)
    assert store.data["log"] == [b"hi there"]


def test_memory_api(engine):
    store, ex = exports_of(engine, """
      (module (memory (export "mem") 1 3)
        (func (export "load") (param i32) (result i32) (i32.load8_u (local.get 0)))
        (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))""")
    mem = ex["mem"]
    assert mem.size(store) == 1
    assert mem.data_len(store) == 65536
    assert mem.write(store, b"\x01\x02\x03", 10) == 3
    assert ex["load"](store, 11) == 2
    assert mem.read(store, 10, 13) == bytearray(b"\x01\x02\x03")
    assert mem.read(store, -2) == bytearray(2)
    assert mem.read(store, 70000, 80000) == bytearray()
    with pytest.raises(Trap, match="out of bounds memory access"):
        mem.write(store, b"xy", 65535)
    with pytest.raises(Trap):
        mem.write(store, b"x", 65536)
    assert mem.grow(store, 1) == 1
    assert ex["grow"](store, 1) == 2
    assert ex["grow"](store, 1) == -1
    with pytest.raises(ResourceLimitExceeded, match="^cannot grow memory from 3 to 4 pages"):
        mem.grow(store, 1)
    assert mem.size(store) == 3
    own = Memory(store, MemoryType(Limits(1, 1)))
    with own:
        own.write(store, b"abc", 0)
        assert own.read(store, 0, 3) == b"abc"
    with pytest.raises(UsageError, match="memory is closed"):
        own.data_len(store)


def test_globals_and_tables(engine):
    store, ex = exports_of(engine, """
      (module
        (global (export "counter") (mut i64) (i64.const -3))
        (global (export "pi") f64 (f64.const 3.25))
        (table (export "tab") 2 4 funcref)
        (func $seven (result i32) (i32.const 7))
        (elem (i32.const 1) $seven)
        (func (export "get_counter") (result i64) (global.get 0))
        (func (export "call_at") (param i32) (result i32) (call_indirect (result i32) (local.get 0))))""")
    counter = ex["counter"]
    assert counter.value(store) == -3
    counter.set_value(store, -10)
    assert ex["get_counter"](store) == -10
    with pytest.raises(UsageError, match="immutable"):
        ex["pi"].set_value(store, 1.0)
    assert ex["pi"].value(store) == 3.25
    table = ex["tab"]
    assert table.size(store) == 2
    seven = table.get(store, 1)
    assert isinstance(seven, Func)
    assert seven(store) == 7
    assert table.get(store, 0) is None
    assert table.get(store, 9) is None
    table.set(store, 0, seven)
    assert ex["call_at"](store, 0) == 7
    assert table.grow(store, 2, seven) == 2
    assert ex["call_at"](store, 3) == 7
    with pytest.raises(ResourceLimitExceeded, match="^cannot grow table from 4 to 5 elements"):
        table.grow(store, 1)
    with pytest.raises(Trap) as info:
        table.set(store, 4, None)
    assert info.value.code is TrapCode.TABLE_OUT_OF_BOUNDS
    with pytest.raises(UsageError):
        table.set(store, 0, 5)
    host = Func(store, FuncType((), (I32,)), lambda: 99)
    table.set(store, 1, host)
    assert ex["call_at"](store, 1) == 99
    with pytest.raises(Trap) as info:
        ex["call_at"](store, 5)
    assert info.value.code is TrapCode.UNDEFINED_ELEMENT

    g = Global(store, GlobalType(I32, True), -1)
    assert g.value(store) == -1
    t = Table(store, TableType(ValType.EXTERNREF, Limits(1)), "x")
    assert t.get(store, 0) == "x"


def test_linker(engine):
    store = Store(engine)
    linker = Linker(engine)
    provider = linker.instantiate(store, Module(engine, """
      (module (memory (export "memory") 1)
        (global (export "base") i32 (i32.const 100))
        (func (export "double") (param i32) (result i32) (i32.mul (local.get 0) (i32.const 2))))"""))
    linker.define_instance(store, "lib", provider)
    consumer = Module(engine, """
      (module
        (import "lib" "memory" (memory 1))
        (import "lib" "base" (global i32))
        (import "lib" "double" (func $double (param i32) (result i32)))
        (func (export "run") (result i32)
          (i32.store (global.get 0) (i32.const 21))
          (call $double (i32.load (global.get 0)))))""")
    ex = linker.instantiate(store, consumer).exports(store)
    assert ex["run"](store) == 42
    assert provider.exports(store)["memory"].read(store, 100, 101) == b"\x15"
    assert isinstance(linker.get(store, "lib", "double"), Func)

    with pytest.raises(LinkError, match="import defined twice"):
        linker.define(store, "lib", "base", Global(store, GlobalType(I32, False), 1))
    linker.allow_shadowing = True
    linker.define(store, "lib", "base", Global(store, GlobalType(I32, False), 200))
    assert linker.instantiate(store, consumer).exports(store)["run"](store) == 42
    assert provider.exports(store)["memory"].read(store, 200, 201) == b"\x15"

    with pytest.raises(LinkError, match=r"^unknown import \(env\.missing"):
        linker.instantiate(store, Module(engine, '(module (import "env" "missing" (func)))'))
    with pytest.raises(LinkError, match=r"^incompatible import type \(lib\.double"):
        linker.instantiate(store, Module(engine, '(module (import "lib" "double" (func)))'))
    with pytest.raises(UsageError):
        linker.define(store, "x", "y", 5)


def test_instance_import_errors(engine):
    store = Store(engine)
    module = Module(engine, '(module (import "a" "b" (func (param i32))))')
    with pytest.raises(LinkError, match="unknown import"):
        Instance(store, module, [])
    with pytest.raises(LinkError, match="incompatible import type"):
        Instance(store, module, [Func(store, FuncType((), ()), lambda: None)])
    with pytest.raises(UsageError):
        Instance(store, module, ["not an extern"])


def test_start_trap_and_failed_segment(engine):
    store = Store(engine)
    with pytest.raises(Trap) as info:
        Instance(store, Module(engine, "(module (func unreachable) (start 0))"), [])
    assert info.value.code is TrapCode.UNREACHABLE
    mem = Memory(store, MemoryType(Limits(1)))
    module = Module(engine, """
      (module (import "env" "m" (memory 1))
        (data (i32.const 0) "kept")
        (data (i32.const 65535) "too long"))""")
    with pytest.raises(Trap, match="^out of bounds memory access"):
        Instance(store, module, [mem])
    assert mem.read(store, 0, 4) == b"kept"


def test_config_and_engine():
    with pytest.raises(UsageError, match="unknown tier"):
        Engine(Config(tier="jit"))
    with pytest.raises(UsageError):
        Engine(Config(max_call_depth=0))
    auto = Engine(Config(tier="auto"))
    llvm_automatic = "llvm" in TIERS and getattr(get_tier("llvm"), "automatic", True)
    expected = None
    if llvm_automatic:
        expected = "llvm"
    elif "python" in TIERS:
        expected = "python"
    if expected is None:
        # Only an llvm tier marked incomplete is present, and 'auto' never picks it.
        with pytest.raises(UsageError, match="no execution tier"):
            auto.tier  # noqa: B018
        return
    assert auto.tier.name == expected
    store = Store(auto)
    module = Module(auto, '(module (func (export "f") (result i32) (i32.const 5)))')
    assert Instance(store, module, []).exports(store)["f"](store) == 5
    other = Engine(Config(tier="python", consume_fuel=True))
    with pytest.raises(UsageError, match="different consume_fuel or epoch_interruption"):
        Instance(Store(other), module, [])


def test_store_close_and_context_manager(engine):
    module = Module(engine, '(module (memory (export "m") 1))')
    with Store(engine) as store:
        mem = Instance(store, module, []).exports(store)["m"]
        mem.write(store, b"x", 0)
    with pytest.raises(UsageError, match="store is closed"):
        mem.data_len(store)
    with Store(engine) as store:
        with Instance(store, module, []) as instance:
            mem = instance.exports(store)["m"]
        with pytest.raises(UsageError, match="memory is closed"):
            mem.size(store)


def test_agrees_with_wasmtime(engine):
    wasmtime = pytest.importorskip("wasmtime")
    ours_store, ours = exports_of(engine, ARITH)
    w_engine = wasmtime.Engine()
    w_store = wasmtime.Store(w_engine)
    w_inst = wasmtime.Instance(w_store, wasmtime.Module(w_engine, ARITH), [])
    theirs = w_inst.exports(w_store)
    cases = [("add", (-1, 5)), ("add", (2**31 - 1, 2**31 - 1)), ("add64", (-(2**63), -1)),
             ("half32", (1e-40,)), ("half32", (3.4e38,)), ("sqrt64", (2.0,)), ("swap", (1, -1)),
             ("div", (-7, 2))]
    for name, args in cases:
        assert ours[name](ours_store, *args) == theirs[name](w_store, *args), (name, args)


def test_host_func_called_directly_sees_store(engine):
    store = Store(engine, data=41)
    func = Func(store, FuncType((I32,), (I32,)), lambda caller, x: caller.data + x, access_caller=True)
    assert func(store, 1) == 42


def test_define_wasi_runs_hello(engine):
    import io

    from wasmtee import WasiConfig

    stdout = io.BytesIO()
    store = Store(engine)
    linker = Linker(engine)
    context = linker.define_wasi(store, WasiConfig(argv=["hello"], stdout=stdout))
    module = Module(engine, """
      (module
        (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
        (memory (export "memory") 1)
        (data (i32.const 8) "hello\\n")
        (func (export "_start")
          (i32.store (i32.const 0) (i32.const 8))
          (i32.store (i32.const 4) (i32.const 6))
          (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 100)))
          (call $exit (i32.const 3))))""")
    instance = linker.instantiate(store, module)
    with pytest.raises(WasiExit) as info:
        instance.exports(store)["_start"](store)
    context.close()
    assert info.value.code == 3
    assert stdout.getvalue() == b"hello\n"


def test_closed_module_rejects_instantiation(engine):
    store = Store(engine)
    with Module(engine, '(module (func (export "f") (result i32) (i32.const 3)))') as module:
        instance = Instance(store, module, [])
    assert instance.exports(store)["f"](store) == 3
    with pytest.raises(UsageError, match="module is closed"):
        Instance(store, module, [])


def test_embed_example_runs(engine):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, str(root / "examples" / "embed.py"), engine.config.tier],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "guest says: Hello from wasm!" in lines
    assert "checksum: 256" in lines
    assert "scaled_pair(-7): [-70, -7]" in lines
    assert "calls: 1" in lines
    assert "memory pages: 1 grow returned 1" in lines
    assert (
        "grow failed: cannot grow memory from 2 to 12 pages: the store's memory limit is 4 pages"
        in lines
    )
    assert any(line.startswith("after close: the store is closed") for line in lines)


@pytest.mark.skipif(len(TIERS) < 2, reason="needs both the python and llvm tiers")
def test_modules_on_different_tiers_link():
    python_engine = Engine(Config(tier="python"))
    llvm_engine = Engine(Config(tier="llvm"))
    store = Store(python_engine)
    provider = Instance(store, Module(llvm_engine, """
      (module (memory (export "memory") 1)
        (table (export "table") 1 funcref)
        (func $nine (result i32) (i32.const 9))
        (elem (i32.const 0) $nine)
        (func (export "square") (param i32) (result i32) (i32.mul (local.get 0) (local.get 0))))"""), [])
    exports = provider.exports(store)
    consumer = Instance(store, Module(python_engine, """
      (module
        (import "lib" "square" (func $square (param i32) (result i32)))
        (import "lib" "memory" (memory 1))
        (import "lib" "table" (table 1 funcref))
        (func (export "run") (param i32) (result i32)
          (i32.store (i32.const 0) (call $square (local.get 0)))
          (i32.add (i32.load (i32.const 0)) (call_indirect (result i32) (i32.const 0)))))"""),
        [exports["square"], exports["memory"], exports["table"]])
    assert consumer.exports(store)["run"](store, 7) == 58
    assert exports["memory"].read(store, 0, 4) == bytearray(b"\x31\0\0\0")


def test_api_misuse_raises_usage_error(engine):
    store, ex = exports_of(engine, '(module (memory (export "m") 1) (table (export "t") 1 funcref))')
    memory = ex["m"]
    table = ex["t"]
    module = Module(engine, "(module)")
    cases = [
        lambda: memory.read(store, "0"),
        lambda: memory.read(store, 0, 1.5),
        lambda: memory.write(store, "text", 0),
        lambda: memory.write(store, b"x", "0"),
        lambda: memory.grow(store, -1),
        lambda: table.get(store, None),
        lambda: table.set(store, "0", None),
        lambda: table.grow(store, -1),
        lambda: Instance(store, module, None),
        lambda: Instance(store, module, "abc"),
        lambda: Instance(store, "module", []),
        lambda: Store("engine"),
        lambda: Module("engine", "(module)"),
        lambda: Linker(engine).define(store, 1, "x", memory),
        lambda: Func(store, "type", lambda: None),
        lambda: Func(store, FuncType((), ()), "not callable"),
        lambda: Global(store, GlobalType(I32, False), 1.5),
        lambda: store.set_limits(instances="3"),
    ]
    for case in cases:
        with pytest.raises(UsageError):
            case()


# -- store teardown --------------------------------------------------------------------

EXTERNS = """
(module
  (memory (export "mem") 1 4)
  (table (export "tab") 2 4 funcref)
  (global (export "counter") (mut i32) (i32.const 5))
  (func $seven (export "seven") (result i32) (i32.const 7))
  (elem (i32.const 0) $seven)
  (func (export "load") (param i32) (result i32) (i32.load8_u (local.get 0)))
  (func (export "size") (result i32) (memory.size))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "table_grow") (param i32) (result i32) (table.grow (ref.null func) (local.get 0)))
  (func (export "call_at") (param i32) (result i32) (call_indirect (result i32) (local.get 0))))
"""


def test_store_close_rejects_every_extern(engine):
    store = Store(engine)
    module = Module(engine, EXTERNS)
    instance = Instance(store, module, [])
    ex = instance.exports(store)
    seven, mem, tab, counter = ex["seven"], ex["mem"], ex["tab"], ex["counter"]
    runtime_seven = instance.runtime_instance.exports["seven"]
    host = Func(store, FuncType((), (I32,)), lambda: 1)
    own_memory = Memory(store, MemoryType(Limits(1)))
    own_table = Table(store, TableType(ValType.FUNCREF, Limits(1)), None)
    own_global = Global(store, GlobalType(I32, True), 1)
    assert seven(store) == 7
    store.close()
    store.close()
    uses = {
        "call": lambda: seven(store),
        "host call": lambda: host(store),
        "func type": lambda: seven.type(store),
        "runtime call": lambda: runtime_seven.call(),
        "memory read": lambda: mem.read(store, 0, 1),
        "memory write": lambda: mem.write(store, b"x", 0),
        "memory grow": lambda: mem.grow(store, 1),
        "memory size": lambda: mem.size(store),
        "memory data_len": lambda: mem.data_len(),
        "memory address": lambda: mem.address,
        "own memory": lambda: own_memory.read(store, 0, 1),
        "table get": lambda: tab.get(store, 0),
        "table set": lambda: tab.set(store, 0, None),
        "table grow": lambda: tab.grow(store, 1),
        "table size": lambda: tab.size(),
        "own table": lambda: own_table.size(store),
        "global value": lambda: counter.value(store),
        "global set": lambda: counter.set_value(store, 1),
        "own global": lambda: own_global.value(),
        "exports": lambda: instance.exports(store),
        "instantiate": lambda: Instance(store, module, []),
        "linker": lambda: Linker(engine).instantiate(store, module),
        "new func": lambda: Func(store, FuncType((), ()), lambda: None),
        "new memory": lambda: Memory(store, MemoryType(Limits(1))),
        "new table": lambda: Table(store, TableType(ValType.FUNCREF, Limits(1)), None),
        "new global": lambda: Global(store, GlobalType(I32, False), 1),
    }
    for name, use in uses.items():
        with pytest.raises(UsageError, match="store is closed"):
            use()
            pytest.fail(f"{name} worked after Store.close")
    # repr stays usable for debugging.
    assert repr(mem) == "<Memory closed>"
    assert "closed" in repr(store)


def test_store_closed_inside_host_call(engine):
    wat = """
      (module
        (import "host" "close" (func $close))
        (memory (export "mem") 1)
        (func (export "run") (result i32)
          (i32.store (i32.const 0) (i32.const 9))
          (call $close)
          (i32.load (i32.const 0))))"""
    module = Module(engine, wat)

    def close_store(caller):
        caller.store.close()

    # A host function of the store, and a store-independent one from the linker.
    store = Store(engine)
    closer = Func(store, FuncType((), ()), lambda: store.close())
    run = Instance(store, module, [closer]).exports(store)["run"]
    with pytest.raises(UsageError, match="closed its store"):
        run(store)
    with pytest.raises(UsageError, match="store is closed"):
        run(store)

    store = Store(engine)
    linker = Linker(engine)
    linker.define_func("host", "close", FuncType((), ()), close_store, access_caller=True)
    run = linker.instantiate(store, module).exports(store)["run"]
    with pytest.raises(UsageError, match="closed its store"):
        run(store)


def test_closed_memory_traps_inside_wasm(engine):
    store = Store(engine)
    instance = Instance(store, Module(engine, EXTERNS), [])
    ex = instance.exports(store)
    ex["mem"].write(store, b"\x2a", 100)
    assert ex["load"](store, 100) == 42
    instance.close()
    # The store stays open: code that touches no memory still runs.
    assert ex["seven"](store) == 7
    assert ex["size"](store) == 0
    assert ex["grow"](store, 1) == -1
    with pytest.raises(Trap) as info:
        ex["load"](store, 100)
    assert info.value.code is TrapCode.MEMORY_OUT_OF_BOUNDS
    with pytest.raises(Trap) as info:
        ex["load"](store, 0)
    assert info.value.code is TrapCode.MEMORY_OUT_OF_BOUNDS
    with pytest.raises(UsageError, match="memory is closed"):
        ex["mem"].read(store, 0, 1)


SHARED_MEMORY_USER = """
  (module
    (import "env" "mem" (memory 1))
    (func (export "load") (param i32) (result i32) (i32.load8_u (local.get 0)))
    (func (export "store") (param i32 i32) (i32.store8 (local.get 0) (local.get 1)))
    (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
    (func (export "size") (result i32) (memory.size)))"""


@pytest.mark.parametrize("other_tier", TIERS)
def test_grow_and_close_by_other_party_refresh_views(engine, other_tier):
    store = Store(engine)
    memory = Memory(store, MemoryType(Limits(1, 8)))
    first = Instance(store, Module(engine, SHARED_MEMORY_USER), [memory]).exports(store)
    other_engine = Engine(Config(tier=other_tier))
    second = Instance(store, Module(other_engine, SHARED_MEMORY_USER), [memory]).exports(store)
    # Run both once, so each tier has cached its view or base pointer.
    assert first["load"](store, 0) == 0
    assert second["load"](store, 0) == 0
    assert second["grow"](store, 1) == 1
    first["store"](store, 65536 + 5, 77)
    assert second["load"](store, 65536 + 5) == 77
    assert memory.grow(store, 2) == 2
    assert first["size"](store) == 4
    first["store"](store, 3 * 65536, 9)
    assert second["load"](store, 3 * 65536) == 9
    assert memory.read(store, 3 * 65536, 3 * 65536 + 1) == b"\x09"
    memory.close()
    for exports in (first, second):
        assert exports["size"](store) == 0
        with pytest.raises(Trap) as info:
            exports["load"](store, 0)
        assert info.value.code is TrapCode.MEMORY_OUT_OF_BOUNDS


# -- one store per extern --------------------------------------------------------------


def test_externs_of_another_store_rejected(engine):
    module = Module(engine, EXTERNS)
    store_a, store_b = Store(engine), Store(engine)
    instance_a = Instance(store_a, module, [])
    ex = instance_a.exports(store_a)
    seven, mem, tab, counter = ex["seven"], ex["mem"], ex["tab"], ex["counter"]
    host_a = Func(store_a, FuncType((), (I32,)), lambda: 3)
    host_b = Func(store_b, FuncType((), (I32,)), lambda: 4)
    wrong_store = "belongs to a different store"
    uses = {
        "call": lambda: seven(store_b),
        "host call": lambda: host_a(store_b),
        "func type": lambda: seven.type(store_b),
        "memory read": lambda: mem.read(store_b, 0, 1),
        "memory write": lambda: mem.write(store_b, b"x", 0),
        "memory grow": lambda: mem.grow(store_b, 1),
        "memory size": lambda: mem.size(store_b),
        "table get": lambda: tab.get(store_b, 0),
        "table set": lambda: tab.set(store_b, 0, None),
        "table grow": lambda: tab.grow(store_b, 1),
        "table of b's func": lambda: tab.set(store_a, 0, host_b),
        "table grow with b's func": lambda: tab.grow(store_a, 1, host_b),
        "new table with b's func": lambda: Table(store_a, TableType(ValType.FUNCREF, Limits(1)), host_b),
        "new global with b's func": lambda: Global(store_a, GlobalType(ValType.FUNCREF, False), host_b),
        "global value": lambda: counter.value(store_b),
        "global set": lambda: counter.set_value(store_b, 1),
        "exports": lambda: instance_a.exports(store_b),
        "linker define": lambda: Linker(engine).define(store_b, "a", "f", seven),
        "linker define_instance": lambda: Linker(engine).define_instance(store_b, "a", instance_a),
    }
    for name, use in uses.items():
        with pytest.raises(UsageError, match=wrong_store):
            use()
            pytest.fail(f"{name} accepted an extern of another store")

    importer = Module(engine, """
      (module
        (import "a" "f" (func (result i32)))
        (import "a" "mem" (memory 1))
        (import "a" "tab" (table 1 funcref))
        (import "a" "g" (global (mut i32))))""")
    imports = [seven, mem, tab, counter]
    for position in range(4):
        mixed = [Func(store_b, FuncType((), (I32,)), lambda: 0), Memory(store_b, MemoryType(Limits(1))),
                 Table(store_b, TableType(ValType.FUNCREF, Limits(1)), None),
                 Global(store_b, GlobalType(I32, True), 0)]
        mixed[position] = imports[position]
        name = ["f", "mem", "tab", "g"][position]
        with pytest.raises(UsageError, match=rf"^import a\.{name} \(\w+\) {wrong_store}"):
            Instance(store_b, importer, mixed)
    # A linker filled from store a cannot instantiate in store b.
    linker = Linker(engine)
    for name, item in zip(["f", "mem", "tab", "g"], imports):
        linker.define(store_a, "a", name, item)
    assert len(linker.instantiate(store_a, importer).exports(store_a)) == 0
    with pytest.raises(UsageError, match=rf"^import a\.f \(func\) {wrong_store}"):
        linker.instantiate(store_b, importer)
    assert linker.get(store_a, "a", "mem") == mem
    with pytest.raises(UsageError, match=rf"^the definition of a\.mem {wrong_store}"):
        linker.get(store_b, "a", "mem")


def test_funcref_values_of_another_store_rejected(engine):
    store_a, store_b = Store(engine), Store(engine)
    module = Module(engine, """
      (module (func (export "id") (param funcref) (result funcref) (local.get 0)))""")
    identity = Instance(store_a, module, []).exports(store_a)["id"]
    own = Func(store_a, FuncType((), ()), lambda: None)
    foreign = Func(store_b, FuncType((), ()), lambda: None)
    assert identity(store_a, own) == own
    assert identity(store_a, None) is None
    with pytest.raises(UsageError, match="funcref argument .* belongs to a different store"):
        identity(store_a, foreign)
    # A host function that returns a function of another store fails like any bad result.
    leak = Func(store_a, FuncType((), (ValType.FUNCREF,)), lambda: foreign)
    with pytest.raises(Trap, match="belongs to a different store") as info:
        leak(store_a)
    assert info.value.code is TrapCode.HOST_ERROR
    # So does a linker host function, which learns the store from its Caller.
    linker = Linker(engine)
    linker.define_func("host", "leak", FuncType((), (ValType.FUNCREF,)),
                       lambda caller: foreign, access_caller=True)
    calls_leak = linker.instantiate(store_a, Module(engine, """
      (module (import "host" "leak" (func $leak (result funcref)))
        (func (export "run") (result funcref) (call $leak)))""")).exports(store_a)["run"]
    with pytest.raises(Trap, match="belongs to a different store") as info:
        calls_leak(store_a)
    assert info.value.code is TrapCode.HOST_ERROR


# -- grow failures ---------------------------------------------------------------------


def test_grow_failures_name_sizes_and_maximum(engine):
    store = Store(engine)
    ex = Instance(store, Module(engine, EXTERNS), []).exports(store)
    mem, tab = ex["mem"], ex["tab"]
    # Inside wasm a failed grow returns -1 and changes nothing.
    assert ex["grow"](store, 4) == -1
    assert ex["table_grow"](store, 3) == -1
    with pytest.raises(ResourceLimitExceeded) as info:
        mem.grow(store, 4)
    assert str(info.value) == "cannot grow memory from 1 to 5 pages: its declared maximum is 4 pages"
    with pytest.raises(ResourceLimitExceeded) as info:
        tab.grow(store, 3)
    assert str(info.value) == (
        "cannot grow table from 2 to 5 elements: its declared maximum is 4 elements"
    )
    assert mem.size(store) == 1
    assert tab.size(store) == 2

    limited = Store(engine)
    limited.set_limits(memory_size=2 * 65536, table_elements=3)
    ex = Instance(limited, Module(engine, EXTERNS), []).exports(limited)
    assert ex["grow"](limited, 2) == -1
    assert ex["grow"](limited, 1) == 1
    with pytest.raises(ResourceLimitExceeded) as info:
        ex["mem"].grow(limited, 1)
    assert str(info.value) == (
        "cannot grow memory from 2 to 3 pages: the store's memory limit is 2 pages"
    )
    assert ex["table_grow"](limited, 2) == -1
    with pytest.raises(ResourceLimitExceeded) as info:
        ex["tab"].grow(limited, 2)
    assert str(info.value) == (
        "cannot grow table from 2 to 4 elements: the store's table limit is 3 elements"
    )


def test_wasmtime_also_rejects_grow_past_maximum():
    wasmtime = pytest.importorskip("wasmtime")
    w_engine = wasmtime.Engine()
    w_store = wasmtime.Store(w_engine)
    w_ex = wasmtime.Instance(w_store, wasmtime.Module(w_engine, EXTERNS), []).exports(w_store)
    assert w_ex["grow"](w_store, 4) == -1
    with pytest.raises(wasmtime.WasmtimeError):
        w_ex["mem"].grow(w_store, 4)
    with pytest.raises(wasmtime.WasmtimeError):
        w_ex["tab"].grow(w_store, 3, None)


# -- typed exports and host functions --------------------------------------------------

TYPED = """
(module
  (func (export "i") (param i32) (result i32) (local.get 0))
  (func (export "l") (param i64) (result i64) (local.get 0))
  (func (export "f") (param f32) (result f32) (local.get 0))
  (func (export "d") (param f64) (result f64) (local.get 0))
  (func (export "r") (param funcref) (result funcref) (local.get 0))
  (func (export "x") (param externref) (result externref) (local.get 0))
  (func (export "pair") (param i32 f64) (result f64 i32) (local.get 1) (local.get 0)))
"""


def test_typed_exports_match_module_types(engine):
    store = Store(engine)
    module = Module(engine, TYPED)
    exports = Instance(store, module, []).exports(store)
    for export in module.exports:
        assert exports[export.name].type(store) == export.type, export.name
    assert exports["i"](store, -1) == -1
    assert exports["i"](store, 0xFFFF_FFFF) == -1
    assert exports["l"](store, -(2**63)) == -(2**63)
    assert exports["f"](store, 0.1) == struct_f32(0.1)
    assert exports["f"](store, 3) == 3.0
    assert exports["d"](store, -0.5) == -0.5
    token = object()
    assert exports["x"](store, token) is token
    assert exports["pair"](store, 4, 2.5) == [2.5, 4]


def struct_f32(value):
    import struct

    return struct.unpack("<f", struct.pack("<f", value))[0]


def test_typed_exports_reject_bad_arguments(engine):
    store, ex = exports_of(engine, TYPED)
    cases = [
        ("i", True, "expected an int for i32, got True"),
        ("i", 2**32, "4294967296 does not fit in i32"),
        ("i", -(2**31) - 1, "-2147483649 does not fit in i32"),
        ("i", 1.5, "expected an int for i32, got 1.5"),
        ("i", None, "expected an int for i32, got None"),
        ("l", 2**64, "18446744073709551616 does not fit in i64"),
        ("f", "x", "expected a float for f32, got 'x'"),
        ("d", 2**1024, "is too large for f64"),
        ("r", 5, "expected a Func or None for funcref, got 5"),
    ]
    for name, value, message in cases:
        with pytest.raises(UsageError, match=re.escape(message)):
            ex[name](store, value)
    with pytest.raises(UsageError, match="expects 2, got 1"):
        ex["pair"](store, 1)


HOST_RESULTS = """
(module
  (import "host" "one" (func $one (result i32)))
  (import "host" "two" (func $two (result i32 f64)))
  (import "host" "none" (func $none))
  (import "host" "wide" (func $wide (result f64)))
  (func (export "one") (result i32) (call $one))
  (func (export "two") (result i32) (call $two) (drop))
  (func (export "none") (call $none))
  (func (export "wide") (result f64) (call $wide)))
"""


@pytest.mark.parametrize(
    ("export", "returned", "message"),
    [
        ("one", "seven", "expected an int for i32, got 'seven'"),
        ("one", None, "expected an int for i32, got None"),
        ("one", (1, 2), "expected an int for i32, got (1, 2)"),
        ("one", 2**40, "1099511627776 does not fit in i32"),
        ("two", 5, "host function must return 2 values, got 5"),
        ("two", (1,), "host function must return 2 values, got (1,)"),
        ("two", (1, "x"), "expected a float for f64, got 'x'"),
        ("none", 3, "host function has no results but returned 3"),
        ("wide", 2**1024, "is too large for f64"),
    ],
    ids=["str", "none", "tuple", "i32 overflow", "one value", "one of two", "bad second",
         "unexpected", "f64 overflow"],
)
def test_host_bad_results_trap(engine, export, returned, message):
    store = Store(engine)
    linker = Linker(engine)
    results = {"one": 1, "two": (1, 2.0), "none": None, "wide": 1.0}
    results[export] = returned
    for name, ty in [("one", FuncType((), (I32,))), ("two", FuncType((), (I32, F64))),
                     ("none", FuncType((), ())), ("wide", FuncType((), (F64,)))]:
        value = results[name]
        linker.define_func("host", name, ty, lambda value=value: value)
    ex = linker.instantiate(store, Module(engine, HOST_RESULTS)).exports(store)
    with pytest.raises(Trap) as info:
        ex[export](store)
    assert info.value.code is TrapCode.HOST_ERROR
    assert message in str(info.value)
    assert isinstance(info.value.__cause__, TypeError)


def test_host_wrong_python_arity_traps(engine):
    store = Store(engine)

    def takes_one(a):
        return a

    host = Func(store, FuncType((I32, I64, F32, F64), (I32,)), takes_one)
    pair = Func(store, FuncType((), (I32, I32)), lambda: (1, 2))
    ex = Instance(store, Module(engine, CALLS_HOST), [host, pair]).exports(store)
    with pytest.raises(Trap, match="takes_one: TypeError") as info:
        ex["call_f"](store, 1)
    assert info.value.code is TrapCode.HOST_ERROR
    assert isinstance(info.value.__cause__, TypeError)


def test_host_exceptions_propagate(engine):
    class Custom(Exception):
        pass

    raised = {}

    def fails(*args):
        raise raised["error"]

    store, ex = host_exports(engine, fails)
    host = Func(store, FuncType((), ()), lambda: fails())
    # Any other exception becomes a HOST_ERROR trap caused by the original.
    for error in (Custom("custom"), KeyError("k"), ZeroDivisionError("zero")):
        raised["error"] = error
        for call in (lambda: ex["call_f"](store, 1), lambda: host(store)):
            with pytest.raises(Trap) as info:
                call()
            assert info.value.code is TrapCode.HOST_ERROR
            assert info.value.__cause__ is error
            assert type(error).__name__ in str(info.value)
    # wasmtee errors, and exceptions that are not an Exception, pass through unchanged.
    for error in (UsageError("misuse"), Trap(TrapCode.UNREACHABLE), Trap("custom trap"), WasiExit(3),
                  KeyboardInterrupt("stop"), SystemExit(4)):
        raised["error"] = error
        for call in (lambda: ex["call_f"](store, 1), lambda: host(store)):
            with pytest.raises(type(error)) as info:
                call()
            assert info.value is error


REENTRANT = """
(module
  (import "host" "back" (func $back (param i32) (result i32)))
  (memory (export "mem") 1)
  (global $depth (export "depth") (mut i32) (i32.const 0))
  (func (export "down") (param i32) (result i32)
    (global.set $depth (i32.add (global.get $depth) (i32.const 1)))
    (i32.store (i32.mul (local.get 0) (i32.const 4)) (local.get 0))
    (if (result i32) (i32.eqz (local.get 0))
      (then (i32.const 0))
      (else
        (i32.add
          (call $back (i32.sub (local.get 0) (i32.const 1)))
          (i32.load (i32.mul (local.get 0) (i32.const 4)))))))
  (func (export "boom") (result i32) unreachable))
"""


def test_reentrant_host_calls(engine):
    store = Store(engine)
    caught = []

    def back(caller, n):
        # Re-enter the calling instance through its Caller.
        if n == 2:
            try:
                caller["boom"](caller)
            except Trap as exc:
                caught.append(exc.code)
        return caller["down"](caller, n)

    linker = Linker(engine)
    linker.define_func("host", "back", FuncType((I32,), (I32,)), back, access_caller=True)
    ex = linker.instantiate(store, Module(engine, REENTRANT)).exports(store)
    # 5 + 4 + 3 + 2 + 1 + 0, each level adding what it stored before re-entering.
    assert ex["down"](store, 5) == 15
    assert ex["depth"].value(store) == 6
    assert caught == [TrapCode.UNREACHABLE]
    assert ex["mem"].read(store, 0, 24) == b"".join(i.to_bytes(4, "little") for i in range(6))

    def back_traps(caller, n):
        if n == 1:
            caller["boom"](caller)
        return caller["down"](caller, n)

    store = Store(engine)
    linker = Linker(engine)
    linker.define_func("host", "back", FuncType((I32,), (I32,)), back_traps, access_caller=True)
    ex = linker.instantiate(store, Module(engine, REENTRANT)).exports(store)
    with pytest.raises(Trap) as info:
        ex["down"](store, 4)
    assert info.value.code is TrapCode.UNREACHABLE
    # down(4), down(3) and down(2) ran before the trap; the global keeps their updates.
    assert ex["depth"].value(store) == 3
    # The instance stays usable after a trap unwound several nested entries.
    assert ex["down"](store, 0) == 0
    assert ex["depth"].value(store) == 4


# -- trap messages the spec scripts need ----------------------------------------------


def test_uninitialized_element_message(engine):
    store, ex = exports_of(engine, """
      (module
        (table 3 funcref)
        (func $one (result i32) (i32.const 1))
        (elem (i32.const 0) $one)
        (func (export "call") (param i32) (result i32) (call_indirect (result i32) (local.get 0))))""")
    assert ex["call"](store, 0) == 1
    with pytest.raises(Trap) as info:
        ex["call"](store, 2)
    assert info.value.code is TrapCode.UNINITIALIZED_ELEMENT
    assert str(info.value) == "uninitialized element 2"
    with pytest.raises(Trap) as info:
        ex["call"](store, 3)
    assert info.value.code is TrapCode.UNDEFINED_ELEMENT
    assert str(info.value).startswith("undefined element")


BULK_SCRIPT = Path("/work/ext/testsuite/bulk.wast")


@pytest.mark.skipif(not BULK_SCRIPT.is_file(), reason=f"spec script {BULK_SCRIPT} not found")
def test_bulk_spec_script(engine):
    from wasmtee.script.runner import run_script_file

    summary = run_script_file(BULK_SCRIPT, tier=engine.config.tier)
    failures = "\n".join(str(failure) for failure in summary.failures)
    assert summary.failed == 0, failures
    assert summary.passed > 0


def test_wasi_call_with_closed_memory_traps(engine):
    from wasmtee import WasiConfig

    store = Store(engine)
    linker = Linker(engine)
    context = linker.define_wasi(store, WasiConfig(argv=["empty"]))
    module = Module(engine, """
      (module
        (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (func (export "write_nothing") (result i32)
          (call $fd_write (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 0))))""")
    instance = linker.instantiate(store, module)
    write_nothing = instance.exports(store)["write_nothing"]
    assert write_nothing(store) == 0
    instance.close()
    with pytest.raises(Trap, match="memory is closed") as info:
        write_nothing(store)
    assert info.value.code is TrapCode.MEMORY_OUT_OF_BOUNDS
    context.close()


CLOSE_FROM_THREAD = r"""
import sys, threading, time
import wasmtee
from wasmtee import Config, Engine, Instance, Module, Store

engine = Engine(Config(tier=sys.argv[1]))
# Spin while memory[flag] holds 0x5a. A closed memory reads as zeros, so the loop
# ends once the store is closed. The store to an address that the compiler cannot
# tell apart from `flag` makes native code load the flag again on every turn.
module = Module(engine, '''
  (module (memory (export "mem") 16)
    (func (export "spin") (param $flag i32) (param $scratch i32) (result i32) (local $turns i32)
      (loop $again
        (i32.store (local.get $scratch) (local.get $turns))
        (local.set $turns (i32.add (local.get $turns) (i32.const 1)))
        (br_if $again (i32.and (i32.eq (i32.load8_u (local.get $flag)) (i32.const 0x5a))
                               (i32.lt_u (local.get $turns) (i32.const 0x7fffffff)))))
      (local.get $turns)))''')
outcomes = []
for _ in range(5):
    store = Store(engine)
    exports = Instance(store, module, []).exports(store)
    exports["mem"].write(store, b"\x5a", 0)
    started = threading.Event()

    def run():
        started.set()
        try:
            exports["spin"](store, 0, 8)
            outcomes.append("returned")
        except wasmtee.UsageError as exc:
            outcomes.append("usage error" if "closed while the function ran" in str(exc) else str(exc))

    thread = threading.Thread(target=run)
    thread.start()
    started.wait()
    time.sleep(0.05)
    store.close()
    thread.join()
print(outcomes)
"""


def test_store_closed_from_other_thread(engine):
    import os
    import subprocess
    import sys

    # A crash (use of unmapped memory) kills only the child process.
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-c", CLOSE_FROM_THREAD, engine.config.tier],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == str(["usage error"] * 5)


@pytest.mark.parametrize("seconds", [math.nan, math.inf, -1.0, 1e300, 99999999999])
def test_set_deadline_rejects_out_of_range(engine, seconds):
    engine = Engine(Config(tier=engine.config.tier, epoch_interruption=True))
    store, exports = exports_of(engine, '(module (func (export "f") (result i32) i32.const 7))')
    with pytest.raises(UsageError) as info:
        store.set_deadline(seconds)
    assert repr(seconds) in str(info.value)
    # Nothing was armed: the function still runs to completion.
    assert exports["f"](store) == 7


def test_set_deadline_accepts_the_maximum(engine):
    from wasmtee.runtime.config import MAX_DEADLINE_SECONDS

    engine = Engine(Config(tier=engine.config.tier, epoch_interruption=True))
    store, exports = exports_of(engine, '(module (func (export "f") (result i32) i32.const 7))')
    store.set_deadline(MAX_DEADLINE_SECONDS)
    assert exports["f"](store) == 7
    store.set_deadline(None)


OOB_ACCESS = """
(module (memory 1)
  (func (export "store") (param i32) local.get 0 i32.const 7 i32.store)
  (func (export "load") (param i32) (result i64) local.get 0 i64.load offset=8)
  (func (export "load8") (param i32) (result i32) local.get 0 i32.load8_u)
  (func (export "store_f32") (param i32) local.get 0 f32.const 1 f32.store))
"""


@pytest.mark.parametrize("export,address,expected", [
    ("store", 65533, "address 0xfffd, length 4, memory size 0x10000"),
    ("load", 65530, "address 0x10002, length 8, memory size 0x10000"),
    ("load8", 65536, "address 0x10000, length 1, memory size 0x10000"),
    ("store_f32", 0xFFFFFFFF, "address 0xffffffff, length 4, memory size 0x10000"),
])
def test_oob_trap_message_is_wasmtee_text(engine, export, address, expected):
    store, exports = exports_of(engine, OOB_ACCESS)
    with pytest.raises(Trap) as info:
        exports[export](store, address)
    message = str(info.value)
    assert info.value.code is TrapCode.MEMORY_OUT_OF_BOUNDS
    assert message.startswith("out of bounds memory access")
    assert "requires a buffer" not in message
    assert "offset" not in message
    if engine.config.tier == "python":
        assert expected in message


def test_host_recursion_error_keeps_message(engine):
    def deep(*args):
        raise RecursionError("deep")

    store, ex = host_exports(engine, deep)
    with pytest.raises(Trap) as info:
        ex["call_f"](store, 1)
    assert info.value.code is TrapCode.HOST_ERROR
    assert "RecursionError: deep" in str(info.value)
    assert isinstance(info.value.__cause__, RecursionError)


def test_host_hitting_recursion_limit_is_stack_exhausted(engine):
    def recurse(*args):
        return recurse(*args)

    store, ex = host_exports(engine, recurse)
    with pytest.raises(Trap) as info:
        ex["call_f"](store, 1)
    assert info.value.code is TrapCode.STACK_EXHAUSTED
    assert "Python recursion limit" in str(info.value)


@pytest.mark.parametrize("minimum", [0xFFFF_FFFF, 10_000_001])
def test_huge_table_raises_resource_limit(engine, minimum):
    store = Store(engine)
    module = Module(engine, f"(module (table {minimum} funcref))")
    with pytest.raises(ResourceLimitExceeded) as info:
        Instance(store, module, [])
    assert str(minimum) in str(info.value)
    assert f"{minimum * 8} bytes" in str(info.value)


def test_table_limit_default_and_configured(engine):
    from wasmtee.runtime.table import DEFAULT_MAX_ELEMENTS

    wat = '(module (table (export "t") 1 funcref) (func (export "grow") (param i32) (result i32) ref.null func local.get 0 table.grow))'
    store, exports = exports_of(engine, wat)
    assert exports["grow"](store, DEFAULT_MAX_ELEMENTS) == -1
    assert exports["grow"](store, 9) == 1
    store = Store(engine)
    store.set_limits(table_elements=DEFAULT_MAX_ELEMENTS + 1)
    instance = Instance(store, Module(engine, f"(module (table {DEFAULT_MAX_ELEMENTS + 1} funcref))"), [])
    assert instance is not None


NESTED_HOST_CALLS = """
import sys
from wasmtee import Config, Engine, Func, FuncType, Instance, Module, Store, Trap, ValType

engine = Engine(Config(tier=sys.argv[1], max_call_depth=200_000))
store = Store(engine)
wat = '''(module (import "h" "back" (func $back (param i32) (result i32)))
  (func (export "down") (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 0))
      (else (i32.add (i32.const 1) (call $back (i32.sub (local.get 0) (i32.const 1))))))))'''
exports = {}
back = Func(store, FuncType((ValType.I32,), (ValType.I32,)),
            lambda caller, n: exports["down"](caller, n), access_caller=True)
exports.update(Instance(store, Module(engine, wat), [back]).exports(store))
assert exports["down"](store, 100) == 100
try:
    exports["down"](store, 20_000)
except Trap as trap:
    print(trap.code.name)
assert exports["down"](store, 100) == 100
"""


def test_nested_host_calls_trap_not_crash(engine):
    import os
    import subprocess
    import sys

    # Before the nesting bound, a raised max_call_depth let this overflow the C stack.
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-c", NESTED_HOST_CALLS, engine.config.tier],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "STACK_EXHAUSTED"


def test_func_type_accepts_lists(engine):
    store = Store(engine)
    func_type = FuncType([ValType.I32], [ValType.I32])
    assert func_type == FuncType((ValType.I32,), (ValType.I32,))
    assert hash(func_type) == hash(FuncType((ValType.I32,), (ValType.I32,)))
    double = Func(store, func_type, lambda x: 2 * x)
    assert double(store, 21) == 42
