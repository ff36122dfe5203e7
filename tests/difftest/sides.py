"""Run a generated module on one runtime and record everything observable.

A side wraps one runtime's embedding API. wasmtee's API follows wasmtime-py
(`Engine`, `Store`, `Module`, `Instance`, `instance.exports(store)[name]`,
`func(store, *args)`, `memory.read(store, start, stop)`), so one driver,
`record_outcome`, serves both, and each side only maps its traps and builds
its engine.

An outcome is a list of text events, so two outcomes compare line by line and
a failure message can quote both lines:

    instantiate: ok
    call 3 "name" (0x1, 0x7fc00000) -> (0x5,)
    call 4 "other" () -> trap: out of bounds memory access
    global 6 "g" = 0x2a
    table 2 "t": size 10, nulls hash 0x...
    memory 5 "m": 131072 bytes, sha256 ...

Memory contents are kept whole so that a mismatch names the first differing
byte.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
from dataclasses import dataclass, field
from typing import Any

from wasmtee.errors import TrapCode

from .generate import seed_bytes
from .harness import Export, build_harness, harness_imports

# Argument sets per exported function. Calls run in export order, each
# function once per round, on one instance, so state carries across calls.
ROUNDS = 2

MASKS = {"i32": (1 << 32) - 1, "i64": (1 << 64) - 1}

# Operands that hit edge cases: zero, signs, extremes, and float specials
# (zeros, infinities, quiet and signaling NaNs, the smallest subnormal).
INTERESTING_BITS = {
    "i32": [0, 1, 2, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0x10000, 0xFFFF, 7, 64],
    "i64": [0, 1, 0xFFFFFFFFFFFFFFFF, 0x7FFFFFFFFFFFFFFF, 0x8000000000000000, 0x100000000],
    "f32": [0x00000000, 0x80000000, 0x3F800000, 0xBF800000, 0x7F800000, 0xFF800000,
            0x7FC00000, 0xFFC00000, 0x7FA00001, 0x00000001, 0x4F000000, 0xCF000000],
    "f64": [0x0000000000000000, 0x8000000000000000, 0x3FF0000000000000,
            0x7FF0000000000000, 0xFFF0000000000000, 0x7FF8000000000000,
            0x7FF4000000000001, 0x0000000000000001, 0x41E0000000000000,
            0xC3E0000000000000],
}

# Trap codes that name the same fault in different words. The spec calls an
# out-of-range call_indirect index "undefined element" where wasmtime reports a
# table access out of bounds.
TRAP_ALIASES = {
    TrapCode.UNDEFINED_ELEMENT: TrapCode.TABLE_OUT_OF_BOUNDS,
    TrapCode.NULL_REFERENCE: TrapCode.UNINITIALIZED_ELEMENT,
}


def canonical_trap(code: TrapCode) -> str:
    return TRAP_ALIASES.get(code, code).value


@dataclass
class Outcome:
    events: list[str] = field(default_factory=list)
    # memory export name -> contents at the end
    memories: dict[str, bytes] = field(default_factory=dict)
    # event index -> the full error message, shown on a mismatch but never
    # compared, because the two runtimes word their errors differently
    details: dict[int, str] = field(default_factory=dict)

    def add_error(self, prefix: str, side: Side, exc: BaseException) -> None:
        # wasmtime appends a multi-line backtrace; its first line is enough.
        first_line = (str(exc).splitlines() or [""])[0]
        self.details[len(self.events)] = f"{type(exc).__name__}: {first_line}"
        self.events.append(f"{prefix}{side.describe_error(exc)}")


def argument_bits(seed: int, export: Export, round_index: int) -> list[int]:
    """Return deterministic harness arguments (bit patterns) for one call."""
    stream = hashlib.shake_256(
        seed_bytes(seed)[:32] + f"/{export.index}/{round_index}".encode()
    ).digest(16 * (len(export.params) + 1))
    values = []
    for position, harness_type in enumerate(export.harness_params()):
        chunk = stream[16 * position: 16 * position + 16]
        source_type = [t for t in export.params if t not in ("funcref", "externref")][
            position
        ]
        choices = INTERESTING_BITS[source_type]
        if chunk[0] < 160:
            values.append(choices[chunk[1] % len(choices)])
        else:
            values.append(int.from_bytes(chunk[2:10], "little") & MASKS[harness_type])
    return values


def to_signed(value: int, value_type: str) -> int:
    width = 32 if value_type == "i32" else 64
    return value - (1 << width) if value >> (width - 1) else value


def format_values(values: list[int]) -> str:
    return "(" + ", ".join(f"0x{v:x}" for v in values) + ("," if len(values) == 1 else "") + ")"


class Side:
    """One runtime, driven through its wasmtime-py-shaped embedding API."""

    name = "abstract"
    api: Any
    _engine: Any = None

    def new_engine(self) -> Any:
        raise NotImplementedError

    def engine(self) -> Any:
        """Return this side's engine, created on first use and then shared."""
        if self._engine is None:
            self._engine = self.new_engine()
        return self._engine

    def trap_class(self, exc: BaseException) -> str | None:
        """Return the canonical trap message for a trap, or None for other errors."""
        raise NotImplementedError

    def describe_error(self, exc: BaseException) -> str:
        trap = self.trap_class(exc)
        if trap is not None:
            return f"trap: {trap}"
        return f"error: {type(exc).__name__}"


