"""`wasmtee wast`: run WAST scripts and report passed, failed and skipped assertions."""

from __future__ import annotations

import argparse
import os
import sys

from wasmtee.cli.arguments import positive_seconds
from wasmtee.errors import UsageError
from wasmtee.script.runner import DEFAULT_COMMAND_TIMEOUT, Summary, run_script_file


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "wast",
        help="run WAST test scripts",
        description="Run WAST scripts (the spec test suite format). Prints each failure "
        "with file:line and the reason, the skip reasons with counts, and a final line "
        "'N passed, M failed, K skipped'. Exit status: 0 when nothing failed, 1 when "
        "an assertion failed, 2 for bad arguments.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="a .wast script")
    parser.add_argument(
        "--tier",
        choices=["python", "llvm"],
        default="python",
        help="execution tier that runs the modules (default: python)",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=DEFAULT_COMMAND_TIMEOUT,
        metavar="SECONDS",
        help="interrupt and fail a command that runs longer than this "
        f"(default: {DEFAULT_COMMAND_TIMEOUT:.0f})",
    )
    parser.add_argument(
        "--per-file", action="store_true", help="also print one count line per script"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # A script that cannot be opened is a usage error (status 2), as in run and inspect.
    for path in args.files:
        if os.path.isdir(path):
            raise UsageError(f"cannot read script {path!r}: it is a directory")
        if not os.path.exists(path):
            raise UsageError(f"cannot read script {path!r}: no such file")
        if not os.access(path, os.R_OK):
            raise UsageError(f"cannot read script {path!r}: permission denied")
    total = Summary()
    out = sys.stdout
    for path in args.files:
        summary = run_script_file(path, tier=args.tier, timeout=args.timeout)
        for failure in summary.failures:
            print(failure, file=out)
        if args.per_file:
            print(f"{path}: {summary.line()} ({summary.seconds:.2f}s)", file=out)
        total.add(summary)
    for reason, count in sorted(total.skip_reasons.items(), key=lambda item: -item[1]):
        print(f"skipped {count}: {reason}", file=out)
    print(total.line(), file=out)
    return 0 if total.failed == 0 else 1
