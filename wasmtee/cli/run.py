"""`wasmtee run`: run a WASI command or reactor, or invoke one export.

Exit status: the guest's `proc_exit` code (0 when `_start` returns), 134
after a trap (as wasmtime), 1 for other errors, and 2 for bad arguments.
Like `wasmtime run`, an exit code outside 0..125 is an error (status 1).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import sys
from typing import Any

from wasmtee.cli.arguments import byte_size, int_in_range, non_negative_int, positive_seconds
from wasmtee.cli.interrupt import interrupt_on_sigint, store_interrupter
from wasmtee.cli.module_file import ModuleKind, classify, read_module_file
from wasmtee.errors import CompileError, Trap, UsageError, WasiExit
from wasmtee.runtime.config import DEFAULT_MAX_CALL_DEPTH

logger = logging.getLogger(__name__)

TRAP_EXIT_STATUS = 134
# wasmtime's proc_exit rejects codes of 126 and above, which shells reserve
# for "cannot execute", "not found" and death by a signal.
MAX_EXIT_CODE = 125
# Runs of one frame longer than this are shortened, as Python shortens tracebacks.
BACKTRACE_REPEATS_SHOWN = 3

# Kept importable from here for callers of the old name.
parse_size = byte_size

# The largest --max-call-depth. On the python tier every wasm frame is a Python
# frame, and the depth sets Python's recursion limit for the whole process.
MAX_CALL_DEPTH_OPTION = 1_000_000


class _TierAction(argparse.Action):
    """Store --tier and record that the user gave it, so a .cwasm can reject it."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        namespace.tier_given = True


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a WebAssembly module (WASI command or reactor)",
        description="Run MODULE (.wasm or .wat). A command's _start runs and its exit code "
        "becomes wasmtee's exit status; a reactor's _initialize runs first. With --invoke, "
        "ARGS are the export's arguments, parsed by its parameter types, and the results "
        "are printed one per line. Exit status: the guest's exit code (0..125, as in "
        "wasmtime; another code is reported as an error with status 1), 134 after a trap, "
        "1 for other errors, 2 for bad arguments.",
    )
    parser.add_argument("--dir", action="append", default=[], metavar="HOST[::GUEST]",
                        help="preopen the host directory HOST, visible to the guest as GUEST "
                        "(default: the same path); repeatable")
    parser.add_argument("--dir-ro", action="append", default=[], metavar="HOST[::GUEST]",
                        help="like --dir, but the guest can only read: opening for writing "
                        "and every change fail with EPERM, as in wasmtime")
    parser.add_argument("--env", action="append", default=[], metavar="NAME[=VALUE]",
                        help="pass an environment variable (NAME alone copies the host's "
                        "value); the host environment is not passed otherwise")
    parser.add_argument("--invoke", metavar="FUNC",
                        help="call the export FUNC with ARGS instead of _start")
    parser.add_argument("--fuel", type=non_negative_int, metavar="N",
                        help="trap with 'all fuel consumed' after N units of fuel, at most "
                        "2**64-1; one unit is one wasm instruction, and each function call "
                        "or loop iteration is charged for all of its instructions when it "
                        "starts (the same on every tier)")
    parser.add_argument("--max-memory", type=byte_size, metavar="SIZE",
                        help="limit each linear memory to SIZE bytes (suffix K, M or G for "
                        "KiB, MiB, GiB)")
    parser.add_argument("--timeout", type=positive_seconds, metavar="SECONDS",
                        help="interrupt the guest after SECONDS of wall-clock time (at "
                        "most 1e9); the clock starts after the module is compiled, "
                        "and Ctrl-C stops a long compile")
    parser.add_argument("--max-call-depth", type=int_in_range(1, MAX_CALL_DEPTH_OPTION),
                        default=DEFAULT_MAX_CALL_DEPTH, metavar="N",
                        help="trap with 'call stack exhausted' when wasm calls nest more "
                        f"than N frames deep (default: {DEFAULT_MAX_CALL_DEPTH}, at most "
                        f"{MAX_CALL_DEPTH_OPTION}). With the default, the llvm tier bounds "
                        "only its native stack use, which allows deeper recursion")
    parser.add_argument("--tier", choices=["python", "llvm", "auto"], default="auto",
                        action=_TierAction,
                        help="execution tier (default: auto, which is llvm when llvmlite "
                        "is installed and python otherwise). A .cwasm artifact runs only "
                        "on the llvm tier")
    parser.add_argument("--argv0", metavar="NAME",
                        help="the program name the guest sees as argv[0], which may be "
                        "empty (default: the module's file name)")
    parser.add_argument("--enclave", choices=["sim", "gramine"], metavar="{sim,gramine}",
                        help="run the WASI command inside an enclave of this backend (sim: "
                        "simulated SGX, no hardware protection). Arguments, --env, stdin, "
                        "stdout, stderr and the exit code are forwarded. At most one --dir "
                        "HOST::GUEST: GUEST is a protected-file directory whose files the "
                        "enclave encrypts and stores under HOST/protected/run/, and the guest "
                        "sees no plain host directory. Cannot be combined with --invoke, "
                        "--fuel, --max-memory, --tier or --dir-ro, and not with a .cwasm "
                        "artifact")
    parser.add_argument("module", metavar="MODULE",
                        help="the .wasm, .wat or .cwasm (from wasmtee compile) file to run, "
                        "a regular file of at most 1 GiB")
    parser.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                        help="guest arguments, or --invoke arguments")
    parser.set_defaults(handler=run, tier_given=False)


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

    argv0 = args.argv0 if args.argv0 is not None else os.path.basename(args.module)
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


