"""Deeply nested control flow on the python tier, compared with the wasmtime package.

CPython rejects more than 20 nested loop and try blocks per function and 100
levels of indentation, so deep functions take the flat translation
(wasmtee/pytier/flat.py). Each generator below writes a module in the
linear text format, whose parsing does not recurse on the nesting, and
every result and trap is compared with wasmtime's for the same module.
"""

from __future__ import annotations

import logging
import random
import threading
import time

import pytest

from wasmtee import Config, Engine, Instance, Module, Store, Trap, TrapCode
from wasmtee.pytier import TIER
from wasmtee.pytier import translate as translate_module
from wasmtee.pytier.runtime import CODE_CACHE

wasmtime = pytest.importorskip("wasmtime")

# Depths on both sides of CPython's limits: 18 Python loops, 90 indentation levels.
DEPTHS = [1, 5, 17, 19, 40, 99, 150, 1000]

WASMTIME_TRAPS = {
    "INTEGER_DIVISION_BY_ZERO": TrapCode.INTEGER_DIVIDE_BY_ZERO,
    "UNREACHABLE": TrapCode.UNREACHABLE,
    "MEMORY_OUT_OF_BOUNDS": TrapCode.MEMORY_OUT_OF_BOUNDS,
    "STACK_OVERFLOW": TrapCode.STACK_EXHAUSTED,
}


def func_module(params: str, body: list[str], memory: bool = False) -> str:
    lines = ["(module"]
    if memory:
        lines.append("  (memory 1)")
    lines.append(f'  (func $f (export "f") {params}')
    lines.extend(body)
    lines.append("  ))")
    return "\n".join(lines)


def blocks_br_table(depth: int) -> str:
    """Blocks around a br_table to each of them. Every block end updates the accumulator."""
    labels = " ".join(str(i) for i in range(depth))
    body = ["block"] * depth + [f"local.get 0 br_table {labels} {depth - 1}"]
    for i in range(depth):
        body.append(f"end local.get 1 i32.const 31 i32.mul i32.const {i + 1} i32.add local.set 1")
    body.append("local.get 1")
    return func_module("(param i32) (result i32) (local i32)", body)


def blocks_with_values(depth: int) -> str:
    """Blocks with an i32 result that br_table leaves with a value, above a value that waits."""
    labels = " ".join(str((i * 7) % depth) for i in range(depth))
    body = ["i32.const 7"] + ["block (result i32)"] * depth
    body.append(f"i32.const 1000 local.get 0 br_table {labels} {depth - 1}")
    for i in range(depth):
        body.append(f"end i32.const {i + 3} i32.mul i32.const {i} i32.xor")
    body.append("i32.add")
    return func_module("(param i32) (result i32)", body)


def nested_loops(depth: int) -> str:
    """Loops where the innermost body counts down and restarts a loop chosen by the counter."""
    labels = " ".join(str(i + 1) for i in range(depth))
    body = ["loop"] * depth
    body += [
        "local.get 1 i32.const 5 i32.mul local.get 0 i32.add local.set 1",
        "local.get 0 i32.const 1 i32.sub local.tee 0",
        "if",
        f"local.get 0 i32.const {depth} i32.rem_u br_table {labels} 1",
        "end",
    ]
    for i in range(depth):
        body.append(f"end local.get 1 i32.const {i} i32.add local.set 1")
    body.append("local.get 1")
    return func_module("(param i32) (result i32) (local i32)", body)


def loop_params(depth: int) -> str:
    """Loops that take and return an i32, so branches to them carry new parameter values."""
    body = ["local.get 0"] + ["loop (param i32) (result i32)"] * depth
    body += [
        "i32.const 3 i32.add",
        "local.get 1 i32.const 1 i32.add local.tee 1",
        f"i32.const {depth + 5} i32.lt_u",
        f"br_if {depth // 2}",
    ]
    body += ["end i32.const 1 i32.add"] * depth
    return func_module("(param i32) (result i32) (local i32)", body)


