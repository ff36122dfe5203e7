"""Tests of the python execution tier: translation, control flow, memory, traps, limits."""

from __future__ import annotations

import threading
import time

import pytest

import wasmtee
from wasmtee import Config, Engine, Instance, Module, Store, Trap, TrapCode
from wasmtee.pytier import TIER
from wasmtee.pytier import translate as translate_module
from wasmtee.model import FuncType, ValType
from wasmtee.pytier.runtime import CODE_CACHE
from wasmtee.runtime.tiers import get_tier


def instantiate(wat: str, **config: object) -> tuple[Store, dict]:
    engine = Engine(Config(tier="python", **config))  # type: ignore[arg-type]
    store = Store(engine)
    instance = Instance(store, Module(engine, wat), [])
    exports = instance.exports(store)
    return store, {name: exports[name] for name in _export_names(wat)}


def _export_names(wat: str) -> list[str]:
    names = []
    for part in wat.split('(export "')[1:]:
        names.append(part.split('"')[0])
    return names


def call(store: Store, exports: dict, name: str, *args: object) -> object:
    return exports[name](store, *args)


def trap_of(store: Store, exports: dict, name: str, *args: object) -> Trap:
    with pytest.raises(Trap) as info:
        call(store, exports, name, *args)
    return info.value


FIB = """(module
  (func $fib (export "fib") (param i32) (result i32)
    (if (result i32) (i32.lt_u (local.get 0) (i32.const 2))
      (then (local.get 0))
      (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                     (call $fib (i32.sub (local.get 0) (i32.const 2))))))))"""


def test_tier_is_registered() -> None:
    assert TIER.name == "python"
    assert get_tier("python") is TIER


def test_recursion_and_arithmetic() -> None:
    store, ex = instantiate(FIB)
    assert call(store, ex, "fib", 20) == 6765


def test_functions_translate_on_first_call() -> None:
    engine = Engine(Config(tier="python"))
    store = Store(engine)
    module = Module(engine, """(module
      (func (export "a") (result i32) (i32.const 1))
      (func (export "b") (result i32) (i32.const 2)))""")
    instance = Instance(store, module, [])
    compiled = instance._instance.compiled
    exports = instance.exports(store)
    assert compiled.codes == {}
    assert exports["a"](store) == 1
    assert set(compiled.codes) == {0}
    assert exports["b"](store) == 2
    assert set(compiled.codes) == {0, 1}


SWITCH = """(module
  (func (export "switch") (param i32) (result i32)
    (block $out (result i32)
      (block $d (block $c (block $b (block $a
        (br_table $a $b $c $a $d (local.get 0)))
        (br $out (i32.const 100)))
        (br $out (i32.const 101)))
        (br $out (i32.const 102)))
      (i32.const 103)))
  (func (export "multi") (param i32 i32) (result i32 i32)
    (local.get 1) (local.get 0))
  (func (export "loopsum") (param i32) (result i64) (local i64)
    (block $done
      (loop $l
        (br_if $done (i32.eqz (local.get 0)))
        (local.set 1 (i64.add (local.get 1) (i64.extend_i32_u (local.get 0))))
        (local.set 0 (i32.sub (local.get 0) (i32.const 1)))
        (br $l)))
    (local.get 1))
  (func (export "nested") (param i32) (result i32) (local i32)
    (block $outer
      (loop $i
        (block $skip
          (loop $j
            (local.set 1 (i32.add (local.get 1) (i32.const 1)))
            (br_if $outer (i32.gt_u (local.get 1) (local.get 0)))
            (br_if $skip (i32.and (local.get 1) (i32.const 1)))
            (br $j)))
        (br $i)))
    (local.get 1))
  (func (export "loopparam") (result i32) (local i32)
    (i32.const 0)
    (loop $l (param i32) (result i32)
      (i32.add (i32.const 3))
      (local.set 0 (i32.add (local.get 0) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get 0) (i32.const 4))))
    (if (param i32) (result i32) (i32.const 1) (then (i32.const 1) (i32.add))))
  (func (export "select") (param i32 f64 f64) (result f64)
    (select (local.get 1) (local.get 2) (local.get 0))))"""


