"""Ctrl-C (a real SIGINT) stops `wasmtee run` on every tier and for AOT artifacts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# A WASI command that prints "start" and then loops forever.
SPIN_WAT = """
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "start\\n")
  (func (export "_start") (local i64)
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 6))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (loop $spin
      (local.set 0 (i64.add (local.get 0) (i64.const 1)))
      (br $spin))))
"""


def llvm_available() -> bool:
    try:
        import llvmlite  # noqa: F401
    except ImportError:
        return False
    return True


needs_llvm = pytest.mark.skipif(not llvm_available(), reason="llvmlite is not installed")


@pytest.fixture(scope="module")
def spin_module(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("interrupt") / "spin.wat"
    path.write_text(SPIN_WAT)
    return path


def start(*args: str) -> subprocess.Popen[bytes]:
    """Start `wasmtee ARGS` and wait until the guest has printed "start"."""
    process = subprocess.Popen([sys.executable, "-m", "wasmtee", *args], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "PYTHONPATH": str(REPO)})
    assert process.stdout is not None
    first_line = process.stdout.readline()
    assert first_line == b"start\n", process.stderr.read() if process.stderr else b""
    return process


def interrupt_and_wait(process: subprocess.Popen[bytes]) -> tuple[int, bytes]:
    process.send_signal(signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail("the process still ran 30 s after SIGINT")
    return process.returncode, stderr


@pytest.mark.parametrize("tier", [
    "python",
    pytest.param("llvm", marks=needs_llvm),
    pytest.param("auto", marks=needs_llvm),
])
@pytest.mark.parametrize("timeout", [[], ["--timeout", "300"]])
def test_sigint_stops_spinning_guest(spin_module, tier, timeout):
    process = start("run", "--tier", tier, *timeout, str(spin_module))
    status, stderr = interrupt_and_wait(process)
    assert status == 130, stderr
    assert b"wasmtee run: interrupted" in stderr
    assert b"Traceback" not in stderr
    assert b"trap" not in stderr


@needs_llvm
@pytest.mark.parametrize("compile_options", [[], ["--interruptible"]])
def test_sigint_stops_aot_artifact(spin_module, tmp_path, compile_options):
    artifact = tmp_path / "spin.cwasm"
    compiled = subprocess.run([sys.executable, "-m", "wasmtee", "compile", "--no-progress",
                               *compile_options, str(spin_module), "-o", str(artifact)],
                              cwd=REPO, capture_output=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    assert compiled.returncode == 0, compiled.stderr
    process = start("run", str(artifact))
    status, stderr = interrupt_and_wait(process)
    assert status == 130, stderr
    assert b"wasmtee run: interrupted" in stderr
