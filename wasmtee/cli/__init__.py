"""The `wasmtee` command line: one subcommand per module in this package.

Each subcommand module defines `register(subparsers)`, which adds its parser
and sets `handler` to a function that takes the parsed arguments and returns
the process exit status.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from wasmtee.errors import WasmteeError

log = logging.getLogger("wasmtee")

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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="wasmtee: %(levelname)s: %(name)s: %(message)s",
    )
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.handler(args))
    except WasmteeError as exc:
        print(f"wasmtee {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"wasmtee {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug in wasmtee: one line, details in the log
        log.debug("internal error", exc_info=True)
        print(
            f"wasmtee {args.command}: internal error (a bug in wasmtee, please report it): "
            f"{type(exc).__name__}: {exc}; rerun with --log-level debug for the traceback",
            file=sys.stderr,
        )
        return 70


if __name__ == "__main__":
    sys.exit(main())