@pytest.mark.parametrize("form", ["loops", "guards", "flat"])
def test_structured_control(monkeypatch: pytest.MonkeyPatch, form: str) -> None:
    if form == "guards":
        # Every targeted block is exited through `_br` guards instead of a Python loop.
        monkeypatch.setattr(translate_module, "MAX_PYTHON_BLOCKS", 0)
        CODE_CACHE.entries.clear()
    elif form == "flat":
        # A negative indentation limit sends every function to the flat translation.
        monkeypatch.setattr(translate_module, "MAX_INDENT", -1)
        CODE_CACHE.entries.clear()
    store, ex = instantiate(SWITCH)
    assert [call(store, ex, "switch", i) for i in range(6)] == [100, 101, 102, 100, 103, 103]
    assert call(store, ex, "switch", 0xFFFFFFFF) == 103
    assert call(store, ex, "multi", 1, 2) == [2, 1]
    assert call(store, ex, "loopsum", 100000) == 5000050000
    assert call(store, ex, "nested", 10) == 11
    assert call(store, ex, "loopparam") == 13
    assert call(store, ex, "select", 1, 1.5, 2.5) == 1.5
    assert call(store, ex, "select", 0, 1.5, 2.5) == 2.5
    CODE_CACHE.entries.clear()


def test_deep_nesting_beyond_cpython_block_limit() -> None:
    depth = 60
    cases = " ".join(f"$b{i}" for i in range(depth))
    body = f"(br_table {cases} (local.get 0))"
    for i in range(depth):
        body = f"(block $b{i} {body}) (local.set 1 (i32.add (local.get 1) (i32.const {i + 1})))"
    wat = f"""(module (func (export "f") (param i32) (result i32) (local i32)
      {body} (local.get 1)))"""
    store, ex = instantiate(wat)
    total = depth * (depth + 1) // 2
    assert call(store, ex, "f", 0) == total
    assert call(store, ex, "f", 59) == 60
    assert call(store, ex, "f", 1000) == 60


def test_deep_loop_nesting_with_outward_branches() -> None:
    depth = 25
    body = "(br_if $l0 (i32.eqz (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))"
    for i in range(depth):
        body = f"(block $b{i} (loop $l{i} {body} (br $b{i})))"
    wat = f"""(module (func (export "f") (param i32) (result i32)
      (block $l0 (loop $top {body})) (local.get 0)))"""
    store, ex = instantiate(wat)
    assert call(store, ex, "f", 5) == 4


MEMORY = """(module
  (memory 1 3)
  (data (i32.const 8) "\\01\\02\\03\\04\\05\\06\\07\\08")
  (func (export "load8_s") (param i32) (result i32) (i32.load8_s (local.get 0)))
  (func (export "load64") (param i32) (result i64) (i64.load offset=4 (local.get 0)))
  (func (export "store") (param i32 i32) (i32.store (local.get 0) (local.get 1)))
  (func (export "load") (param i32) (result i32) (i32.load (local.get 0)))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "size") (result i32) (memory.size))
  (func (export "fbits") (param i32) (result i32)
    (f32.store (i32.const 0) (f32.load (local.get 0))) (i32.load (i32.const 0)))
  (func (export "fill") (param i32 i32 i32) (memory.fill (local.get 0) (local.get 1) (local.get 2)))
  (func (export "copy") (param i32 i32 i32) (memory.copy (local.get 0) (local.get 1) (local.get 2))))"""


def test_memory_access_and_bounds() -> None:
    store, ex = instantiate(MEMORY)
    assert call(store, ex, "load64", 4) == 0x0807060504030201
    call(store, ex, "store", 100, -2)
    assert call(store, ex, "load8_s", 100) == -2
    assert call(store, ex, "load", 65532) == 0
    for address in (65533, 65536, 0xFFFFFFFF):
        trap = trap_of(store, ex, "load", address)
        assert trap.code is TrapCode.MEMORY_OUT_OF_BOUNDS
    assert trap_of(store, ex, "load64", 65532).code is TrapCode.MEMORY_OUT_OF_BOUNDS


