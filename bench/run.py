"""Time the benchmark programs on wasmtee, wasmtime, pywasm and native code.

Usage: python3 bench/run.py [--repetitions N] [--scale X] [--size NAME=N] ...

Every runtime runs the same .wasm file (bench/wasm/, built by bench/build.sh)
with the same workload size, and the script checks that all of them print the
same checksum. Each program's work grows linearly with its size argument, so

    time(size) = startup + size * per_round

The slow runtimes (pywasm and the wasmtee python tier) run at the base size
S, chosen so that pywasm takes a second or two. At S, native code and
wasmtime finish in micro- to milliseconds, which process start-up and timer
noise would swamp. The fast runtimes (native, wasmtime, the wasmtee llvm tier)
therefore also run at a large size L when they finish S in under 50 ms, and
their time at S is then estimated as
S * (time(L) - time(S)) / (L - S). Every ratio compares the same work, S
rounds, with fixed start-up costs removed from the fast side only. (For the
slow side they are under 1% of the time.)

Times are the minimum over the repetitions. Execution time excludes loading
and compilation, which the second table lists separately.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
WASM_DIR = BENCH_DIR / "wasm"
NATIVE_DIR = BENCH_DIR / "build"

# Base sizes: pywasm 2.2.3 takes 1.3 to 3.5 s of execution on each at these
# sizes on an Intel Xeon (2 cores) with CPython 3.11.
BASE_SIZES = {
    "fib": 20,
    "sieve": 8,
    "nbody": 500,
    "mandelbrot": 32,
    "sort": 8,
    "calls": 10000,
}

SLOW_RUNTIMES = ("pywasm", "wasmtee-python")
# Runtimes that also run at the large size L, unless they need at least
# SLOW_ENOUGH_SECONDS at the base size S.
FAST_RUNTIMES = ("wasmtime", "wasmtee-llvm", "native")
ALL_RUNTIMES = SLOW_RUNTIMES + FAST_RUNTIMES
SLOW_ENOUGH_SECONDS = 0.05


class BenchError(Exception):
    """A benchmark that could not be measured, or whose outputs disagree."""


@dataclass
class Sample:
    """The outcome of one runtime on one benchmark at one size."""

    stdout: str
    compile_seconds: float | None
    run_seconds: float


@dataclass
class Result:
    """Everything measured for one benchmark."""

    name: str
    size: int
    large_size: int | None = None
    # runtime -> Sample at the base size, and at the large size (fast runtimes)
    base: dict[str, Sample] = field(default_factory=dict)
    large: dict[str, Sample] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    # runtime -> why it failed or printed a different checksum
    failures: dict[str, str] = field(default_factory=dict)

    def equal_size_seconds(self, runtime: str) -> float | None:
        """Estimate the execution time of `runtime` at the base size, start-up removed."""
        if runtime not in self.base:
            return None
        base = self.base[runtime].run_seconds
        if runtime in self.large and self.large_size:
            large = self.large[runtime].run_seconds
            slope = (large - base) / (self.large_size - self.size)
            if slope > 0:
                return slope * self.size
        return base


def run_worker(
    runtime: str, wasm: Path, size: int, repetitions: int, timeout: float
) -> Sample | str:
    """Measure one wasm runtime in a fresh interpreter.

    Returns a Sample, or the reason why the runtime is unavailable.
    """
    command = [
        sys.executable,
        str(BENCH_DIR / "runtimes.py"),
        runtime,
        str(wasm),
        str(size),
        "--repetitions",
        str(repetitions),
    ]
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise BenchError(
            f"{runtime} timed out after {timeout:.0f} s on {wasm.name} size {size}"
        ) from None
    if proc.returncode != 0:
        # The last line of a traceback names the exception; rerun
        # bench/runtimes.py by hand for the whole traceback.
        last_line = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise BenchError(f"{runtime} failed on {wasm.name} size {size}: {last_line}")
    data = json.loads(proc.stdout)
    if "unavailable" in data:
        return data["unavailable"]
    if data["exit_code"] != 0:
        raise BenchError(
            f"{runtime} exited with status {data['exit_code']} on {wasm.name}"
        )
    return Sample(data["stdout"], min(data["compile"]), min(data["run"]))


def run_native(name: str, size: int, repetitions: int, timeout: float) -> Sample | str:
    binary = NATIVE_DIR / name
    if not binary.is_file():
        return f"{binary} is missing (run bench/build.sh --native-only)"
    best = math.inf
    stdout = ""
    for _ in range(repetitions):
        start = time.perf_counter()
        proc = subprocess.run(
            [str(binary), str(size)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise BenchError(f"native {name} exited with status {proc.returncode}")
        stdout = proc.stdout
        best = min(best, elapsed)
    return Sample(stdout, None, best)


def measure(
    runtime: str,
    name: str,
    size: int,
    args: argparse.Namespace,
    repetitions: int | None = None,
) -> Sample | str:
    """Time one runtime on one benchmark, --repetitions times unless given."""
    repetitions = repetitions or args.repetitions
    if runtime == "native":
        return run_native(name, size, repetitions, args.timeout)
    return run_worker(runtime, WASM_DIR / f"{name}.wasm", size, repetitions, args.timeout)


def calibrate_large_size(name: str, size: int, args: argparse.Namespace) -> int:
    """Pick L >= 100 * S at which the reference fast runtime runs for --fast-target s."""
    reference = "native" if "native" in args.runtimes else "wasmtime"
    large = size * 100
    for _ in range(8):
        sample = measure(reference, name, large, args, repetitions=1)
        if isinstance(sample, str):
            return large
        if sample.run_seconds >= args.fast_target:
            return large
        factor = args.fast_target / max(sample.run_seconds, 1e-4)
        large = int(large * min(max(factor * 1.2, 2.0), 100.0))
    return large


def check_outputs(result: Result, size: int, samples: dict[str, Sample]) -> None:
    """Move every runtime whose output differs from the reference to result.failures.

    The reference is native code when it ran, else wasmtime, else the first
    runtime that ran.
    """
    if not samples:
        return
    reference = next((rt for rt in ("native", "wasmtime") if rt in samples), None)
    reference = reference or next(iter(samples))
    expected = samples[reference].stdout
    prefix = f"{result.name} size={size} checksum="
    for runtime in list(samples):
        output = samples[runtime].stdout
        if output != expected or not output.startswith(prefix):
            result.failures[runtime] = (
                f"printed {output.strip()!r} at size {size}, but {reference} "
                f"printed {expected.strip()!r}"
            )
            del samples[runtime]


def measure_all(
    result: Result, runtimes: list[str], size: int, args: argparse.Namespace
) -> dict[str, Sample]:
    samples = {}
    for runtime in runtimes:
        log(f"{result.name}: {runtime} at size {size}")
        try:
            sample = measure(runtime, result.name, size, args)
        except BenchError as exc:
            result.failures[runtime] = str(exc)
            continue
        if isinstance(sample, str):
            result.unavailable[runtime] = sample
            continue
        samples[runtime] = sample
    check_outputs(result, size, samples)
    return samples


def run_benchmark(name: str, args: argparse.Namespace) -> Result:
    size = max(1, round(args.sizes.get(name, BASE_SIZES[name] * args.scale)))
    result = Result(name, size)
    result.base = measure_all(result, args.runtimes, size, args)
    # A runtime that needs 50 ms or more at S is timed well enough there, and
    # at L it could run for minutes.
    fast = [
        rt for rt in args.runtimes
        if rt in FAST_RUNTIMES and rt in result.base
        and result.base[rt].run_seconds < SLOW_ENOUGH_SECONDS
    ]
    if fast:
        try:
            result.large_size = calibrate_large_size(name, size, args)
        except BenchError as exc:
            result.failures["calibration"] = str(exc)
            return result
        result.large = measure_all(result, fast, result.large_size, args)
        for runtime in list(result.base):
            if runtime in fast and runtime not in result.large:
                del result.base[runtime]
    return result


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# ---- reporting ----------------------------------------------------------


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"


def format_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    return f"{ratio:.0f}x" if ratio >= 100 else f"{ratio:.1f}x"


def geometric_mean(values: list[float]) -> float | None:
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


# Ratio columns: (title, numerator runtime, denominator runtime). Each is
# numerator time / denominator time at equal size, so > 1 means the
# denominator is faster.
RATIOS = [
    ("wasmtee-python speedup over pywasm", "pywasm", "wasmtee-python"),
    ("wasmtee-python / wasmtime", "wasmtee-python", "wasmtime"),
    ("wasmtee-python / native", "wasmtee-python", "native"),
    ("wasmtee-llvm / wasmtime", "wasmtee-llvm", "wasmtime"),
    ("wasmtee-llvm / native", "wasmtee-llvm", "native"),
    ("pywasm / wasmtime", "pywasm", "wasmtime"),
    ("pywasm / native", "pywasm", "native"),
    ("wasmtime / native", "wasmtime", "native"),
]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def report(results: list[Result], runtimes: list[str]) -> str:
    present = [rt for rt in runtimes if any(rt in r.base for r in results)]
    sections = []

    header = ["benchmark", "size S", "size L"] + present
    rows = []
    for r in results:
        row = [r.name, str(r.size), str(r.large_size or "-")]
        row += [format_seconds(r.equal_size_seconds(rt)) for rt in present]
        rows.append(row)
    sections.append(
        "Execution time at size S (fast runtimes: estimated from sizes S and L)\n\n"
        + markdown_table(header, rows)
    )

    compiled = [rt for rt in present if rt != "native"]
    rows = [
        [r.name] + [
            format_seconds(r.base[rt].compile_seconds) if rt in r.base else "-"
            for rt in compiled
        ]
        for r in results
    ]
    sections.append(
        "Load, compile and instantiate\n\n" + markdown_table(["benchmark"] + compiled, rows)
    )

    ratios = [(t, a, b) for t, a, b in RATIOS if a in present and b in present]
    if ratios:
        rows = []
        per_column: list[list[float]] = [[] for _ in ratios]
        for r in results:
            row = [r.name]
            for column, (_, a, b) in enumerate(ratios):
                ta, tb = r.equal_size_seconds(a), r.equal_size_seconds(b)
                ratio = ta / tb if ta and tb else None
                if ratio:
                    per_column[column].append(ratio)
                row.append(format_ratio(ratio))
            rows.append(row)
        rows.append(
            ["geometric mean"] + [format_ratio(geometric_mean(v)) for v in per_column]
        )
        sections.append(
            "Ratios at equal size (time of the first / time of the second)\n\n"
            + markdown_table(["benchmark"] + [t for t, _, _ in ratios], rows)
        )

    missing = {rt: reason for r in results for rt, reason in r.unavailable.items()}
    if missing:
        sections.append(
            "Not measured:\n" + "\n".join(f"- {rt}: {why}" for rt, why in missing.items())
        )
    failures = [
        f"- {r.name} on {rt}: {why}" for r in results for rt, why in r.failures.items()
    ]
    if failures:
        sections.append("FAILED:\n" + "\n".join(failures))
    return "\n\n".join(sections) + "\n"


def results_as_json(results: list[Result]) -> list[dict]:
    def sample_dict(sample: Sample) -> dict:
        return {
            "stdout": sample.stdout,
            "compile_seconds": sample.compile_seconds,
            "run_seconds": sample.run_seconds,
        }

    return [
        {
            "name": r.name,
            "size": r.size,
            "large_size": r.large_size,
            "base": {rt: sample_dict(s) for rt, s in r.base.items()},
            "large": {rt: sample_dict(s) for rt, s in r.large.items()},
            "equal_size_seconds": {rt: r.equal_size_seconds(rt) for rt in r.base},
            "unavailable": r.unavailable,
            "failures": r.failures,
        }
        for r in results
    ]


# ---- command line -------------------------------------------------------


def parse_size(text: str) -> tuple[str, int]:
    name, sep, value = text.partition("=")
    if not sep or name not in BASE_SIZES or not value.isdigit() or int(value) <= 0:
        raise argparse.ArgumentTypeError(
            f"invalid --size {text!r}: expected NAME=N with NAME one of "
            f"{', '.join(BASE_SIZES)} and N a positive integer"
        )
    return name, int(value)


def parse_list(choices: tuple[str, ...] | list[str]):
    def parse(text: str) -> list[str]:
        items = [item for item in text.split(",") if item]
        unknown = [item for item in items if item not in choices]
        if unknown or not items:
            raise argparse.ArgumentTypeError(
                f"invalid value {text!r}: expected a comma-separated list of "
                f"{', '.join(choices)}"
            )
        return items

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Time the benchmarks on every runtime and print the ratios.",
        epilog="The module docstring of bench/run.py explains the method.",
    )
    parser.add_argument(
        "--benchmarks",
        type=parse_list(list(BASE_SIZES)),
        default=list(BASE_SIZES),
        help=f"comma-separated benchmarks to run (default: {','.join(BASE_SIZES)})",
    )
    parser.add_argument(
        "--runtimes",
        type=parse_list(ALL_RUNTIMES),
        default=list(ALL_RUNTIMES),
        help="comma-separated runtimes (default: all; unavailable ones are listed "
        "as not measured)",
    )
    parser.add_argument(
        "--repetitions", type=int, default=3, help="timed runs per measurement; the "
        "minimum counts (default: 3)"
    )
    parser.add_argument(
        "--scale", type=float, default=1.0,
        help="multiply every base size by this factor (default: 1.0)",
    )
    parser.add_argument(
        "--size", type=parse_size, action="append", default=[], metavar="NAME=N",
        help="set the base size of one benchmark (repeatable)",
    )
    parser.add_argument(
        "--fast-target", type=float, default=0.3,
        help="seconds the large size should take on the fastest runtime (default: 0.3)",
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0,
        help="seconds before one measurement is abandoned (default: 600)",
    )
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.repetitions <= 0 or args.scale <= 0 or args.fast_target <= 0:
        parser.error("--repetitions, --scale and --fast-target must be positive")
    args.sizes = dict(args.size)
    missing = [n for n in args.benchmarks if not (WASM_DIR / f"{n}.wasm").is_file()]
    if missing:
        parser.error(f"missing {', '.join(missing)} in {WASM_DIR}; run bench/build.sh")
    if "native" in args.runtimes and not NATIVE_DIR.is_dir():
        if shutil.which("gcc") is None:
            parser.error("native binaries are missing and gcc is not installed")
        subprocess.run([str(BENCH_DIR / "build.sh"), "--native-only"], check=True)

    results = [run_benchmark(name, args) for name in args.benchmarks]
    print(report(results, args.runtimes), end="")
    if args.json:
        args.json.write_text(json.dumps(results_as_json(results), indent=2) + "\n")
    return 1 if any(r.failures for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
