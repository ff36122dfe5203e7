#!/usr/bin/env python3
"""Run the WebAssembly/wasi-testsuite preview1 tests on wasmtee (or on the wasmtime package).

Usage:
    python3 scripts/wasi_testsuite.py [--suite DIR] [--runtime wasmtee|wasmtime]
                                      [--tier python|llvm] [--timeout SECONDS] [-k TEXT] [-v]

Each test is a .wasm with an optional .json beside it giving "args", "env",
"root" (a directory preopened as "/"), "exit_code" (default 0) and "stdout".
The root is copied to a temporary directory first, so the checkout under
--suite is never modified. `--runtime wasmtime` runs the same tests on the
wasmtime PyPI package, which checks this runner itself. `--runtime
wasi-on-wasmtime` executes the wasm on the wasmtime package but binds every
WASI import to wasmtee's WASI host functions, which tests wasmtee's WASI
layer independently of its execution tiers. Prints one line per
failure and a total "N passed, M failed" line per language; exits 0 only
when nothing failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SUITE = Path("/work/ext/wasi-testsuite/tests")


def load_spec(wasm: Path) -> dict:
    spec_path = wasm.with_suffix(".json")
    if spec_path.exists():
        return json.loads(spec_path.read_text())
    return {}


def wasmtee_command(wasm: Path, spec: dict, root: Path | None, tier: str) -> list[str]:
    command = [sys.executable, "-m", "wasmtee", "run", "--tier", tier,
               "--argv0", wasm.name]
    for key, value in spec.get("env", {}).items():
        command += ["--env", f"{key}={value}"]
    if root is not None:
        command += ["--dir", f"{root}::/"]
    return command + [str(wasm), *spec.get("args", [])]


def wasmtime_command(wasm: Path, spec: dict, root: Path | None, wasi: str) -> list[str]:
    payload = json.dumps({"wasm": str(wasm), "spec": spec, "wasi": wasi,
                          "root": str(root) if root else None})
    return [sys.executable, str(Path(__file__).resolve()), "--wasmtime-child", payload]


class _WasmtimeMemory:
    """A wasmtime Memory seen as `buf` and `size`, the shape wasmtee's WASI reads."""

    def __init__(self, memory, store) -> None:
        import ctypes

        self.size = memory.data_len(store)
        address = ctypes.cast(memory.data_ptr(store), ctypes.c_void_p).value
        self.buf = memoryview((ctypes.c_ubyte * self.size).from_address(address)).cast("B")


def define_wasmtee_wasi(linker, store, spec: dict, argv0: str, root: str | None):
    """Define wasmtee's WASI functions in a wasmtime Linker, under both module names."""
    import wasmtime

    from wasmtee.errors import WasiExit
    from wasmtee.wasi import WasiConfig, WasiContext, host_functions

    config = WasiConfig(argv=[argv0, *spec.get("args", [])], env=dict(spec.get("env", {})))
    config.inherit_stdio()
    if root:
        config.preopen_dir(root, "/")
    ctx = WasiContext(config)
    for module in ("wasi_snapshot_preview1", "wasi_unstable"):
        for name, func in host_functions(ctx, module).items():
            params = [wasmtime.ValType.i32() if t.text == "i32" else wasmtime.ValType.i64()
                      for t in func.type.params]
            results = [wasmtime.ValType.i32()] * len(func.type.results)
            masks = [0xFFFFFFFF if t.text == "i32" else 0xFFFFFFFFFFFFFFFF
                     for t in func.type.params]

            def call(caller, *args, _raw=func.callable, _masks=masks):
                memory = caller.get("memory")
                view = _Caller(_WasmtimeMemory(memory, caller) if memory else None)
                result = _raw(view, *(a & m for a, m in zip(args, _masks)))
                return result

            linker.define_func(module, name, wasmtime.FuncType(params, results), call,
                               access_caller=True)
    return ctx, WasiExit


class _Caller:
    def __init__(self, memory) -> None:
        self.memory = memory