def test_memory_grow_moves_the_bound() -> None:
    store, ex = instantiate(MEMORY)
    assert trap_of(store, ex, "load", 70000).code is TrapCode.MEMORY_OUT_OF_BOUNDS
    assert call(store, ex, "grow", 1) == 1
    assert call(store, ex, "size") == 2
    call(store, ex, "store", 70000, 7)
    assert call(store, ex, "load", 70000) == 7
    assert call(store, ex, "grow", 5) == -1
    assert call(store, ex, "size") == 2


def test_f32_nan_bits_survive_memory() -> None:
    store, ex = instantiate(MEMORY)
    call(store, ex, "store", 16, 0x7FA00001)
    assert call(store, ex, "fbits", 16) == 0x7FA00001


def test_bulk_memory_checks_bounds_before_writing() -> None:
    store, ex = instantiate(MEMORY)
    assert trap_of(store, ex, "fill", 65530, 0xAA, 10).code is TrapCode.MEMORY_OUT_OF_BOUNDS
    assert call(store, ex, "load", 65532) == 0
    call(store, ex, "fill", 200, 0x1AB, 4)
    assert call(store, ex, "load", 200) == 0xABABABAB - (1 << 32)
    call(store, ex, "copy", 202, 8, 4)
    assert call(store, ex, "load", 200) == 0x0201ABAB
    assert call(store, ex, "load", 202) == 0x04030201
    assert trap_of(store, ex, "copy", 0, 65535, 2).code is TrapCode.MEMORY_OUT_OF_BOUNDS


TRAPS = """(module
  (type $v (func))
  (type $i (func (result i32)))
  (table 3 funcref)
  (elem (i32.const 0) $one $nothing)
  (func $one (type $i) (i32.const 1))
  (func $nothing (type $v))
  (func $named_inner (i32.div_s (i32.const 1) (i32.const 0)) (drop))
  (func (export "indirect") (param i32) (result i32) (call_indirect (type $i) (local.get 0)))
  (func (export "div") (param i32 i32) (result i32) (i32.div_s (local.get 0) (local.get 1)))
  (func (export "remu") (param i32 i32) (result i32) (i32.rem_u (local.get 0) (local.get 1)))
  (func (export "trunc") (param f32) (result i32) (i32.trunc_f32_s (local.get 0)))
  (func (export "unreachable") (unreachable))
  (func (export "outer") (call $named_inner))
  (func $rec (export "rec") (param i64) (result i64)
    (i64.add (call $rec (i64.add (local.get 0) (i64.const 1))) (i64.const 1))))"""


def test_trap_codes() -> None:
    store, ex = instantiate(TRAPS)
    assert call(store, ex, "indirect", 0) == 1
    assert trap_of(store, ex, "indirect", 1).code is TrapCode.INDIRECT_CALL_TYPE_MISMATCH
    assert trap_of(store, ex, "indirect", 2).code is TrapCode.UNINITIALIZED_ELEMENT
    assert trap_of(store, ex, "indirect", 3).code is TrapCode.UNDEFINED_ELEMENT
    assert trap_of(store, ex, "div", 1, 0).code is TrapCode.INTEGER_DIVIDE_BY_ZERO
    assert trap_of(store, ex, "remu", 1, 0).code is TrapCode.INTEGER_DIVIDE_BY_ZERO
    assert trap_of(store, ex, "div", -(1 << 31), -1).code is TrapCode.INTEGER_OVERFLOW
    assert call(store, ex, "div", -7, 2) == -3
    assert trap_of(store, ex, "trunc", float("nan")).code is TrapCode.BAD_CONVERSION_TO_INTEGER
    assert trap_of(store, ex, "trunc", 3e9).code is TrapCode.INTEGER_OVERFLOW
    assert trap_of(store, ex, "unreachable").code is TrapCode.UNREACHABLE


def test_trap_frames_name_functions() -> None:
    store, ex = instantiate(TRAPS)
    trap = trap_of(store, ex, "outer")
    names = [frame.func_name for frame in trap.frames]
    assert names == ["named_inner", "outer"]
    assert str(trap).startswith("integer divide by zero")


