"""Tests for the WAST runner: the project's own scripts, result matching and the CLI."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from wasmtee.cli import wast as wast_command
from wasmtee.model import ValType
from wasmtee.script.results import ExternRef, matches
from wasmtee.script.runner import run_script_file
from wasmtee.text.wast import Expected
from wasmtee.values import f32_from_bits, f64_from_bits

WAST_DIR = Path(__file__).parent / "wast"
SCRIPTS = sorted(WAST_DIR.glob("*.wast"))


def test_project_scripts_exist():
    assert len(SCRIPTS) >= 8


@pytest.mark.parametrize("tier", ["python", "llvm"])
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_project_script_passes(script, tier):
    summary = run_script_file(script, tier=tier)
    failures = "\n".join(str(failure) for failure in summary.failures)
    assert summary.failed == 0, failures
    assert summary.skipped == 0, dict(summary.skip_reasons)
    assert summary.passed >= 8


# Result matching ---------------------------------------------------------------------


def test_float_results_compare_bits():
    expected = Expected("value", ValType.F32, 0x7FA0_0001)
    assert matches(expected, ValType.F32, f32_from_bits(0x7FA0_0001))
    assert not matches(expected, ValType.F32, f32_from_bits(0x7FE0_0001))
    zero = Expected("value", ValType.F64, 0)
    assert matches(zero, ValType.F64, 0.0)
    assert not matches(zero, ValType.F64, -0.0)


def test_nan_classes():
    canonical = Expected("nan:canonical", ValType.F32)
    arithmetic = Expected("nan:arithmetic", ValType.F64)
    assert matches(canonical, ValType.F32, f32_from_bits(0xFFC0_0000))
    assert not matches(canonical, ValType.F32, f32_from_bits(0x7FC0_0001))
    assert not matches(canonical, ValType.F32, 1.0)
    assert matches(arithmetic, ValType.F64, f64_from_bits(0x7FF8_0000_0000_0001))
    assert not matches(arithmetic, ValType.F64, f64_from_bits(0x7FF0_0000_0000_0001))


def test_reference_results():
    assert matches(Expected("ref.null", ValType.FUNCREF), ValType.FUNCREF, None)
    assert not matches(Expected("ref.null", ValType.FUNCREF), ValType.FUNCREF, object())
    assert matches(
        Expected("ref.extern", ValType.EXTERNREF, 3), ValType.EXTERNREF, ExternRef(3)
    )
    assert not matches(
        Expected("ref.extern", ValType.EXTERNREF, 3), ValType.EXTERNREF, ExternRef(4)
    )
    assert matches(Expected("ref.func", ValType.FUNCREF), ValType.FUNCREF, object())
    assert not matches(Expected("ref.func", ValType.FUNCREF), ValType.FUNCREF, None)


def test_either_result():
    either = Expected(
        "either",
        alternatives=[
            Expected("value", ValType.I32, 1),
            Expected("value", ValType.I32, 2),
        ],
    )
    assert matches(either, ValType.I32, 2)
    assert not matches(either, ValType.I32, 3)


# Runner behaviour ----------------------------------------------------------------------


def run_text(tmp_path, text):
    path = tmp_path / "case.wast"
    path.write_text(text)
    return run_script_file(path)


def test_wrong_result_is_reported_with_line(tmp_path):
    summary = run_text(
        tmp_path,
        """(module (func (export "f") (result i32) (i32.const 1)))
(assert_return (invoke "f") (i32.const 1))
(assert_return (invoke "f") (i32.const 2))
""",
    )
    assert (summary.passed, summary.failed, summary.skipped) == (1, 1, 0)
    failure = summary.failures[0]
    assert failure.line == 3
    assert "expected i32:2" in failure.reason


def test_trap_message_must_be_a_prefix(tmp_path):
    summary = run_text(
        tmp_path,
        """(module (func (export "f") (unreachable)))
(assert_trap (invoke "f") "unreachable")
(assert_trap (invoke "f") "integer overflow")
""",
    )
    assert (summary.passed, summary.failed) == (1, 1)


def test_broken_module_fails_its_assertions(tmp_path):
    summary = run_text(
        tmp_path,
        """(module (func (export "f") (result i32) (i64.const 1)))
(assert_return (invoke "f") (i32.const 1))
""",
    )
    assert summary.failed == 2
    assert "failed to load" in summary.failures[1].reason


def test_unsupported_module_skips_dependents(tmp_path):
    summary = run_text(
        tmp_path,
        """(module (func (export "f") (drop (v128.const i32x4 0 0 0 0))))
