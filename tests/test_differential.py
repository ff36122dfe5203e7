"""Differential tests: wasmtee against the wasmtime PyPI package.

Each seed names a module that `wasm-tools smith` generates within
WebAssembly 2.0 without SIMD (tests/difftest/generate.py lists the flags).
Both runtimes instantiate it, call every exported function with the same
deterministic arguments, and then read every exported global, table and the
memory. Results and state compare bit-exact (smith canonicalizes NaNs, the
only nondeterminism the spec allows here), and traps compare by kind.
The six benchmark programs in bench/wasm (C compiled for WASI) run on both
as well, at workload size 1, and must print the same checksum.

WASMTEE_DIFF_COUNT sets the number of seeds (default 150) and
WASMTEE_DIFF_FIRST_SEED the first one (default 0). The llvm tier runs the
first WASMTEE_DIFF_LLVM_COUNT of them (default: half). To reproduce one
failure: WASMTEE_DIFF_FIRST_SEED=<seed> WASMTEE_DIFF_COUNT=1
WASMTEE_DIFF_LLVM_COUNT=1. A tier runs
when it can instantiate a module. A tier that marks itself incomplete runs
only with WASMTEE_DIFF_INCOMPLETE_TIERS=1.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from difftest.generate import (
    VALIDATE_FEATURES,
    ToolMissing,
    generate_module,
    print_module,
    wasm_tools,
)
from difftest.harness import build_harness, build_harness_text
from difftest.sides import (
    Outcome,
    Side,
    WasmteeSide,
    WasmtimeSide,
    describe_exports,
    first_difference,
    record_outcome,
    wasmtee_tier_available,
)

wasmtime = pytest.importorskip("wasmtime")

try:
    wasm_tools()
except ToolMissing as exc:
    pytest.skip(str(exc), allow_module_level=True)


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, str(default))
    try:
        value = int(text)
    except ValueError:
        raise pytest.UsageError(f"{name} must be an integer, got {text!r}") from None
    if value < 0:
        raise pytest.UsageError(f"{name} must not be negative, got {value}")
    return value


FIRST_SEED = _env_int("WASMTEE_DIFF_FIRST_SEED", 0)
SEED_COUNT = _env_int("WASMTEE_DIFF_COUNT", 150)
# The llvm tier compiles every module to machine code, which costs more than
# the python tier's lazy translation, so by default it gets the first half of
# the seeds to keep the test within about 3 minutes.
LLVM_SEED_COUNT = _env_int("WASMTEE_DIFF_LLVM_COUNT", SEED_COUNT // 2)
CASES = [
    (seed, tier)
    for tier, count in (("python", SEED_COUNT), ("llvm", LLVM_SEED_COUNT))
    for seed in range(FIRST_SEED, FIRST_SEED + min(count, SEED_COUNT))
]


@functools.cache
def module_for(seed: int) -> bytes:
    return generate_module(seed)


@functools.cache
def side(name: str) -> Side:
    """Return the shared side for "wasmtime" or a wasmtee tier name."""
    return WasmtimeSide() if name == "wasmtime" else WasmteeSide(name)


@functools.cache
def reference_outcome(seed: int) -> Outcome:
    module = module_for(seed)
    return record_outcome(side("wasmtime"), seed, module, describe_exports(module))


@functools.cache
def tier_unavailable(tier: str) -> str | None:
    return wasmtee_tier_available(tier)


# ---- the infrastructure itself -------------------------------------------


def test_generator_is_deterministic():
    assert module_for(7) == generate_module(7)
    assert generate_module(7) != generate_module(8)


def test_generated_modules_have_functions():
    for seed in range(10):
        exports = describe_exports(module_for(seed))
        functions = [e for e in exports if e.kind == "func"]
        assert functions, f"seed {seed} exports no function"


@pytest.mark.parametrize("seed", range(5))
def test_harness_validates(seed):
    exports = describe_exports(module_for(seed))
    harness = build_harness(exports)
    proc = subprocess.run(
        [wasm_tools(), "validate", "--features", VALIDATE_FEATURES, "-"],
        input=harness,
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 0, (
        proc.stderr.decode() + "\n" + build_harness_text(exports)
    )


def test_harness_passes_float_bits_exactly():
    # A signaling NaN survives the harness in both directions, which a
    # Python float passed through wasmtime-py would not.
    module = wasmtime.wat2wasm(
        '(module (func (export "id") (param f32 f64) (result f64 f32)'
        " local.get 1 local.get 0))"
    )
    exports = describe_exports(module)
    side = WasmtimeSide()
    outcome = record_outcome(side, 0, module, exports)
    calls = [e for e in outcome.events if e.startswith("call")]
    assert len(calls) == 2
    for event in calls:
        arguments, results = event.split(" -> ")
        f32_bits, f64_bits = arguments.split("(")[1].rstrip(")").split(", ")
        assert results == f"({f64_bits}, {f32_bits})"


def test_wasmtime_reference_is_repeatable():
    # Differential results mean nothing if one runtime disagrees with itself.
    for seed in range(10):
        again = record_outcome(
            WasmtimeSide(), seed, module_for(seed), describe_exports(module_for(seed))
        )
        assert first_difference(reference_outcome(seed), again) is None


def test_reference_exercises_values_and_traps():
    events = [e for seed in range(20) for e in reference_outcome(seed).events]
    calls = [e for e in events if e.startswith("call")]
    assert any("-> (" in e for e in calls), "no call returned normally"
    assert any("-> trap: " in e for e in calls), "no call trapped"
    assert not [e for e in events if "error:" in e]


def test_first_difference_names_both_events():
    expected = Outcome(["instantiate: ok", "call 0 'f' () -> (0x1,)"])
    actual = Outcome(["instantiate: ok", "call 0 'f' () -> trap: unreachable"])
    message = first_difference(expected, actual)
    assert message is not None
    assert "expected call 0 'f' () -> (0x1,)" in message
    assert "actual   call 0 'f' () -> trap: unreachable" in message
    assert first_difference(expected, Outcome(list(expected.events))) is None


def test_first_difference_names_memory_offset():
    expected = Outcome(["memory 0 'm': 4 bytes, sha256 a"], {"m": b"\0\0\0\0"})
    actual = Outcome(["memory 0 'm': 4 bytes, sha256 b"], {"m": b"\0\0\7\0"})
    message = first_difference(expected, actual)
    assert message is not None
    assert "first differing byte at 0x2" in message


def test_first_difference_shows_error_detail():
    expected = Outcome(["instantiate: ok", "call 0 'f' () -> (0x1,)"])
    actual = Outcome(["instantiate: ok"])
    actual.add_error("call 0 'f' () -> ", side("wasmtime"), ValueError("boom"))
    message = first_difference(expected, actual)
    assert message is not None
    assert "actual   call 0 'f' () -> error: ValueError" in message
    assert "actual error: ValueError: boom" in message


def test_first_difference_notices_missing_events():
    expected = Outcome(["instantiate: ok", "global 1 'g' -> (0x0,)"])
    actual = Outcome(["instantiate: ok"])
    message = first_difference(expected, actual)
    assert message is not None
    assert "<none>" in message


# ---- trap kinds: one hand-written module per kind -------------------------

# (expected trap message, function body, extra module fields). Each module
# exports "run" with no parameters. The expected class is the spec test
# suite's message for the fault. The one exception is an out-of-range
# call_indirect index, which counts as a table access out of bounds (see
# TRAP_ALIASES).
TRAP_CASES = {
    "unreachable": ("unreachable", "unreachable", ""),
    "div_by_zero": ("integer divide by zero", "i32.const 1 i32.const 0 i32.div_u drop", ""),
    "overflow": (
        "integer overflow", "i32.const 0x80000000 i32.const -1 i32.div_s drop", ""
    ),
    "bad_conversion": (
        "invalid conversion to integer", "f32.const nan i32.trunc_f32_s drop", ""
    ),
    "load_out_of_bounds": (
        "out of bounds memory access", "i32.const 65533 i32.load drop", "(memory 1)"
    ),
    "fill_out_of_bounds": (
        "out of bounds memory access",
        "i32.const 65535 i32.const 0 i32.const 2 memory.fill",
        "(memory 1)",
    ),
    "table_get_out_of_bounds": (
        "out of bounds table access", "i32.const 1 table.get 0 drop", "(table 1 funcref)"
    ),
    "call_indirect_out_of_range": (
        "out of bounds table access",
        "i32.const 1 call_indirect (type $void)",
        "(type $void (func)) (table 1 funcref)",
    ),
    "call_indirect_null": (
        "uninitialized element",
        "i32.const 0 call_indirect (type $void)",
        "(type $void (func)) (table 1 funcref)",
    ),
    "call_indirect_type_mismatch": (
        "indirect call type mismatch",
        "i32.const 0 call_indirect (type $void)",
        "(type $void (func)) (table 1 funcref) (func $takes_i32 (param i32))"
        " (elem (i32.const 0) $takes_i32)",
    ),
    "stack_exhausted": ("call stack exhausted", "call $run", ""),
}


@functools.cache
def trap_module(case: str) -> bytes:
    _, body, fields = TRAP_CASES[case]
    return wasmtime.wat2wasm(f'(module {fields} (func $run (export "run") {body}))')


@pytest.mark.parametrize("case", sorted(TRAP_CASES))
def test_wasmtime_trap_kind(case):
    module = trap_module(case)
    outcome = record_outcome(side("wasmtime"), 0, module, describe_exports(module))
    expected_trap = TRAP_CASES[case][0]
    assert outcome.events[0] == "instantiate: ok"
    calls = [e for e in outcome.events if e.startswith("call")]
    assert len(calls) == 2
    for event in calls:
        assert event.endswith(f"-> trap: {expected_trap}")


@pytest.mark.parametrize("tier", ["python", "llvm"])
@pytest.mark.parametrize("case", sorted(TRAP_CASES))
def test_wasmtee_trap_kind(case, tier):
    reason = tier_unavailable(tier)
    if reason:
        pytest.skip(reason)
    module = trap_module(case)
    exports = describe_exports(module)
    expected = record_outcome(side("wasmtime"), 0, module, exports)
    actual = record_outcome(side(tier), 0, module, exports)
    difference = first_difference(expected, actual)
    assert difference is None, f"{case} on the {tier} tier: {difference}"


# ---- wasmtee against wasmtime --------------------------------------------


@pytest.mark.parametrize(("seed", "tier"), CASES)
def test_wasmtee_matches_wasmtime(seed, tier, tmp_path):
    reason = tier_unavailable(tier)
    if reason:
        pytest.skip(reason)
    module = module_for(seed)
    exports = describe_exports(module)
    actual = record_outcome(side(tier), seed, module, exports)
    difference = first_difference(reference_outcome(seed), actual)
    if difference:
        saved = tmp_path / f"seed-{seed}.wasm"
        saved.write_bytes(module)
        pytest.fail(
            f"seed {seed}: wasmtee ({tier} tier) differs from wasmtime at "
            f"{difference}\nmodule saved as {saved}; its start:\n"
            f"{print_module(module)[:4000]}",
            pytrace=False,
        )


# ---- the benchmark programs: real C code through WASI --------------------

BENCH_DIR = Path(__file__).resolve().parent.parent / "bench"
BENCH_PROGRAMS = sorted(p.stem for p in (BENCH_DIR / "wasm").glob("*.wasm"))


@functools.cache
def bench_runtimes() -> Any:
    """Import bench/runtimes.py, which contains the WASI runners of the benchmarks."""
    spec = importlib.util.spec_from_file_location(
        "bench_runtimes", BENCH_DIR / "runtimes.py"
    )
    module = importlib.util.module_from_spec(spec)
    # dataclasses looks the module up in sys.modules while it runs.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_bench_programs_present():
    assert len(BENCH_PROGRAMS) == 6, BENCH_PROGRAMS


@pytest.mark.parametrize("tier", ["python", "llvm"])
@pytest.mark.parametrize("program", BENCH_PROGRAMS)
def test_bench_program_matches_wasmtime(program, tier):
    reason = tier_unavailable(tier)
    if reason:
        pytest.skip(reason)
    runtimes = bench_runtimes()
    try:
        wasmtee_run = runtimes.make_runner(f"wasmtee-{tier}")
    except runtimes.RuntimeUnavailable as exc:
        pytest.skip(str(exc))
    path = BENCH_DIR / "wasm" / f"{program}.wasm"
    argv = [program, "1"]
    expected_stdout, expected_status, _, _ = runtimes.run_wasmtime(path, argv)
    stdout, status, _, _ = wasmtee_run(path, argv)
    assert status == expected_status
    assert stdout == expected_stdout
