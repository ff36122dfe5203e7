"""The `wasmtee` command line: one subcommand per module in this package.

Each subcommand module defines `register(subparsers)`, which adds its parser
and sets `handler` to a function that takes the parsed arguments and returns
the process exit status.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from wasmtee.errors import UsageError, WasmteeError

log = logging.getLogger("wasmtee")

# Exit statuses shared by every subcommand; argparse itself exits with 2 for
# arguments it cannot parse.
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70  # EX_SOFTWARE in sysexits.h
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a tool killed by SIGPIPE reports
EXIT_STATUS_HELP = (
    "Exit status: 0 on success, 1 when a command fails, 2 for invalid arguments, "
    "70 for an internal error in wasmtee, 130 when interrupted, 141 when the reader "
    "of standard output went away. `wasmtee run` exits with the guest's exit code, "
    "and with 134 after a trap."
)

# Subcommand modules, in the order `--help` lists them.
SUBCOMMANDS = [
    "run",
    "wast",
    "inspect",
    "compile",
    "enclave",
    "attest",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wasmtee",
        description="A WebAssembly runtime for trusted cloud applications.",
        epilog=EXIT_STATUS_HELP,
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="logging threshold for messages on standard error (default: warning)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"wasmtee.cli.{name}")
        module.register(subparsers)
    return parser


def _stdout_closed() -> int:
    """Handle a reader of our output (`| head`, say) that has gone away; return the exit status.

    Standard output is pointed at /dev/null so that the interpreter's final
    flush fails quietly too.
    """
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_BROKEN_PIPE


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except BrokenPipeError:
        return _stdout_closed()
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="wasmtee: %(levelname)s: %(name)s: %(message)s",
    )
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.handler(args))
    except UsageError as exc:
        print(f"wasmtee {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except WasmteeError as exc:
        print(f"wasmtee {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"wasmtee {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return _stdout_closed()
    except Exception as exc:  # noqa: BLE001 - a bug in wasmtee: one line, details in the log
        log.debug("internal error", exc_info=True)
        print(
            f"wasmtee {args.command}: internal error (a bug in wasmtee, please report it): "
            f"{type(exc).__name__}: {exc}; rerun with --log-level debug for the traceback",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