class WasmtimeSide(Side):
    name = "wasmtime"

    def __init__(self) -> None:
        self.api = importlib.import_module("wasmtime")
        self._codes = {
            "STACK_OVERFLOW": TrapCode.STACK_EXHAUSTED,
            "MEMORY_OUT_OF_BOUNDS": TrapCode.MEMORY_OUT_OF_BOUNDS,
            "TABLE_OUT_OF_BOUNDS": TrapCode.TABLE_OUT_OF_BOUNDS,
            "INDIRECT_CALL_TO_NULL": TrapCode.UNINITIALIZED_ELEMENT,
            "BAD_SIGNATURE": TrapCode.INDIRECT_CALL_TYPE_MISMATCH,
            "INTEGER_OVERFLOW": TrapCode.INTEGER_OVERFLOW,
            "INTEGER_DIVISION_BY_ZERO": TrapCode.INTEGER_DIVIDE_BY_ZERO,
            "BAD_CONVERSION_TO_INTEGER": TrapCode.BAD_CONVERSION_TO_INTEGER,
            "UNREACHABLE": TrapCode.UNREACHABLE,
            "OUT_OF_FUEL": TrapCode.OUT_OF_FUEL,
            "INTERRUPT": TrapCode.INTERRUPTED,
            "NULL_REFERENCE": TrapCode.NULL_REFERENCE,
        }

    def new_engine(self) -> Any:
        return self.api.Engine()

    def trap_class(self, exc: BaseException) -> str | None:
        if not isinstance(exc, self.api.Trap):
            return None
        code = exc.trap_code
        if code is None or code.name not in self._codes:
            return f"unmapped wasmtime trap {code}"
        return canonical_trap(self._codes[code.name])


class WasmteeSide(Side):
    """wasmtee on one execution tier ("python" or "llvm")."""

    def __init__(self, tier: str) -> None:
        self.api = importlib.import_module("wasmtee")
        self.tier = tier
        self.name = f"wasmtee-{tier}"

    def new_engine(self) -> Any:
        return self.api.Engine(self.api.Config(tier=self.tier))

    def trap_class(self, exc: BaseException) -> str | None:
        if not isinstance(exc, self.api.Trap):
            return None
        return canonical_trap(exc.code)


def wasmtee_api_missing() -> str | None:
    """Return why wasmtee's embedding API cannot be used yet, or None when it can."""
    try:
        api = importlib.import_module("wasmtee")
    except ImportError as exc:
        return f"wasmtee does not import: {exc}"
    names = ("Config", "Engine", "Store", "Module", "Instance", "Trap")
    missing = [name for name in names if not hasattr(api, name)]
    if missing:
        return f"wasmtee does not export {', '.join(missing)} yet"
    return None


def wasmtee_tier_available(tier: str) -> str | None:
    """Return why a wasmtee tier cannot run a trivial module, or None when it can.

    A tier that marks itself incomplete (`automatic = False`, which keeps
    the "auto" setting from choosing it) counts as unavailable unless the
    environment sets WASMTEE_DIFF_INCOMPLETE_TIERS=1.
    """
    reason = wasmtee_api_missing()
    if reason:
        return reason
    try:
        side = WasmteeSide(tier)
        engine = side.new_engine()
        store = side.api.Store(engine)
        module = side.api.Module(engine, b"\0asm\1\0\0\0")
        side.api.Instance(store, module, [])
        tier_object = engine.tier
    except Exception as exc:  # noqa: BLE001 - any failure means "unavailable"
        return f"the {tier} tier cannot instantiate an empty module: {exc}"
    incomplete = not getattr(tier_object, "automatic", True)
    if incomplete and os.environ.get("WASMTEE_DIFF_INCOMPLETE_TIERS") != "1":
        return (
            f"the {tier} tier marks itself incomplete; set "
            "WASMTEE_DIFF_INCOMPLETE_TIERS=1 to test it anyway"
        )
    return None


@functools.cache
def _reference_engine() -> Any:
    return importlib.import_module("wasmtime").Engine()