def check_utf8_arguments(args: argparse.Namespace) -> None:
    """Raise UsageError naming the first guest argument, --env or --argv0 that is not UTF-8.

    WASI passes them to the guest as UTF-8 strings, and `wasmtime run` rejects
    such arguments too. Python decodes undecodable bytes of the command line
    to lone surrogates, which UTF-8 cannot encode.
    """
    checks = [("--argv0", args.argv0)] if args.argv0 is not None else []
    if args.argv0 is None:
        checks.append(("the module file name (the default argv[0])",
                       os.path.basename(args.module)))
    if args.invoke is None:
        checks += [(f"guest argument {index}", text)
                   for index, text in enumerate(args.args, start=1)]
    checks += [("--env", item) for item in args.env]
    checks += [("--env", os.environ[item]) for item in args.env
               if "=" not in item and item in os.environ]
    for specs in (args.dir, args.dir_ro):
        checks += [("--dir guest path", _split_dir(spec)[1]) for spec in specs]
    for label, text in checks:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError(f"{label} {os.fsencode(text)!r} is not valid UTF-8, and WASI "
                             "passes arguments, environment variables and preopen names "
                             "as UTF-8") from None


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
                values.append(parse_float_argument(val_type, text))
            else:
                raise UsageError(f"--invoke cannot pass a {val_type} argument")
        except ValueError:
            raise UsageError(f"invalid {val_type} argument {text!r}") from None
    return values


def parse_float_argument(val_type: Any, text: str) -> float:
    """Parse a float as the text format writes it: 1.5, 0x1.8p1, -inf, nan, -nan:0x200000.

    Returns the raw value (wasmtee.values), which keeps a NaN's sign and payload.
    Raises ValueError for a malformed literal or one out of range.
    """
    from wasmtee.model import ValType
    from wasmtee.text.numbers import F32, F64, parse_float_bits
    from wasmtee.values import f32_from_bits, f64_from_bits

    is_f32 = val_type == ValType.F32
    bits = parse_float_bits(text, F32 if is_f32 else F64)
    if bits is None:
        raise ValueError(f"malformed or out-of-range float {text!r}")
    return f32_from_bits(bits) if is_f32 else f64_from_bits(bits)


def format_result(val_type: Any, value: Any) -> str:
    """Format one --invoke result; a float NaN shows its sign and a non-canonical payload.

    NaNs print as the text format writes them ("nan", "-nan", "nan:0x200000").
    """
    from wasmtee.model import ValType
    from wasmtee.text.numbers import F32, F64
    from wasmtee.values import f32_to_bits, f64_to_bits

    if val_type not in (ValType.F32, ValType.F64) or value == value:
        return str(value)
    if val_type == ValType.F32:
        bits, fmt = f32_to_bits(value), F32
    else:
        bits, fmt = f64_to_bits(value), F64
    sign = "-" if bits & fmt.sign_bit else ""
    payload = bits & ((1 << fmt.mantissa_bits) - 1)
    if payload == 1 << (fmt.mantissa_bits - 1):
        return f"{sign}nan"
    return f"{sign}nan:0x{payload:x}"


