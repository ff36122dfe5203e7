"""`wasmtee run` and `wasmtee inspect` from the command line."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_wasi_programs import TIER, needs_engine
from wasmtee.cli.run import parse_invoke_args, parse_size
from wasmtee.errors import UsageError
from wasmtee.model import FuncType, ValType

REPO = Path(__file__).resolve().parent.parent
HELLO = REPO / "examples" / "wasi" / "hello.wasm"


def wasmtee(*args: str, stdin: bytes = b"", timeout: float = 120) -> subprocess.CompletedProcess:
    if args and args[0] == "run" and "--tier" not in args:
        args = ("run", "--tier", TIER, *args[1:])
    return subprocess.run([sys.executable, "-m", "wasmtee", *args], input=stdin,
                          capture_output=True, timeout=timeout, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def cli(*args: str) -> subprocess.CompletedProcess:
    """Run the command line in this process (for commands that run no wasm code)."""
    import contextlib
    import io

    from wasmtee.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(list(args))
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 2
    return subprocess.CompletedProcess(args, status, out.getvalue().encode(),
                                       err.getvalue().encode())


def test_help_documents_every_option():
    proc = cli("run", "--help")
    assert proc.returncode == 0
    text = proc.stdout.decode()
    for option in ("--dir", "--dir-ro", "--env", "--invoke", "--fuel", "--max-memory",
                   "--timeout", "--tier", "--argv0"):
        assert option in text
    assert "SECONDS" in text
    assert "bytes" in text


@pytest.mark.parametrize("args", [
    ["run", "--fuel", "lots", "x.wasm"],
    ["run", "--max-memory", "12Q", "x.wasm"],
    ["run", "--timeout", "-1", "x.wasm"],
    ["run", "--tier", "jit", "x.wasm"],
    ["run"],
    ["run", "--dir", "/definitely/not/here", str(HELLO)],
    ["run", "--env", "=x", str(HELLO)],
    ["run", "missing-module.wasm"],
    ["inspect", "missing-module.wasm"],
])
def test_bad_arguments_exit_2(args):
    proc = cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert b"Traceback" not in proc.stderr
    assert b"error" in proc.stderr


def test_parse_size_units():
    assert parse_size("65536") == 65536
    assert parse_size("64K") == 65536
    assert parse_size("16MiB") == 16 << 20
    assert parse_size("1g") == 1 << 30
    with pytest.raises(argparse.ArgumentTypeError):
        parse_size("1.5M")


def test_parse_invoke_args_by_type():
    ty = FuncType((ValType.I32, ValType.I64, ValType.F32, ValType.F64), ())
    assert parse_invoke_args(ty, ["-1", "0x10", "1.5", "nan"])[:3] == [-1, 16, 1.5]
    assert parse_invoke_args(ty, ["4294967295", "1", "0", "0"])[0] == -1
    with pytest.raises(UsageError):
        parse_invoke_args(ty, ["4294967296", "1", "0", "0"])
    with pytest.raises(UsageError):
        parse_invoke_args(ty, ["1"])
    with pytest.raises(UsageError):
        parse_invoke_args(ty, ["x", "1", "0", "0"])


def test_inspect_reports_wasi_and_features():
    proc = cli("inspect", str(REPO / "examples" / "wasi" / "copy.wasm"))
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode()
    assert "WASI: wasi_snapshot_preview1" in text
    assert "kind: command (_start)" in text
    assert "wasi_snapshot_preview1.path_open: func [i32 i32 i32 i32 i32 i64 i64 i32 i32] -> [i32]" in text
    assert "memory 0: min 257 max unbounded pages" in text
    assert "features: bulk memory, sign-extension" in text


def test_inspect_wat_reactor(tmp_path):
    wat = tmp_path / "r.wat"
    wat.write_text('(module (memory (export "memory") 1 2) (func (export "_initialize"))'
                   ' (func (export "pair") (result i32 i64) i32.const 1 i64.const 2))')
    proc = cli("inspect", str(wat))
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode()
    assert "kind: reactor (_initialize)" in text
    assert "pair: func [] -> [i32 i64]" in text
    assert "features: multi-value" in text


def test_inspect_malformed_module(tmp_path):
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"\0asm\x01\0\0\0\x01\xff")
    proc = cli("inspect", str(bad))
    assert proc.returncode == 1
    assert b"Traceback" not in proc.stderr


WAT_PROGRAMS = """
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "ready\\n")
  (global $initialized (mut i32) (i32.const 0))
  (func (export "_initialize") (global.set $initialized (i32.const 1)))
  (func (export "initialized") (result i32) (global.get $initialized))
  (func (export "add") (param i64 i64) (result i64) (i64.add (local.get 0) (local.get 1)))
  (func (export "fdiv") (param f64 f64) (result f64) (f64.div (local.get 0) (local.get 1)))
  (func (export "pair") (param i32) (result i32 i32) (local.get 0) (i32.const -1))
  (func (export "say")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 6))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "quit") (param i32) (call $exit (local.get 0)))
  (func $inner (unreachable))
  (func $outer (call $inner))
  (func (export "crash") (call $outer))
  (func (export "spin") (loop $l (br $l)))
)
"""


@pytest.fixture
def program(tmp_path):
    path = tmp_path / "prog.wat"
    path.write_text(WAT_PROGRAMS)
    return str(path)


@needs_engine
def test_hello_command():
    proc = wasmtee("run", str(HELLO))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"Hello, world!\n"


@needs_engine
def test_invoke_prints_results(program):
    assert wasmtee("run", "--invoke", "add", program, "-5", "7").stdout == b"2\n"
    assert wasmtee("run", "--invoke", "fdiv", program, "1", "4").stdout == b"0.25\n"
    assert wasmtee("run", "--invoke", "pair", program, "9").stdout == b"9\n-1\n"
    assert wasmtee("run", "--invoke", "initialized", program).stdout == b"1\n"
    assert wasmtee("run", "--invoke", "say", program).stdout == b"ready\n"


@needs_engine
def test_invoke_errors(program):
    assert wasmtee("run", "--invoke", "nope", program).returncode == 2
    assert wasmtee("run", "--invoke", "add", program, "1").returncode == 2
    assert wasmtee("run", program).returncode == 2


@needs_engine
def test_exit_code_passes_through(program):
    assert wasmtee("run", "--invoke", "quit", program, "42").returncode == 42


@needs_engine
def test_trap_prints_code_and_backtrace(program):
    proc = wasmtee("run", "--invoke", "crash", program)
    assert proc.returncode == 134
    assert b"trap: unreachable" in proc.stderr
    assert b"Traceback" not in proc.stderr


@needs_engine
def test_fuel_and_timeout_stop_loops(program):
    proc = wasmtee("run", "--fuel", "1000", "--invoke", "spin", program)
    assert proc.returncode == 134
    assert b"all fuel consumed" in proc.stderr
    proc = wasmtee("run", "--timeout", "0.5", "--invoke", "spin", program)
    assert proc.returncode == 134
    assert b"interrupted" in proc.stderr


@needs_engine
def test_max_memory_rejects_large_minimum(tmp_path):
    wat = tmp_path / "big.wat"
    wat.write_text('(module (memory 4) (func (export "_start")))')
    assert wasmtee("run", "--max-memory", "64K", str(wat)).returncode == 1
    assert wasmtee("run", "--max-memory", "256K", str(wat)).returncode == 0


def test_trap_backtrace_lists_frames(capsys):
    from wasmtee.cli.run import _print_trap
    from wasmtee.errors import Frame, Trap, TrapCode

    frames = [Frame(1, "inner", None, 0x2a), Frame(2, "outer", "app", None)]
    _print_trap(Trap(TrapCode.UNREACHABLE, frames=frames))
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "wasmtee run: trap: unreachable"
    assert lines[1] == "wasm backtrace:"
    assert lines[2] == "  0: inner @ 0x2a"
    assert lines[3] == "  1: app!outer"