def run_wasmtime_child(payload: str) -> int:
    """Run one test on the wasmtime package with inherited stdio; return its exit code."""
    import wasmtime

    job = json.loads(payload)
    spec = job["spec"]
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    if job["wasi"] == "wasmtee":
        sys.path.insert(0, str(REPO))
        _ctx, wasi_exit = define_wasmtee_wasi(linker, store, spec, Path(job["wasm"]).name,
                                              job["root"])
        instance = linker.instantiate(store, wasmtime.Module.from_file(engine, job["wasm"]))
        try:
            instance.exports(store)["_start"](store)
        except wasi_exit as exc:
            return exc.code
        return 0
    linker.define_wasi()
    config = wasmtime.WasiConfig()
    config.argv = [Path(job["wasm"]).name, *spec.get("args", [])]
    config.env = list(spec.get("env", {}).items())
    if job["root"]:
        config.preopen_dir(job["root"], "/")
    config.inherit_stdout()
    config.inherit_stderr()
    config.inherit_stdin()
    store.set_wasi(config)
    instance = linker.instantiate(store, wasmtime.Module.from_file(engine, job["wasm"]))
    try:
        instance.exports(store)["_start"](store)
    except wasmtime.ExitTrap as exc:
        return exc.code
    return 0


def run_test(wasm: Path, args: argparse.Namespace) -> tuple[bool, str, float]:
    """Run one test; return (passed, reason, seconds)."""
    spec = load_spec(wasm)
    with tempfile.TemporaryDirectory(prefix="wasi-testsuite-") as tmp:
        root = None
        if "root" in spec:
            root = Path(tmp) / "root"
            shutil.copytree(wasm.parent / spec["root"], root, symlinks=True)
        if args.runtime == "wasmtee":
            command = wasmtee_command(wasm, spec, root, args.tier)
        elif args.runtime == "wasmtime":
            command = wasmtime_command(wasm, spec, root, "wasmtime")
        else:
            command = wasmtime_command(wasm, spec, root, "wasmtee")
        start = time.monotonic()
        try:
            proc = subprocess.run(command, capture_output=True, timeout=args.timeout,
                                  cwd=tmp, env={**os.environ, "PYTHONPATH": str(REPO)},
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return False, f"timed out after {args.timeout:.0f}s", args.timeout
        seconds = time.monotonic() - start
    expected = spec.get("exit_code", 0)
    if proc.returncode != expected:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
        return False, f"exit code {proc.returncode}, expected {expected}: {' | '.join(detail)}", seconds
    if "stdout" in spec and proc.stdout.decode(errors="replace") != spec["stdout"]:
        return False, f"stdout {proc.stdout[:80]!r}, expected {spec['stdout'][:80]!r}", seconds
    return True, "", seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", type=Path, default=DEFAULT_SUITE,
                        help=f"the wasi-testsuite tests directory (default: {DEFAULT_SUITE})")
    parser.add_argument("--runtime", choices=["wasmtee", "wasmtime", "wasi-on-wasmtime"], default="wasmtee")
    parser.add_argument("--tier", choices=["python", "llvm"], default="python",
                        help="wasmtee execution tier (default: python)")
    parser.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                        help="fail a test that runs longer than this (default: 600)")
    parser.add_argument("-k", dest="keyword", default="", help="run only tests whose path contains TEXT")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every test")
    parser.add_argument("--wasmtime-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.wasmtime_child:
        return run_wasmtime_child(args.wasmtime_child)
    if not args.suite.is_dir():
        print(f"wasi-testsuite not found at {args.suite}", file=sys.stderr)
        return 2
    failed_total = 0
    for language in ("c", "rust", "assemblyscript"):
        folder = args.suite / language / "testsuite" / "wasm32-wasip1"
        tests = sorted(p for p in folder.glob("*.wasm") if args.keyword in str(p))
        if not tests:
            continue
        passed = failed = 0
        seconds = 0.0
        for wasm in tests:
            ok, reason, took = run_test(wasm, args)
            seconds += took
            if ok:
                passed += 1
            else:
                failed += 1
                print(f"FAIL {language}/{wasm.name}: {reason}")
            if args.verbose and ok:
                print(f"ok   {language}/{wasm.name} ({took:.1f}s)")
            sys.stdout.flush()
        failed_total += failed
        print(f"{language}: {passed} passed, {failed} failed ({seconds:.1f}s on {args.runtime})")
    return 0 if failed_total == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