(assert_return (invoke "f"))
(assert_return (invoke "f"))
(module (func (export "g")))
(assert_return (invoke "g"))
""",
    )
    assert (summary.passed, summary.failed, summary.skipped) == (1, 0, 3)
    assert summary.skip_reasons["unsupported feature: simd"] == 3


def test_skipped_instantiation_skips_modified_imports(tmp_path):
    summary = run_text(
        tmp_path,
        """(module $A (memory (export "m") 1)
  (func (export "peek") (result i32) (i32.load8_u (i32.const 0))))
(register "A" $A)
(assert_trap (module (memory (import "A" "m") 1) (memory 1)
  (data (memory 0) (i32.const 0) "x") (data (memory 1) (i32.const 65536) "y"))
  "out of bounds memory access")
(assert_return (invoke $A "peek") (i32.const 0x78))
""",
    )
    assert (summary.passed, summary.failed, summary.skipped) == (0, 0, 2)


def test_unparsable_module_skips_modified_imports(tmp_path):
    summary = run_text(
        tmp_path,
        """(module $A (memory (export "m") 1)
  (func (export "peek") (result i32) (i32.load8_u (i32.const 0))))
(register "A" $A)
(module (memory (import "A" "m") 1) (data (i32.const 0) "x")
  (func (drop (v128.const i64x2 0 0))))
(assert_return (invoke $A "peek") (i32.const 0x78))
""",
    )
    assert (summary.passed, summary.failed, summary.skipped) == (0, 0, 2)


def test_module_instance_registers_and_runs(tmp_path):
    summary = run_text(
        tmp_path,
        """(module definition $D (func (export "f")))
(module instance $I $D)
(register "I" $I)
(assert_return (invoke $I "f"))
""",
    )
    assert (summary.passed, summary.failed, summary.skipped) == (1, 0, 0)


def test_malformed_script_counts_one_failure(tmp_path):
    summary = run_text(tmp_path, "(module (func)")
    assert summary.failed == 1


def test_unreadable_script_counts_one_failure(tmp_path):
    missing = run_script_file(tmp_path / "missing.wast")
    assert missing.failed == 1
    assert "cannot read" in missing.failures[0].reason
    binary = tmp_path / "binary.wast"
    binary.write_bytes(b"\xff(module)")
    assert run_script_file(binary).failed == 1


def test_accepted_malformed_module_fails(tmp_path):
    summary = run_text(tmp_path, '(assert_malformed (module quote "(func)") "x")\n')
    assert summary.failed == 1


# Command line --------------------------------------------------------------------------


def cli_main(argv):
    """Run the wast subcommand alone, so other subcommands' imports cannot interfere."""
    parser = argparse.ArgumentParser(prog="wasmtee")
    wast_command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.handler(args)


def test_cli_summary_and_exit_status(tmp_path, capsys):
    good = tmp_path / "good.wast"
    good.write_text(
        '(module (func (export "f")))\n(assert_return (invoke "f"))\n'
        '(assert_return (invoke "f") (v128.const i64x2 0 0))\n'
    )
    assert cli_main(["wast", str(good)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "1 passed, 0 failed, 1 skipped"
    assert "skipped 1: unsupported feature: simd" in lines

    bad = tmp_path / "bad.wast"
    bad.write_text(
        '(module (func (export "f")))\n(assert_trap (invoke "f") "unreachable")\n'
    )
    assert cli_main(["wast", str(bad)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "0 passed, 1 failed, 0 skipped"
    assert lines[0].startswith(f"{bad}:2: ")


def test_endless_loop_is_interrupted(tmp_path):
    path = tmp_path / "spin.wast"
    path.write_text(
        '(module (func (export "spin") (loop (br 0)))\n'
        '  (func (export "ok") (result i32) (i32.const 1)))\n'
        '(assert_return (invoke "spin"))\n'
        '(assert_return (invoke "ok") (i32.const 1))\n'
    )
    summary = run_script_file(path, timeout=1.0)
    assert (summary.passed, summary.failed) == (1, 1)
    assert "interrupted" in summary.failures[0].reason


def test_instance_of_unknown_definition_fails(tmp_path):
    summary = run_text(tmp_path, "(module instance $I $Missing)\n(invoke $I \"f\")\n")
    assert summary.failed == 2
    assert "unknown module definition $Missing" in str(summary.failures[0])


def test_instance_of_skipped_definition_skips(tmp_path):
    summary = run_text(
        tmp_path,
        "(module definition $D (func (export \"f\") (result v128) (v128.const i64x2 0 0)))\n"
        "(module instance $I $D)\n(invoke $I \"f\")\n")
    assert summary.failed == 0
    assert summary.skipped == 3
    assert set(summary.skip_reasons) == {"unsupported feature: simd"}
