"""`wasmtee run --enclave BACKEND`: run a WASI command inside an enclave.

The module, its arguments, environment and standard input cross the ECALL
boundary. The enclave runs `_start` with its own runtime and returns the
exit status and captured output, and this module writes that output to the
host's standard output and error.

Directories: the guest never sees a plain host directory. Each run accepts
at most one `--dir HOST::GUEST`, and GUEST becomes a directory of protected
files (wasmtee.tee.protected_fs). Their contents are encrypted and
authenticated inside the enclave with a key sealed to MRENCLAVE, and stored
as ciphertext under HOST through file OCALLs. So HOST holds ciphertext that
only an enclave with the same measurement on the same platform can read.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from wasmtee.errors import UsageError
from wasmtee.signal_watch import SignalWatcher
from wasmtee.tee.enclave import Enclave, EnclaveCallError, MessageTooLargeError
from wasmtee.tee.errors import TeeError
from wasmtee.tee.measure import EnclaveConfig
from wasmtee.tee.wasm_host import MAX_OUTPUT_SIZE
from wasmtee.tee.ratls_service import MAX_TIMEOUT

log = logging.getLogger(__name__)

TRAP_EXIT_STATUS = 134
EXIT_INTERRUPTED = 130
MIB = 1024 * 1024
# Standard input without a file descriptor is read whole and travels in the
# run_wasi ECALL, next to the arguments and the environment, so it must leave
# room in the enclave's message cap.
MAX_STDIN_SIZE = EnclaveConfig().max_message_size - MIB
# Seconds that an interrupted enclave gets to stop its guest and reply.
INTERRUPT_GRACE = 5.0
# The protected-file store that `--dir` maps to, under HOST/protected/<name>/.
PROTECTED_STORE = "run"
# Options of plain `wasmtee run` that the enclave path does not implement.
_UNSUPPORTED = (("invoke", "--invoke"), ("fuel", "--fuel"), ("max_memory", "--max-memory"))


def run_in_enclave(args: argparse.Namespace) -> int:
    """Run `args.module` as a WASI command in an enclave of backend `args.enclave`.

    Returns the guest's exit status, 134 after a trap, or 1 when the enclave
    cannot start or rejects the module. Raises UsageError for options that
    the enclave path does not support or that are invalid.
    """
    _check_options(args)
    module_bytes = _read_module(args.module)
    argv0 = args.argv0 if args.argv0 is not None else os.path.basename(args.module)
    argv = [argv0, *args.args]
    env = _environment(args.env)
    protected_dir, storage_dir = _protected_dir(args.dir)
    stdin = _stdin_stream()
    if stdin is None:
        stdin = _read_stdin()
        _check_size("standard input", len(stdin), MAX_STDIN_SIZE)
    interrupts: list[int] = []
    try:
        with Enclave(backend=args.enclave, storage_dir=storage_dir) as enclave:
            log.info("running %s in the %s enclave, MRENCLAVE %s", args.module,
                     args.enclave, enclave.identity["mr_enclave"].hex())
            with _forward_sigint(enclave, interrupts):
                module = enclave.load_module(module_bytes)
                result = enclave.run_wasi(module, argv, env, stdin,
                                          protected_dir=protected_dir,
                                          protected_store=PROTECTED_STORE,
                                          timeout=getattr(args, "timeout", None),
                                          **_output_streams())
    except MessageTooLargeError as exc:
        if exc.op == "load_module":
            content = f"the module makes a message of {exc.size} bytes"
        else:
            content = f"standard input, arguments and environment make a message of {exc.size} bytes"
        print(f"wasmtee run: error: {content}, over the {exc.limit // MIB} MiB message "
              "limit of --enclave", file=sys.stderr)
        return 1
    except EnclaveCallError as exc:
        if interrupts:
            return _interrupted()
        if exc.kind == "Trap":
            print(f"wasmtee run: trap inside the enclave: {exc}", file=sys.stderr)
            return TRAP_EXIT_STATUS
        print(f"wasmtee run: error: the enclave rejected {args.module}: {exc}",
              file=sys.stderr)
        return 1
    except TeeError as exc:
        if interrupts:
            return _interrupted()
        print(f"wasmtee run: error: enclave failed: {exc}", file=sys.stderr)
        return 1
    _write(sys.stdout, result.stdout)
    _write(sys.stderr, result.stderr)
    from wasmtee.cli.run import guest_exit_status

    status = guest_exit_status(result.exit_code)
    for name, dropped in (("standard output", result.stdout_dropped),
                          ("standard error", result.stderr_dropped)):
        if dropped:
            print(f"wasmtee run: error: the guest wrote {MAX_OUTPUT_SIZE + dropped} bytes to "
                  f"{name}, and --enclave keeps at most {MAX_OUTPUT_SIZE // MIB} MiB of it; "
                  f"the last {dropped} bytes were dropped (the guest exited with code "
                  f"{result.exit_code})", file=sys.stderr)
            status = status or 1
    return status


def _output_streams() -> dict[str, Any]:
    """Return this process's binary stdout and stderr for streamed guest output, if both exist.

    Without them (under pytest's capture, for example), the enclave returns
    the output at the end, at most MAX_OUTPUT_SIZE bytes per stream.
    """
    streams = {name: getattr(getattr(sys, name), "buffer", None) for name in ("stdout", "stderr")}
    if None in streams.values():
        return {}
    sys.stdout.flush()
    sys.stderr.flush()
    return streams


def _interrupted() -> int:
    print("wasmtee run: interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED


@contextlib.contextmanager
def _forward_sigint(enclave: Enclave, interrupts: list[int]) -> Iterator[None]:
    """Forward SIGINT to the enclave while the body runs, and record it in `interrupts`.

    The first SIGINT interrupts the enclave's guest and kills the enclave
    process if it is still busy INTERRUPT_GRACE seconds later. A second
    SIGINT kills it at once. KeyboardInterrupt is held back meanwhile,
    because the ECALL has to wait for its result.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    timers: list[threading.Timer] = []

    def on_sigint(signum: int) -> None:
        interrupts.append(signum)
        if len(interrupts) > 1:
            enclave.kill()
            return
        enclave.interrupt()
        timer = threading.Timer(INTERRUPT_GRACE, enclave.kill)
        timer.daemon = True
        timer.start()
        timers.append(timer)

    previous = signal.signal(signal.SIGINT, lambda signum, frame: None)
    try:
        with SignalWatcher(on_sigint):
            yield
    finally:
        signal.signal(signal.SIGINT, previous)
        for timer in timers:
            timer.cancel()


def _check_size(description: str, size: int, limit: int) -> None:
    if size > limit:
        raise UsageError(f"{description} is {size} bytes, over the {limit // MIB} MiB limit "
                         "of --enclave")


def _check_options(args: argparse.Namespace) -> None:
    for attribute, option in _UNSUPPORTED:
        if getattr(args, attribute, None) is not None:
            raise UsageError(f"{option} is not supported with --enclave")
    timeout = getattr(args, "timeout", None)
    if timeout is not None and timeout > MAX_TIMEOUT:
        raise UsageError(f"--timeout {timeout} is above the enclave's max of {MAX_TIMEOUT} s")
    if args.dir_ro:
        raise UsageError("--dir-ro is not supported with --enclave; use --dir, which "
                         "maps to a protected-file directory")
    if getattr(args, "tier_given", False) and args.tier != "python":
        # The enclave picks its own tier, so a request for another one would be ignored.
        raise UsageError("--tier is not supported with --enclave")


def _read_module(path: str) -> bytes:
    from wasmtee.cli.module_file import ARTIFACT_MAGIC

    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise UsageError(f"cannot read module {path!r}: {exc.strerror}") from None
    if data.startswith(ARTIFACT_MAGIC):
        # The enclave compiles and measures the module itself; native code from the
        # host would bypass both.
        raise UsageError(f"{path} is a wasmtee AOT artifact, and AOT artifacts cannot run "
                         "in an enclave: run the .wasm or .wat file it was compiled from")
    return data


def _environment(items: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not name:
            raise UsageError(f"invalid --env {item!r} (expected NAME=VALUE or NAME)")
        if not sep:
            if name not in os.environ:
                raise UsageError(f"--env {name}: not set in the host environment")
            value = os.environ[name]
        env[name] = value
    return env


def _protected_dir(specs: list[str]) -> tuple[str | None, str | None]:
    """Return the guest path and host storage directory of the one `--dir`, if any."""
    if not specs:
        return None, None
    if len(specs) > 1:
        raise UsageError(f"--enclave accepts one --dir, got {len(specs)}: {specs}")
    host, sep, guest = specs[0].partition("::")
    if not host:
        raise UsageError(f"invalid --dir {specs[0]!r} (expected HOST or HOST::GUEST)")
    guest = guest if sep else host
    if not os.path.isdir(host):
        raise UsageError(f"--dir {specs[0]!r}: host directory {host!r} not found")
    return guest, host


def _stdin_stream() -> Any:
    """Return this process's binary stdin for the guest to read while it runs, or None.

    None means that stdin has no file descriptor (pytest's capture, for
    example); then `_read_stdin` reads it whole before the guest starts.
    """
    buffer = getattr(sys.stdin, "buffer", None)
    try:
        buffer.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    return buffer


def _read_stdin() -> bytes:
    """Return all of standard input, or b"" when it is a terminal or not readable.

    The ECALL carries stdin as one value, so the guest cannot read it interactively.
    """
    stream: Any = sys.stdin
    if stream is None:
        return b""
    try:
        if stream.isatty():
            return b""
        return stream.buffer.read()
    except (AttributeError, OSError, ValueError):
        # No binary buffer (for example pytest's capture) or a closed descriptor.
        return b""


def _write(stream: Any, data: bytes) -> None:
    stream.flush()
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        buffer.write(data)
        buffer.flush()
    else:
        stream.write(data.decode("utf-8", "replace"))
        stream.flush()
