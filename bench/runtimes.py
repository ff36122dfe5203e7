"""Run one benchmark on one runtime and print its timings as JSON.

run.py starts this script once per (runtime, benchmark, size), so every
measurement gets a fresh interpreter and one runtime cannot warm or slow down
another. Usage:

    python3 bench/runtimes.py RUNTIME WASM SIZE [--repetitions N]

RUNTIME is one of `wasmtime`, `pywasm`, `wasmtee-python` or `wasmtee-llvm`.
The output is one JSON object: `stdout` (what the program printed, from the
first repetition), `compile` and `run` (lists of seconds, one per
repetition), and `exit_code`. `compile` covers decoding, validation,
compilation and instantiation; `run` covers the call of `_start`. Lazy
compilation that happens during `_start` (the wasmtee python tier translates
each function on its first call) is part of `run`.

Each repetition loads the module again into a new store, so repetitions do
not share compiled code or memory.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO_ROOT = Path(__file__).resolve().parent.parent

RUNTIMES = ("wasmtime", "pywasm", "wasmtee-python", "wasmtee-llvm")


class RuntimeUnavailable(Exception):
    """The runtime cannot run here (not installed, or the tier is missing)."""


@dataclass
class Measurement:
    stdout: str = ""
    exit_code: int = 0
    compile: list[float] = field(default_factory=list)
    run: list[float] = field(default_factory=list)


# A runner loads, instantiates and runs the module once with argv, and
# returns (stdout, exit code, compile seconds, run seconds).
Runner = Callable[[Path, list[str]], tuple[str, int, float, float]]


def run_wasmtime(path: Path, argv: list[str]) -> tuple[str, int, float, float]:
    import wasmtime

    with tempfile.TemporaryDirectory() as tmp:
        out_path = os.path.join(tmp, "stdout")
        start = time.perf_counter()
        engine = wasmtime.Engine()
        module = wasmtime.Module.from_file(engine, str(path))
        store = wasmtime.Store(engine)
        wasi = wasmtime.WasiConfig()
        wasi.argv = argv
        wasi.stdout_file = out_path
        store.set_wasi(wasi)
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        instance = linker.instantiate(store, module)
        entry = instance.exports(store)["_start"]
        compiled = time.perf_counter()
        exit_code = 0
        try:
            entry(store)
        except wasmtime.ExitTrap as exc:
            exit_code = exc.code
        finished = time.perf_counter()
        # Drop the store so that wasmtime closes the stdout file.
        del entry, instance, store
        stdout = Path(out_path).read_text()
    return stdout, exit_code, compiled - start, finished - compiled


def run_pywasm(path: Path, argv: list[str]) -> tuple[str, int, float, float]:
    import pywasm

    start = time.perf_counter()
    runtime = pywasm.core.Runtime()
    wasi = pywasm.wasi.Preview1(argv, {}, {})
    # pywasm writes fds 0-2 to a pipe object instead of the host fd when one
    # is set (Preview1.help_pipe).
    wasi.fd[1].pipe = io.BytesIO()
    wasi.bind(runtime)
    instance = runtime.instance_from_file(str(path))
    compiled = time.perf_counter()
    exit_code = wasi.main(runtime, instance)
    finished = time.perf_counter()
    stdout = wasi.fd[1].pipe.getvalue().decode()
    return stdout, exit_code, compiled - start, finished - compiled


def _wasmtee_api_runner(tier: str) -> Runner:
    """Return a runner that drives wasmtee through its embedding API and wasmtee.wasi."""
    import wasmtee
    from wasmtee.wasi import WasiConfig, add_to_linker

    def run(path: Path, argv: list[str]) -> tuple[str, int, float, float]:
        stdout = io.BytesIO()
        start = time.perf_counter()
        engine = wasmtee.Engine(wasmtee.Config(tier=tier))
        module = wasmtee.Module.from_file(engine, str(path))
        store = wasmtee.Store(engine)
        linker = wasmtee.Linker(engine)
        context = add_to_linker(linker, store, WasiConfig(argv=argv, stdout=stdout))
        try:
            instance = linker.instantiate(store, module)
            entry = instance.exports(store)["_start"]
            compiled = time.perf_counter()
            exit_code = 0
            try:
                entry(store)
            except wasmtee.WasiExit as exc:
                exit_code = exc.code
            finished = time.perf_counter()
        finally:
            context.close()
        return stdout.getvalue().decode(), exit_code, compiled - start, finished - compiled

    return run


def make_wasmtee_runner(tier: str) -> Runner:
    """Return a runner for one wasmtee tier, or raise RuntimeUnavailable."""
    sys.path.insert(0, str(REPO_ROOT))
    try:
        import wasmtee
        from wasmtee.runtime.tiers import get_tier

        tier_object = get_tier(tier)
    except (ImportError, wasmtee.WasmteeError) as exc:
        raise RuntimeUnavailable(f"the {tier} tier is unavailable: {exc}") from None
    # A tier still being built sets `automatic = False` (see wasmtee.runtime.tiers).
    incomplete = not getattr(tier_object, "automatic", True)
    if incomplete and os.environ.get("WASMTEE_BENCH_INCOMPLETE_TIERS") != "1":
        raise RuntimeUnavailable(
            f"the {tier} tier marks itself incomplete; set "
            "WASMTEE_BENCH_INCOMPLETE_TIERS=1 to measure it anyway"
        )
    try:
        import wasmtee.wasi  # noqa: F401
    except ImportError as exc:
        raise RuntimeUnavailable(f"wasmtee.wasi does not import: {exc}") from None
    return _wasmtee_api_runner(tier)


def make_runner(runtime: str) -> Runner:
    if runtime == "wasmtime":
        try:
            import wasmtime  # noqa: F401
        except ImportError as exc:
            raise RuntimeUnavailable(f"wasmtime is not installed: {exc}") from None
        return run_wasmtime
    if runtime == "pywasm":
        try:
            import pywasm  # noqa: F401
        except ImportError as exc:
            raise RuntimeUnavailable(f"pywasm is not installed: {exc}") from None
        return run_pywasm
    if runtime.startswith("wasmtee-"):
        return make_wasmtee_runner(runtime.removeprefix("wasmtee-"))
    raise RuntimeUnavailable(f"unknown runtime: {runtime}")


def measure(runtime: str, path: Path, size: int, repetitions: int) -> Measurement:
    runner = make_runner(runtime)
    argv = [path.stem, str(size)]
    result = Measurement()
    for repetition in range(repetitions):
        stdout, exit_code, compile_seconds, run_seconds = runner(path, argv)
        if repetition == 0:
            result.stdout = stdout
            result.exit_code = exit_code
        result.compile.append(compile_seconds)
        result.run.append(run_seconds)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runtime", choices=RUNTIMES)
    parser.add_argument("wasm", type=Path, help="the benchmark's .wasm file")
    parser.add_argument("size", type=int, help="the workload size passed as argv[1]")
    parser.add_argument(
        "--repetitions", type=int, default=1, help="runs to time (default: 1)"
    )
    args = parser.parse_args()
    if not args.wasm.is_file():
        parser.error(f"no such file: {args.wasm}")
    if args.size <= 0 or args.repetitions <= 0:
        parser.error("size and --repetitions must be positive integers")
    try:
        result = measure(args.runtime, args.wasm, args.size, args.repetitions)
    except RuntimeUnavailable as exc:
        json.dump({"unavailable": str(exc)}, sys.stdout)
        return 0
    json.dump(result.__dict__, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