def nested_ifs(depth: int) -> str:
    """Ifs with results and else arms, and a br_if from the innermost level to a middle one."""
    body = []
    for i in range(depth):
        body.append(f"local.get 0 i32.const {i} i32.ge_u if (result i32)")
    body += [
        "i32.const 99 local.get 0 i32.const 777 i32.eq br_if " + str(depth // 2),
        "drop local.get 0 i32.const 3 i32.mul",
    ]
    for i in reversed(range(depth)):
        body.append(f"else i32.const {7 * i} end i32.const {i} i32.xor")
    return func_module("(param i32) (result i32)", body)


def ifs_without_else(depth: int) -> str:
    """Ifs without else arms or results, the deepest of which returns."""
    body = []
    for i in range(depth):
        body.append(f"local.get 0 i32.const {i % 5} i32.ne if")
    body.append("local.get 0 i32.const 1000 i32.add return")
    for i in range(depth):
        body.append(f"end local.get 1 i32.const {i} i32.add local.set 1")
    body.append("local.get 1")
    return func_module("(param i32) (result i32) (local i32)", body)


def ifs_with_params(depth: int) -> str:
    """Ifs that take and return an i32, every other one without an else arm."""
    body = ["local.get 0"]
    for i in range(depth):
        body.append(f"local.get 0 i32.const {i} i32.gt_u if (param i32) (result i32)")
    body += [
        "i32.const 5 i32.add",
        f"local.get 0 i32.const 500 i32.eq br_if {depth // 3}",
    ]
    for i in reversed(range(depth)):
        if i % 2:
            body.append(f"end i32.const {i} i32.add")
        else:
            body.append(f"else i32.const 3 i32.mul end i32.const {i} i32.xor")
    return func_module("(param i32) (result i32)", body)


def mixed(depth: int) -> str:
    """Blocks, loops and ifs in turn, with br_if, br_table and br to outer labels from inside."""
    kinds = ["block", "loop", "if"]
    body = []
    for i in range(depth):
        kind = kinds[i % 3]
        if kind == "if":
            body.append(f"local.get 0 i32.const {i * 13 % 97 + 20} i32.ne if")
        else:
            body.append(kind)
    labels = " ".join(str((i * 5) % depth) for i in range(depth))
    body += [
        "local.get 1 i32.const 3 i32.mul i32.const 1 i32.add local.set 1",
        "local.get 0 i32.const 1 i32.sub local.tee 0",
        f"i32.eqz if local.get 1 br {depth + 1} end",
        f"local.get 0 i32.const 63 i32.and i32.eqz br_if {depth - 1}",
        f"local.get 0 i32.const {depth} i32.rem_u br_table {labels} 0",
    ]
    for i in reversed(range(depth)):
        body.append(f"end local.get 1 i32.const {i} i32.add local.set 1")
    body.append("local.get 1")
    return func_module("(param i32) (result i32) (local i32)", body)


def trapping(depth: int) -> str:
    """Mixed nesting whose innermost level traps in a way chosen by the parameter."""
    kinds = ["block", "loop", "if"]
    body = []
    for i in range(depth):
        body.append("i32.const 1 if" if kinds[i % 3] == "if" else kinds[i % 3])
    body += [
        "local.get 0 i32.eqz if i32.const 1 local.get 0 i32.div_u drop end",
        "local.get 0 i32.const 1 i32.eq if unreachable end",
        "local.get 0 i32.const 2 i32.eq if i32.const 65535 i32.load drop end",
        f"local.get 0 i32.const 3 i32.eq br_if {depth - 1}",
    ]
    body += ["end"] * depth
    body.append("local.get 0 i32.const 10 i32.mul")
    return func_module("(param i32) (result i32)", body, memory=True)


GENERATORS = {
    "blocks_br_table": (blocks_br_table, [0, 1, 2, 3, 498, 999, 1000, 0xFFFFFFFF]),
    "blocks_with_values": (blocks_with_values, [0, 1, 2, 17, 500, 999, 5000]),
    "nested_loops": (nested_loops, [1, 2, 7, 50, 1200]),
    "loop_params": (loop_params, [0, 1, 40]),
    "nested_ifs": (nested_ifs, [0, 1, 2, 16, 18, 98, 149, 500, 777, 2000]),
    "ifs_without_else": (ifs_without_else, [0, 1, 4, 5, 6, 12, 999]),
    "ifs_with_params": (ifs_with_params, [0, 1, 2, 17, 100, 500, 999, 3000]),
    "mixed": (mixed, [1, 2, 3, 9, 40, 333, 1001, 3000]),
    "trapping": (trapping, [0, 1, 2, 3, 4]),
}


def wasmtime_outcome(wat: str, argument: int) -> tuple[str, object]:
    store = wasmtime.Store(wasmtime.Engine())
    instance = wasmtime.Instance(store, wasmtime.Module(store.engine, wat), [])
    try:
        value = instance.exports(store)["f"](store, argument)
    except wasmtime.Trap as exc:
        return "trap", WASMTIME_TRAPS[exc.trap_code.name]
    return "value", value & 0xFFFFFFFF


def wasmtee_outcome(export: object, store: Store, argument: int) -> tuple[str, object]:
    try:
        value = export(store, argument)  # type: ignore[operator]
    except Trap as exc:
        return "trap", exc.code
    return "value", value & 0xFFFFFFFF


def instantiate(wat: str, **config: object) -> tuple[Store, object, Module]:
    engine = Engine(Config(tier="python", **config))  # type: ignore[arg-type]
    store = Store(engine)
    module = Module(engine, wat)
    instance = Instance(store, module, [])
    return store, instance.exports(store)["f"], module


def source_of(module: Module, **config: object) -> str:
    compiled = TIER.compile(module._model, None, Config(tier="python", **config))  # type: ignore[arg-type]
    return compiled.source_for(0)


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("name", list(GENERATORS))
def test_nesting_matches_wasmtime(name: str, depth: int) -> None:
    generate, arguments = GENERATORS[name]
    wat = generate(depth)
    store, export, _ = instantiate(wat)
    for argument in arguments:
        expected = wasmtime_outcome(wat, argument)
        actual = wasmtee_outcome(export, store, argument)
        assert actual == expected, f"{name} at depth {depth}, argument {argument}"


def test_deep_functions_use_flat_translation() -> None:
    for depth, flat in ((5, False), (17, False), (19, True), (1000, True)):
        _, _, module = instantiate(nested_loops(depth))
        source = source_of(module)
        assert ("_pc" in source) is flat, f"nested_loops depth {depth}"
    _, _, module = instantiate(nested_ifs(40))
    assert "_pc" not in source_of(module)
    _, _, module = instantiate(nested_ifs(99))
    assert "_pc" in source_of(module)


def test_flat_source_nesting_stays_shallow() -> None:
    _, _, module = instantiate(mixed(1000))
    source = source_of(module)
    deepest = max(len(line) - len(line.lstrip(" ")) for line in source.splitlines())
    assert deepest < 40


@pytest.mark.parametrize("name", list(GENERATORS))
def test_forced_flat_translation_matches_wasmtime(monkeypatch: pytest.MonkeyPatch,
                                                  name: str) -> None:
    # A negative limit sends every function, however shallow, to the flat translation.
    monkeypatch.setattr(translate_module, "MAX_INDENT", -1)
    CODE_CACHE.entries.clear()
    generate, arguments = GENERATORS[name]
    try:
        for depth in (1, 3, 8):
            wat = generate(depth)
            store, export, module = instantiate(wat)
            assert "_pc" in source_of(module)
            for argument in arguments:
                expected = wasmtime_outcome(wat, argument)
                assert wasmtee_outcome(export, store, argument) == expected, (
                    f"{name} at depth {depth}, argument {argument}"
                )
    finally:
        CODE_CACHE.entries.clear()


def deep_infinite_loop(depth: int) -> str:
    body = ["loop"] * depth + [f"br {depth // 2}"] + ["end"] * depth
    return func_module("(param i32)", body)


def test_fuel_runs_out_in_deep_loops() -> None:
    store, export, module = instantiate(deep_infinite_loop(1000), consume_fuel=True)
    assert "_fuel" in source_of(module, consume_fuel=True)
    store.set_fuel(20_000)
    with pytest.raises(Trap) as info:
        export(store, 0)  # type: ignore[operator]
    assert info.value.code is TrapCode.OUT_OF_FUEL
    assert store.get_fuel() == 0


def test_fuel_counts_deep_loop_iterations() -> None:
    store, export, _ = instantiate(nested_loops(300), consume_fuel=True)
    store.set_fuel(10_000_000)
    assert export(store, 50) == wasmtime_outcome(nested_loops(300), 50)[1]  # type: ignore[operator]
    used_small = 10_000_000 - store.get_fuel()
    store.set_fuel(10_000_000)
    export(store, 500)  # type: ignore[operator]
    used_large = 10_000_000 - store.get_fuel()
    assert used_small > 0
    assert used_large > used_small


def test_interrupt_stops_a_deep_infinite_loop() -> None:
    store, export, _ = instantiate(deep_infinite_loop(1000), epoch_interruption=True)
    timer = threading.Timer(0.2, store.interrupt)
    timer.start()
    started = time.perf_counter()
    with pytest.raises(Trap) as info:
        export(store, 0)  # type: ignore[operator]
    timer.join()
    assert info.value.code is TrapCode.INTERRUPTED
    assert time.perf_counter() - started < 5


def deep_recursion(depth: int) -> str:
    body = ["loop"] * depth + [
        "local.get 0 i32.const 1 i32.add call $f",
        f"local.get 0 br_if {depth - 1}",
        "drop",
    ] + ["end"] * depth + ["i32.const 0"]
    return func_module("(param i32) (result i32)", body)


@pytest.mark.parametrize("depth", [19, 1000])
def test_deep_function_recursion_exhausts_the_stack(depth: int) -> None:
    wat = deep_recursion(depth)
    store, export, _ = instantiate(wat)
    started = time.perf_counter()
    assert wasmtee_outcome(export, store, 0) == ("trap", TrapCode.STACK_EXHAUSTED)
    assert time.perf_counter() - started < 10
    assert wasmtime_outcome(wat, 0) == ("trap", TrapCode.STACK_EXHAUSTED)


def test_deep_recursion_with_small_call_depth() -> None:
    store, export, _ = instantiate(deep_recursion(200), max_call_depth=50)
    with pytest.raises(Trap) as info:
        export(store, 0)  # type: ignore[operator]
    assert info.value.code is TrapCode.STACK_EXHAUSTED


@pytest.mark.parametrize("depth", [16, 17, 18, 19, 20])
@pytest.mark.parametrize("config", [{}, {"max_call_depth": 50, "consume_fuel": True},
                                    {"epoch_interruption": True}])
def test_loops_near_the_python_block_limit(depth: int, config: dict) -> None:
    # The call depth counter adds a `finally` around the body, one more block for CPython.
    wat = nested_loops(depth)
    store, export, _ = instantiate(wat, **config)
    if config.get("consume_fuel"):
        store.set_fuel(10_000_000)
    for argument in (1, 7, 300):
        assert wasmtee_outcome(export, store, argument) == wasmtime_outcome(wat, argument)


def test_rejected_structured_source_falls_back_to_flat(monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    # Without the indentation limit the structured source passes CPython's
    # 100 levels, compile() rejects it, and the flat translation runs instead.
    monkeypatch.setattr(translate_module, "MAX_INDENT", 10**6)
    CODE_CACHE.entries.clear()
    caplog.set_level(logging.DEBUG, logger="wasmtee.pytier.runtime")
    try:
        wat = nested_ifs(150)
        store, export, _ = instantiate(wat)
        for argument in (0, 77, 149, 777, 5000):
            assert wasmtee_outcome(export, store, argument) == wasmtime_outcome(wat, argument)
    finally:
        CODE_CACHE.entries.clear()
    assert "compile() rejected the structured source" in caplog.text


def test_wide_br_table_translates_in_linear_time() -> None:
    # A br_table to each of 8000 nested blocks, as a large C switch compiles to.
    # Translation that marks every block between the branch and each target
    # is quadratic and takes over a minute at this depth.
    wat = blocks_br_table(8000)
    store, export, _ = instantiate(wat)
    started = time.perf_counter()
    outcome = wasmtee_outcome(export, store, 3)
    assert time.perf_counter() - started < 20
    assert outcome == wasmtime_outcome(wat, 3)
    assert wasmtee_outcome(export, store, 7999) == ("value", 8000)


def test_flat_translation_charges_the_same_fuel(monkeypatch: pytest.MonkeyPatch) -> None:
    wat = mixed(12)
    used = {}
    for form, limit in (("structured", translate_module.MAX_INDENT), ("flat", -1)):
        monkeypatch.setattr(translate_module, "MAX_INDENT", limit)
        CODE_CACHE.entries.clear()
        store, export, module = instantiate(wat, consume_fuel=True)
        assert ("_pc" in source_of(module, consume_fuel=True)) is (form == "flat")
        store.set_fuel(1_000_000)
        export(store, 333)  # type: ignore[operator]
        used[form] = 1_000_000 - store.get_fuel()
    CODE_CACHE.entries.clear()
    assert used["structured"] > 0
    assert used["flat"] == used["structured"]


class RandomNesting:
    """Write a function with one chain of `depth` nested constructs and random branches.

    Constructs are blocks, loops and ifs, with or without an i32 result. Each
    level contains a few random statements: accumulator updates, br_if and
    br_table to any open label (with a value when the label takes one), and
    short side constructs. Every branch to a loop first decrements a shared
    budget and is taken only while the budget is positive, so runs end.
    """

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.lines: list[str] = []
        self.labels: list[tuple[str, int]] = []  # (kind, label arity), innermost last

    def function(self, depth: int) -> str:
        self.lines = ["i32.const 300 local.set 1"]
        self.construct(depth)
        self.lines.append("local.get 0")
        return func_module("(param i32) (result i32) (local i32)", self.lines)

    def construct(self, levels: int) -> None:
        rng = self.rng
        kind = rng.choice(["block", "loop", "if"])
        has_result = rng.random() < 0.4
        result = " (result i32)" if has_result else ""
        if kind == "if":
            self.lines.append(f"local.get 0 i32.const {rng.randrange(2, 5)} i32.rem_u if{result}")
        else:
            self.lines.append(f"{kind}{result}")
        self.labels.append((kind, 1 if has_result and kind != "loop" else 0))
        for _ in range(rng.randrange(3)):
            self.statement()
        if levels > 1:
            self.construct(levels - 1)
        for _ in range(rng.randrange(3)):
            self.statement()
        if has_result:
            self.lines.append(f"local.get 0 i32.const {rng.randrange(10)} i32.add")
        if kind == "if" and (has_result or rng.random() < 0.6):
            self.lines.append("else")
            if rng.random() < 0.5:
                self.statement()
            if has_result:
                self.lines.append(f"i32.const {rng.randrange(100)}")
        self.labels.pop()
        self.lines.append("end")
        if has_result:
            self.lines.append("local.get 0 i32.add local.set 0")

    def statement(self) -> None:
        rng = self.rng
        choice = rng.random()
        if choice < 0.35 or not self.labels:
            operator = rng.choice(["i32.add", "i32.xor", "i32.mul"])
            self.lines.append(f"local.get 0 i32.const {rng.randrange(1, 1000)} {operator} local.set 0")
            return
        depth = rng.randrange(len(self.labels))
        kind, arity = self.labels[-1 - depth]
        budget = "local.get 1 i32.const 1 i32.sub local.tee 1 i32.const 0 i32.gt_s"
        if choice < 0.6:
            if kind == "loop":
                self.lines.append(
                    f"{budget} local.get 0 i32.const {rng.randrange(2, 7)} i32.rem_u "
                    f"i32.const 0 i32.ne i32.and br_if {depth}"
                )
            elif arity:
                self.lines.append(
                    f"local.get 0 i32.const {rng.randrange(100)} i32.add local.get 0 "
                    f"i32.const {rng.randrange(3, 9)} i32.rem_u i32.eqz br_if {depth} local.set 0"
                )
            else:
                self.lines.append(
                    f"local.get 0 i32.const {rng.randrange(3, 9)} i32.rem_u i32.eqz br_if {depth}"
                )
        elif choice < 0.8:
            # Inside the budget check's `if`, every label is one level further out.
            same_arity = [d for d in range(len(self.labels)) if self.labels[-1 - d][1] == arity]
            targets = " ".join(str(rng.choice(same_arity) + 1) for _ in range(rng.randrange(1, 6)))
            value = f"local.get 0 i32.const {rng.randrange(50)} i32.add " if arity else ""
            selector = f"local.get 0 i32.const {rng.randrange(2, 9)} i32.rem_u"
            self.lines.append(
                f"{budget} if {value}{selector} br_table {targets} "
                f"{rng.choice(same_arity) + 1} end"
            )
        else:
            self.construct(rng.randrange(1, 3))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("depth", [19, 120])
@pytest.mark.parametrize("form", ["automatic", "flat"])
def test_random_nesting_matches_wasmtime(monkeypatch: pytest.MonkeyPatch, form: str,
                                         depth: int, seed: int) -> None:
    if form == "flat":
        monkeypatch.setattr(translate_module, "MAX_INDENT", -1)
    CODE_CACHE.entries.clear()
    wat = RandomNesting(seed).function(depth)
    try:
        store, export, _ = instantiate(wat)
        for argument in (0, 1, 5, 12345):
            expected = wasmtime_outcome(wat, argument)
            assert wasmtee_outcome(export, store, argument) == expected, (
                f"seed {seed}, depth {depth}, argument {argument}"
            )
    finally:
        CODE_CACHE.entries.clear()