def describe_exports(module_bytes: bytes) -> list[Export]:
    """Read the export types of a module with wasmtime, the reference runtime."""
    wasmtime = importlib.import_module("wasmtime")
    module = wasmtime.Module(_reference_engine(), module_bytes)

    def type_name(value_type: Any) -> str:
        # wasmtime-py prints externref as "anyref", so compare instead.
        if value_type == wasmtime.ValType.externref():
            return "externref"
        if value_type == wasmtime.ValType.funcref():
            return "funcref"
        return str(value_type)

    exports = []
    for index, export in enumerate(module.exports):
        t = export.type
        if isinstance(t, wasmtime.FuncType):
            exports.append(Export(
                index, export.name, "func",
                params=tuple(type_name(p) for p in t.params),
                results=tuple(type_name(r) for r in t.results),
            ))
        elif isinstance(t, wasmtime.GlobalType):
            exports.append(Export(
                index, export.name, "global",
                results=(type_name(t.content),), mutable=t.mutable,
            ))
        elif isinstance(t, wasmtime.TableType):
            exports.append(Export(
                index, export.name, "table",
                results=(type_name(t.element),), limits=(t.limits.min, t.limits.max),
            ))
        else:
            exports.append(Export(index, export.name, "memory"))
    return exports


def record_outcome(side: Side, seed: int, module_bytes: bytes, exports: list[Export]) -> Outcome:
    """Instantiate, call every function export ROUNDS times, then read the state."""
    outcome = Outcome()
    events = outcome.events
    api = side.api
    engine = side.engine()
    store = api.Store(engine)
    try:
        module = api.Module(engine, module_bytes)
        instance = api.Instance(store, module, [])
    except Exception as exc:  # noqa: BLE001 - recorded and compared
        outcome.add_error("instantiate: ", side, exc)
        return outcome
    events.append("instantiate: ok")

    externs = instance.exports(store)
    imported = harness_imports(exports)
    try:
        harness_module = api.Module(engine, build_harness(exports))
        harness = api.Instance(
            store, harness_module, [externs[e.name] for e in imported]
        )
    except Exception as exc:  # noqa: BLE001 - recorded and compared
        outcome.add_error("harness: ", side, exc)
        return outcome
    harness_exports = harness.exports(store)

    def observe(label: str, function_name: str, args: list[int],
                arg_types: tuple[str, ...], result_types: tuple[str, ...]) -> None:
        func = harness_exports[function_name]
        signed = [to_signed(v, t) for v, t in zip(args, arg_types)]
        try:
            result = func(store, *signed)
        except Exception as exc:  # noqa: BLE001 - recorded and compared
            outcome.add_error(f"{label} -> ", side, exc)
            return
        if result is None:
            values = []
        elif isinstance(result, (list, tuple)):
            values = list(result)
        else:
            values = [result]
        bits = [v & MASKS[t] for v, t in zip(values, result_types)]
        events.append(f"{label} -> {format_values(bits)}")

    functions = [e for e in exports if e.kind == "func"]
    for round_index in range(ROUNDS):
        for export in functions:
            args = argument_bits(seed, export, round_index)
            label = f"call {export.index} {export.name!r} {format_values(args)}"
            observe(label, f"call{export.index}", args,
                    export.harness_params(), export.harness_results())

    for export in exports:
        label = f"{export.kind} {export.index} {export.name!r}"
        if export.kind == "global":
            observe(label, f"global{export.index}", [], (), export.harness_results())
        elif export.kind == "table":
            observe(label + " size", f"table_size{export.index}", [], (), ("i32",))
            observe(label + " nulls", f"table_nulls{export.index}", [], (), ("i64",))
        elif export.kind == "memory":
            memory = externs[export.name]
            contents = bytes(memory.read(store, 0, memory.data_len(store)))
            outcome.memories[export.name] = contents
            digest = hashlib.sha256(contents).hexdigest()[:16]
            events.append(f"{label}: {len(contents)} bytes, sha256 {digest}")
    return outcome


def first_difference(expected: Outcome, actual: Outcome) -> str | None:
    """Describe the first event where two outcomes differ, or return None."""
    for position in range(max(len(expected.events), len(actual.events))):
        want = expected.events[position] if position < len(expected.events) else "<none>"
        got = actual.events[position] if position < len(actual.events) else "<none>"
        if want == got:
            continue
        detail = ""
        if want.startswith("memory") and got.startswith("memory"):
            detail = _memory_difference(expected, actual)
        for name, outcome in (("expected", expected), ("actual", actual)):
            if position in outcome.details:
                detail += f"\n  {name} error: {outcome.details[position]}"
        return f"event {position}:\n  expected {want}\n  actual   {got}{detail}"
    return None


def _memory_difference(expected: Outcome, actual: Outcome) -> str:
    for name, want in expected.memories.items():
        got = actual.memories.get(name, b"")
        if want == got:
            continue
        for offset in range(min(len(want), len(got))):
            if want[offset] != got[offset]:
                return (
                    f"\n  first differing byte at 0x{offset:x}: expected "
                    f"{want[offset:offset + 8].hex()} actual {got[offset:offset + 8].hex()}"
                )
        return f"\n  lengths differ: expected {len(want)} actual {len(got)}"
    return ""
