"""`wasmtee compile`: write an ahead-of-time artifact with the LLVM tier."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from wasmtee.cli.module_file import ModuleKind, classify, read_module_file
from wasmtee.errors import CompileError, UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compile",
        help="compile a module ahead of time to a .cwasm artifact (LLVM tier)",
        description=(
            "Compile a WebAssembly module to native code for this host. "
            "`wasmtee run app.cwasm` loads the result without recompiling. "
            "Exit status: 0 on success, 1 when the file is not a module or fails to "
            "compile, 2 for bad arguments."
        ),
    )
    parser.add_argument("module", help="the .wasm or .wat file to compile")
    parser.add_argument("-o", "--output", help="artifact path (default: MODULE with .cwasm)")
    parser.add_argument(
        "--opt-level", type=int, choices=[0, 1, 2, 3], default=None,
        help=(
            "optimisation level: 0 and 1 compile fast (1 promotes locals to registers), "
            "2 and 3 run LLVM's -O2 and -O3 pipelines (default: 2, or 1 for large modules)"
        ),
    )
    parser.add_argument(
        "--target-cpu", metavar="CPU",
        help=(
            "LLVM CPU name to compile for (default: this host's CPU and all its features). "
            "A portable level such as x86-64-v2 makes an artifact that loads on other hosts"
        ),
    )
    parser.add_argument(
        "--consume-fuel", action="store_true",
        help="compile in fuel checks, as needed to run the artifact with --fuel",
    )
    parser.add_argument(
        "--interruptible", action="store_true",
        help="compile in interruption checks, as needed to run the artifact with --timeout",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="do not show a progress display"
    )
    parser.set_defaults(handler=run_compile)


def wat_to_binary(source: Path, data: bytes) -> bytes:
    """Parse a text module and encode it, since artifacts embed the binary module."""
    from wasmtee.binary import encode_module
    from wasmtee.text import parse_wat

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{source} is neither a binary module nor UTF-8 text") from None
    return bytes(encode_module(parse_wat(text)))


def run_compile(args: argparse.Namespace) -> int:
    source = Path(args.module)
    data = read_module_file(args.module)
    kind = classify(args.module, data)
    if kind == ModuleKind.ARTIFACT:
        raise UsageError(f"{source} is already a wasmtee AOT artifact; compile the .wasm or "
                         ".wat file it was made from")
    try:
        from wasmtee.llvm import aot
    except ImportError as exc:
        raise CompileError(f"the llvm tier is unavailable: {exc}") from None
    if kind == ModuleKind.TEXT:
        data = wat_to_binary(source, data)
    output = Path(args.output) if args.output else source.with_suffix(".cwasm")
    show = not args.no_progress and sys.stderr.isatty()
    started = time.monotonic()

    def progress(done: int, total: int) -> None:
        if show:
            width = 30
            filled = width * done // total
            sys.stderr.write(f"\rcompiling [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
            if done == total:
                sys.stderr.write("\n")
            sys.stderr.flush()

    artifact = aot.compile_artifact(
        data,
        opt_level=args.opt_level,
        consume_fuel=args.consume_fuel,
        interruptible=args.interruptible,
        progress=progress,
        cpu=args.target_cpu,
    )
    try:
        output.write_bytes(artifact)
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror}") from None
    elapsed = time.monotonic() - started
    print(f"wrote {output} ({len(artifact)} bytes) in {elapsed:.2f} s", file=sys.stderr)
    return 0