def format_backtrace(frames: list[Any]) -> list[str]:
    """Return one line per frame, innermost first, with long runs of one frame shortened."""
    lines = []
    depth = 0
    for text, group in itertools.groupby(str(frame) for frame in frames):
        count = sum(1 for _ in group)
        shown = min(count, BACKTRACE_REPEATS_SHOWN)
        lines.extend(f"  {depth + index}: {text}" for index in range(shown))
        hidden = count - shown
        if hidden:
            noun = "frame" if hidden == 1 else "frames"
            lines.append(f"  ... {hidden} more {noun} of {text} "
                         f"({depth + shown}..{depth + count - 1})")
        depth += count
    return lines


def _print_trap(trap: Trap) -> None:
    print(f"wasmtee run: trap: {trap}", file=sys.stderr)
    if not trap.frames:
        print("wasm backtrace: not recorded by this execution tier", file=sys.stderr)
        return
    print("wasm backtrace:", file=sys.stderr)
    for line in format_backtrace(trap.frames):
        print(line, file=sys.stderr)
    if not trap.callers_recorded:
        print("  (this execution tier records only the trapping function)", file=sys.stderr)


def guest_exit_status(code: int, command: str = "wasmtee run") -> int:
    """Return the process exit status for the guest's proc_exit `code`.

    A code outside 0..MAX_EXIT_CODE gives status 1 and a message that names
    it, as `wasmtime run` does. `code` is the u32 the guest passed.
    """
    if 0 <= code <= MAX_EXIT_CODE:
        return code
    code_text = str(code)
    if code >= 1 << 31:
        code_text += f" ({code - (1 << 32)} as a signed i32)"
    print(f"{command}: error: the guest exited with code {code_text}, which is outside "
          f"0..{MAX_EXIT_CODE} (shells reserve the codes above, and wasmtime rejects them "
          "too); exiting with status 1", file=sys.stderr)
    return 1


def run(args: argparse.Namespace) -> int:
    """Run the module; a UsageError (bad option value, missing export) exits with 2."""
    try:
        check_utf8_arguments(args)
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

    # Interruption checks let Ctrl-C stop native code (see wasmtee.cli.interrupt).
    config = wasmtee.Config(tier=args.tier, consume_fuel=args.fuel is not None,
                            epoch_interruption=args.timeout is not None or args.tier != "python")
    config.max_call_depth = args.max_call_depth
    engine = wasmtee.Engine(config)
    data = read_module_file(args.module)
    kind = classify(args.module, data)
    wasi_config = build_wasi_config(args)
    if kind == ModuleKind.ARTIFACT and args.tier_given and args.tier == "python":
        raise UsageError(f"{args.module} is an AOT artifact, which runs only on the llvm "
                         "tier; drop --tier python, or run the .wasm module")
    if kind == ModuleKind.ARTIFACT:
        # An AOT artifact from `wasmtee compile` contains native code, so it runs on the llvm tier.
        from wasmtee.llvm import aot

        try:
            # Interruption follows the artifact, so Ctrl-C can stop one compiled with it.
            interruptible = args.timeout is not None or aot.read_artifact(data)[0].interruptible
            engine = wasmtee.Engine(wasmtee.Config(
                tier="llvm", consume_fuel=config.consume_fuel,
                epoch_interruption=interruptible,
            ))
            # The artifact's engine takes the depth bound too; load_module checks it.
            engine.config.max_call_depth = args.max_call_depth
            module = aot.load_module(engine, data)
        except CompileError as exc:
            raise CompileError(f"{args.module} cannot be loaded as a wasmtee AOT artifact: "
                               f"{exc}") from None
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
        native = store.engine.tier.name == "llvm"
        with interrupt_on_sigint(store_interrupter(store), native):
            return _run_instance(args, store, linker, module)
    except WasiExit as exc:
        return guest_exit_status(exc.code)
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
    for val_type, value in zip(func.type(store).results, results):
        print(format_result(val_type, value))
    return 0


def wasmtee_func_class() -> type:
    from wasmtee.api.extern import Func

    return Func