def test_deep_recursion_exhausts_the_stack() -> None:
    store, ex = instantiate(TRAPS)
    started = time.perf_counter()
    trap = trap_of(store, ex, "rec", 0)
    assert trap.code is TrapCode.STACK_EXHAUSTED
    assert time.perf_counter() - started < 5
    # The store still works afterwards.
    assert call(store, ex, "div", 9, 3) == 3


def test_max_call_depth_is_respected() -> None:
    store, ex = instantiate(FIB, max_call_depth=50)
    assert call(store, ex, "fib", 15) == 610


LOOPS = """(module
  (func (export "spin") (loop $l (br $l)))
  (func (export "count") (param i32) (result i32) (local i32)
    (loop $l
      (local.set 1 (i32.add (local.get 1) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get 1) (local.get 0))))
    (local.get 1)))"""


def test_fuel_is_charged_per_instruction_and_runs_out() -> None:
    store, ex = instantiate(LOOPS, consume_fuel=True)
    store.set_fuel(100_000)
    assert call(store, ex, "count", 1000) == 1000
    used = 100_000 - store.get_fuel()
    assert 5_000 <= used <= 20_000
    store.set_fuel(1000)
    assert trap_of(store, ex, "spin").code is TrapCode.OUT_OF_FUEL
    assert store.get_fuel() == 0


def test_interrupt_from_another_thread_stops_an_infinite_loop() -> None:
    store, ex = instantiate(LOOPS, epoch_interruption=True)
    timer = threading.Timer(0.2, store.interrupt)
    timer.start()
    started = time.perf_counter()
    assert trap_of(store, ex, "spin").code is TrapCode.INTERRUPTED
    assert time.perf_counter() - started < 5
    timer.join()


def test_default_config_generates_no_checks() -> None:
    engine = Engine(Config(tier="python"))
    module = Module(engine, LOOPS)
    compiled = TIER.compile(module._model, None, engine.config)
    source = compiled.source_for(1)
    assert "_fuel" not in source
    assert "_interrupt" not in source
    checked = TIER.compile(module._model, None, Config(consume_fuel=True, epoch_interruption=True))
    source = checked.source_for(1)
    assert "_fuel" in source
    assert "_interrupt" in source


def test_imports_and_host_functions() -> None:
    engine = Engine(Config(tier="python"))
    store = Store(engine)
    seen = []
    host_type = FuncType((ValType.I32,), (ValType.I32,))

    def host(value: int) -> int:
        seen.append(value)
        return value * 2

    func = wasmtee.Func(store, host_type, host)
    module = Module(engine, """(module
      (import "env" "double" (func $d (param i32) (result i32)))
      (func (export "f") (param i32) (result i32) (i32.add (call $d (local.get 0)) (i32.const 1))))""")
    instance = Instance(store, module, [func])
    assert instance.exports(store)["f"](store, 20) == 41
    assert seen == [20]


def test_data_drop_without_memory() -> None:
    store, ex = instantiate("""(module
      (data "abc")
      (func (export "drop") (result i32) (data.drop 0) (i32.const 7)))""")
    assert call(store, ex, "drop") == 7


@pytest.mark.parametrize(("body", "message"), [
    ("(drop (i32.div_u (i32.const 1) (i32.const 0)))", "integer divide by zero"),
    ("(drop (i32.load (i32.const 70000)))", "out of bounds memory access"),
    ("unreachable", "unreachable"),
])
def test_trap_backtrace_starts_at_trapping_function(body, message):
    wat = f"""(module (memory 1)
      (func $inner {body})
      (func $middle (call $inner))
      (func (export "outer") (call $middle)))"""
    engine = wasmtee.Engine(wasmtee.Config(tier="python"))
    store = wasmtee.Store(engine)
    instance = wasmtee.Instance(store, wasmtee.Module(engine, wat), [])
    with pytest.raises(wasmtee.Trap, match=message) as info:
        instance.exports(store)["outer"](store)
    assert [frame.func_name for frame in info.value.frames] == ["inner", "middle", "outer"]
