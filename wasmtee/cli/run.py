"""`wasmtee run`: run a WASI command or reactor, or invoke one export.

Exit status: the guest's `proc_exit` code (0 when `_start` returns), 134
after a trap (as wasmtime), 1 for other errors, and 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from typing import Any

from wasmtee.errors import Trap, UsageError, WasiExit

logger = logging.getLogger(__name__)

TRAP_EXIT_STATUS = 134
_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20,
               "mb": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}


def parse_size(text: str) -> int:
    """Parse "65536", "64K", "16MiB" or "1G" as a byte count (units are powers of 1024)."""
    stripped = text.strip().lower()
    digits = stripped.rstrip("kmgib")
    unit = stripped[len(digits):]
    if not digits.isdigit() or unit not in _SIZE_UNITS:
        raise argparse.ArgumentTypeError(
            f"invalid size {text!r} (expected bytes with an optional K, M or G suffix)")
    return int(digits) * _SIZE_UNITS[unit]


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r} (expected > 0)")
    return value


def _non_negative_int(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"invalid fuel {text!r} (expected an integer >= 0)")
    return int(text)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a WebAssembly module (WASI command or reactor)",
        description="Run MODULE (.wasm or .wat). A command's _start runs and its exit code "
        "becomes wasmtee's exit status; a reactor's _initialize runs first. With --invoke, "
        "ARGS are the export's arguments, parsed by its parameter types, and the results "
        "are printed one per line. Exit status: the guest's exit code, 134 after a trap, "
        "1 for other errors, 2 for bad arguments.",
    )
    parser.add_argument("--dir", action="append", default=[], metavar="HOST[::GUEST]",
                        help="preopen the host directory HOST, visible to the guest as GUEST "
                        "(default: the same path); repeatable")
    parser.add_argument("--dir-ro", action="append", default=[], metavar="HOST[::GUEST]",
                        help="like --dir, but the guest can only read: writes fail with "
                        "EROFS or ENOTCAPABLE")
    parser.add_argument("--env", action="append", default=[], metavar="NAME[=VALUE]",
                        help="pass an environment variable (NAME alone copies the host's "
                        "value); the host environment is not passed otherwise")
    parser.add_argument("--invoke", metavar="FUNC",
                        help="call the export FUNC with ARGS instead of _start")
    parser.add_argument("--fuel", type=_non_negative_int, metavar="N",
                        help="trap with 'all fuel consumed' after N units of fuel "
                        "(about one per instruction)")
    parser.add_argument("--max-memory", type=parse_size, metavar="SIZE",
                        help="limit each linear memory to SIZE bytes (suffix K, M or G for "
                        "KiB, MiB, GiB)")
    parser.add_argument("--timeout", type=_positive_float, metavar="SECONDS",
                        help="interrupt the guest after SECONDS of wall-clock time")
    parser.add_argument("--tier", choices=["python", "llvm", "auto"], default="python",
                        help="execution tier (default: python)")
    parser.add_argument("--argv0", metavar="NAME",
                        help="the program name the guest sees as argv[0] (default: the "
                        "module's file name)")
    parser.add_argument("--enclave", choices=["sim", "gramine"], metavar="{sim,gramine}",
                        help="run the WASI command inside an enclave of this backend (sim: "
                        "simulated SGX, no hardware protection). Arguments, --env, stdin, "
                        "stdout, stderr and the exit code are forwarded. At most one --dir "
                        "HOST::GUEST: GUEST is a protected-file directory whose files the "
                        "enclave encrypts and stores under HOST/protected/run/, and the guest "
                        "sees no plain host directory. Cannot be combined with --invoke, "
                        "--fuel, --max-memory, --tier or --dir-ro")
    parser.add_argument("module", metavar="MODULE", help="the .wasm or .wat file to run")
    parser.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                        help="guest arguments, or --invoke arguments")
    parser.set_defaults(handler=run)


def _split_dir(spec: str) -> tuple[str, str]:
    host, sep, guest = spec.partition("::")
    if not host:
        raise UsageError(f"invalid --dir {spec!r} (expected HOST or HOST::GUEST)")
    return host, guest if sep else host


def build_wasi_config(args: argparse.Namespace) -> Any:
    """Return the WasiConfig that the command-line options describe.

    Raises UsageError for a missing directory or a bad --env.
    """
    from wasmtee.wasi import WasiConfig

    argv0 = args.argv0 or os.path.basename(args.module)
    config = WasiConfig(argv=[argv0, *args.args])
    config.inherit_stdio()
    for specs, read_only in ((args.dir, False), (args.dir_ro, True)):
        for spec in specs:
            host, guest = _split_dir(spec)
            config.preopen_dir(host, guest, read_only)
    for item in args.env:
        name, sep, value = item.partition("=")
        if not name:
            raise UsageError(f"invalid --env {item!r} (expected NAME=VALUE or NAME)")
        if not sep:
            if name not in os.environ:
                raise UsageError(f"--env {name}: not set in the host environment")
            value = os.environ[name]
        config.env[name] = value
    return config


def parse_invoke_args(func_type: Any, texts: list[str]) -> list[Any]:
    """Convert command-line strings to values of the function's parameter types.

    Raises UsageError for a wrong count or a value that does not fit its type.
    """
    from wasmtee.model import ValType

    if len(texts) != len(func_type.params):
        raise UsageError(f"expected {len(func_type.params)} arguments "
                         f"({func_type}), got {len(texts)}")
    values: list[Any] = []
    for text, val_type in zip(texts, func_type.params):
        try:
            if val_type in (ValType.I32, ValType.I64):
                bits = 32 if val_type == ValType.I32 else 64
                value = int(text, 0)
                if not -(1 << (bits - 1)) <= value < (1 << bits):
                    raise ValueError("out of range")
                values.append(value - (1 << bits) if value >= 1 << (bits - 1) else value)
            elif val_type in (ValType.F32, ValType.F64):
                values.append(float(text))
            else:
                raise UsageError(f"--invoke cannot pass a {val_type} argument")
        except ValueError:
            raise UsageError(f"invalid {val_type} argument {text!r}") from None
    return values


def _print_trap(trap: Trap) -> None:
    print(f"wasmtee run: trap: {trap}", file=sys.stderr)
    if not trap.frames:
        print("wasm backtrace: not recorded by this execution tier", file=sys.stderr)
        return
    print("wasm backtrace:", file=sys.stderr)
    for depth, frame in enumerate(trap.frames):
        print(f"  {depth}: {frame}", file=sys.stderr)


# The first bytes of an AOT artifact (wasmtee.llvm.aot.MAGIC); kept here so
# plain modules never import the llvm tier.
ARTIFACT_MAGIC = b"WTEECWSM"


def run(args: argparse.Namespace) -> int:
    """Run the module; a UsageError (bad option value, missing export) exits with 2."""
    try:
        if getattr(args, "enclave", None) is not None:
            from wasmtee.tee.run import run_in_enclave

            return run_in_enclave(args)
        return _run(args)
    except UsageError as exc:
        print(f"wasmtee run: error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        # A layer that is missing from this installation (for example the validator).
        print(f"wasmtee run: error: a wasmtee component is missing: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    import wasmtee
    from wasmtee.wasi import add_to_linker

    config = wasmtee.Config(tier=args.tier, consume_fuel=args.fuel is not None,
                            epoch_interruption=args.timeout is not None)
    engine = wasmtee.Engine(config)
    try:
        with open(args.module, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise UsageError(f"cannot read module {args.module!r}: {exc.strerror}") from None
    wasi_config = build_wasi_config(args)
    if data[:8] == ARTIFACT_MAGIC:
        # An AOT artifact from `wasmtee compile` holds native code: it runs on the llvm tier.
        from wasmtee.llvm import aot

        engine = wasmtee.Engine(wasmtee.Config(
            tier="llvm", consume_fuel=config.consume_fuel,
            epoch_interruption=config.epoch_interruption,
        ))
        module = aot.load_module(engine, data)
    else:
        module = wasmtee.Module(engine, data)
    store = wasmtee.Store(engine)
    if args.fuel is not None:
        store.set_fuel(args.fuel)
    if args.max_memory is not None:
        store.set_limits(memory_size=args.max_memory)
    linker = wasmtee.Linker(engine)
    wasi = add_to_linker(linker, store, wasi_config)
    try:
        return _run_instance(args, store, linker, module)
    except WasiExit as exc:
        return exc.code if 0 <= exc.code <= 255 else 1
    except Trap as trap:
        _print_trap(trap)
        return TRAP_EXIT_STATUS
    finally:
        sys.stdout.flush()
        wasi.close()
        store.close()


def _run_instance(args: argparse.Namespace, store: Any, linker: Any, module: Any) -> int:
    if args.timeout is not None:
        store.set_deadline(args.timeout)
    instance = linker.instantiate(store, module)
    exports = instance.exports(store)
    if "_initialize" in exports and "_start" not in exports:
        exports["_initialize"](store)
    if args.invoke is None:
        if "_start" not in exports:
            raise UsageError(f"{args.module} exports no _start function; use --invoke FUNC "
                             f"(exports: {', '.join(sorted(exports)) or 'none'})")
        exports["_start"](store)
        return 0
    func = exports.get(args.invoke)
    if not isinstance(func, wasmtee_func_class()):
        raise UsageError(f"{args.module} exports no function named {args.invoke!r}")
    values = parse_invoke_args(func.type(store), args.args)
    result = func(store, *values)
    if result is None:
        results = []
    elif isinstance(result, list):
        results = result
    else:
        results = [result]
    for value in results:
        print(value)
    return 0


def wasmtee_func_class() -> type:
    from wasmtee.api.extern import Func

    return Func
