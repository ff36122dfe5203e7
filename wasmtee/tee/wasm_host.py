"""The enclave's use of wasmtee's public embedding API (wasmtee/__init__.py).

The enclave runs modules with the same runtime as everyone else. This module
keeps that dependency in one place so the ECALL handlers need not know the
embedding API's details.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from wasmtee.tee.errors import EnclaveError

log = logging.getLogger(__name__)

# Standard output or error kept per run_wasi call; the rest is dropped.
MAX_OUTPUT_SIZE = 16 * 1024 * 1024


def _load_api() -> Any:
    try:
        return importlib.import_module("wasmtee")
    except ImportError as exc:
        raise EnclaveError(f"the wasm runtime is not available: {exc}") from None


class WasmRuntime:
    """Compile, instantiate and call modules with wasmtee's embedding API.

    Raises EnclaveError when the runtime in this build lacks the needed API.
    Errors from the runtime (DecodeError, Trap, ...) propagate unchanged.
    """

    def __init__(self, tier: str = "auto") -> None:
        api = _load_api()
        missing = [name for name in ("Engine", "Store", "Module", "Linker")
                   if not hasattr(api, name)]
        if missing:
            raise EnclaveError(
                f"the wasm runtime is not available: wasmtee does not export {missing}"
            )
        self._api = api
        # Interruption lets run_wasi enforce a wall-clock limit on a guest, and
        # lets `interrupt` stop one.
        self._engine = api.Engine(api.Config(tier=tier, epoch_interruption=True))
        self._running_stores: set[Any] = set()
        self._running_lock = threading.Lock()

    def interrupt(self) -> int:
        """Make the guest code that runs now trap with INTERRUPTED; safe from any thread.

        Returns the number of stores that were running guest code.
        """
        with self._running_lock:
            stores = list(self._running_stores)
        for store in stores:
            store.interrupt()
        return len(stores)

    @contextlib.contextmanager
    def _running(self, store: Any) -> Iterator[None]:
        with self._running_lock:
            self._running_stores.add(store)
        try:
            yield
        finally:
            with self._running_lock:
                self._running_stores.discard(store)

    def compile(self, module_bytes: bytes) -> Any:
        return self._api.Module(self._engine, module_bytes)

    def instantiate(self, module: Any, host_imports: Any = None) -> Any:
        """Instantiate `module` in a fresh store.

        `host_imports` is a GuestAttestation (or None); its functions are
        defined under the "wasmtee_attest" import module.
        """
        store = self._api.Store(self._engine)
        linker = self._api.Linker(self._engine)
        if host_imports is not None:
            self._define_guest_functions(linker, host_imports)
        instance = linker.instantiate(store, module)
        return (store, instance)

    def _define_guest_functions(self, linker: Any, guest: Any) -> None:
        from wasmtee.model import FuncType, ValType
        from wasmtee.tee.guest_api import IMPORT_MODULE

        for name, (params, results, function) in guest.host_functions().items():
            func_type = FuncType(tuple(ValType.I32 for _ in params),
                                 tuple(ValType.I32 for _ in results))
            linker.define_func(IMPORT_MODULE, name, func_type, _with_memory(function),
                               access_caller=True)

    def call(self, instance: Any, export: str, args: list[Any]) -> list[Any]:
        store, wasm_instance = instance
        exports = wasm_instance.exports(store)
        try:
            func = exports[export]
        except (KeyError, TypeError):
            raise EnclaveError(f"instance has no exported function {export!r}") from None
        if not callable(func):
            raise EnclaveError(f"export {export!r} is not a function")
        store.clear_interrupt()
        with self._running(store):
            result = func(store, *args)
        if result is None:
            return []
        if isinstance(result, (list, tuple)):
            return list(result)
        return [result]

    def run_wasi(self, module: Any, argv: list[str], env: dict[str, str], stdin: Any,
                 host_imports: Any = None,
                 preopens: list[tuple[str, Any]] | None = None,
                 timeout: float | None = None,
                 output_sink: OutputSink | None = None) -> tuple[int, Any, Any]:
        """Run a WASI command's `_start`; return its exit status, stdout and stderr.

        The guest sees no host directory: only the `preopens` backends
        (guest path, wasmtee.wasi.fs backend), for example protected files.
        With `timeout`, the guest traps once that many seconds have passed.
        `stdin` is bytes or a binary file object with `read(n)`. Output goes to `output_sink(fd, data)` as the guest writes it when a
        sink is given (see StreamedOutput). Otherwise it is kept in memory, at
        most MAX_OUTPUT_SIZE bytes per stream (see BoundedOutput).
        """
        from wasmtee.wasi import WasiConfig, add_to_linker

        if output_sink is not None:
            streamed = StreamedOutputs(output_sink)
            stdout, stderr = streamed.stream(1), streamed.stream(2)
            if not isinstance(stdin, bytes):
                stdin = FlushingInput(stdin, streamed)
            streamed.start()
        else:
            stdout = BoundedOutput(MAX_OUTPUT_SIZE)
            stderr = BoundedOutput(MAX_OUTPUT_SIZE)
        if isinstance(stdin, (bytes, bytearray)):
            stdin = bytes(stdin)
        config = WasiConfig(argv=list(argv), env=dict(env), stdin=stdin,
                            stdout=stdout, stderr=stderr)
        for guest_path, backend in preopens or []:
            config.preopen_backend(guest_path, backend)
        store = self._api.Store(self._engine)
        linker = self._api.Linker(self._engine)
        context = add_to_linker(linker, store, config)
        if host_imports is not None:
            self._define_guest_functions(linker, host_imports)
        try:
            if timeout is not None:
                store.set_deadline(timeout)
            instance = linker.instantiate(store, module)
            try:
                start = instance.exports(store)["_start"]
            except KeyError:
                raise EnclaveError("module has no exported _start function; "
                                   "it is not a WASI command") from None
            try:
                with self._running(store):
                    start(store)
                exit_code = 0
            except self._api.WasiExit as exc:
                exit_code = exc.code
        finally:
            if timeout is not None:
                store.set_deadline(None)
            context.close()
            # Output written before a trap reaches the host too.
            if output_sink is not None:
                streamed.stop()
        return exit_code, stdout, stderr


OutputSink = Callable[[int, bytes], None]
# StreamedOutputs sends buffered output once this many bytes are waiting, or
# once the oldest waiting byte is FLUSH_INTERVAL seconds old.
STREAM_BUFFER_SIZE = 64 * 1024
FLUSH_INTERVAL = 0.05


class StreamedOutputs:
    """Standard output and error that go to `sink(fd, data)` in batches, in write order.

    Batching keeps a guest that writes one byte at a time from paying for one
    sink call (an OCALL) per byte. A flusher thread sends output that waits
    longer than FLUSH_INTERVAL, because a guest that then computes for a
    long time writes nothing that would send it. So the sink must be safe to
    call from that thread. A sink that raises OSError makes the guest's next
    write fail with that errno (EPIPE for a closed pipe, for example).
    """

    def __init__(self, sink: OutputSink) -> None:
        self._sink = sink
        self._lock = threading.Lock()
        self._fd = 1
        self._buffer = bytearray()
        self._buffered_since = 0.0
        # The first failed send to each fd; every later write to that fd raises it.
        self._errors: dict[int, OSError] = {}
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None

    def stream(self, fd: int) -> StreamedOutput:
        return StreamedOutput(self, fd)

    def start(self) -> None:
        self._flusher = threading.Thread(target=self._flush_periodically,
                                         name="wasmtee-output-flusher", daemon=True)
        self._flusher.start()

    def write(self, fd: int, data: bytes) -> None:
        with self._lock:
            self._raise_error(fd)
            if fd != self._fd:
                self._send_locked()
                self._fd = fd
            if not self._buffer:
                self._buffered_since = time.monotonic()
            self._buffer += data
            if len(self._buffer) >= STREAM_BUFFER_SIZE:
                self._send_locked()
            self._raise_error(fd)

    def stop(self) -> None:
        """Stop the flusher and send what is left; a host that no longer takes output loses it."""
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join()
        with self._lock:
            self._send_locked()
        for fd, error in self._errors.items():
            log.info("dropped guest output to fd %d: %s", fd, error)

    def flush(self) -> None:
        """Send the waiting output now."""
        with self._lock:
            self._send_locked()

    def _flush_periodically(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL / 2):
            with self._lock:
                if self._buffer and time.monotonic() - self._buffered_since >= FLUSH_INTERVAL:
                    self._send_locked()

    def _send_locked(self) -> None:
        data = bytes(self._buffer)
        self._buffer.clear()
        if not data or self._fd in self._errors:
            return
        try:
            self._sink(self._fd, data)
        except OSError as exc:
            self._errors[self._fd] = exc
        except Exception as exc:  # noqa: BLE001 - reported to the guest's next write
            log.warning("cannot send guest output to the host: %s", exc)
            self._errors[self._fd] = OSError(errno.EIO, str(exc))

    def _raise_error(self, fd: int) -> None:
        error = self._errors.get(fd)
        if error is not None:
            from wasmtee.wasi.constants import WasiError, errno_from_os

            raise WasiError(errno_from_os(error), "write output")


class FlushingInput:
    """Guest input that sends the waiting output before each read.

    A read may wait for the host's input for a long time, and the OCALL
    that waits blocks the flusher, so a prompt would otherwise not reach
    the user before the guest waits for the answer.
    """

    def __init__(self, stream: Any, outputs: StreamedOutputs) -> None:
        self._stream = stream
        self._outputs = outputs

    def read(self, size: int) -> bytes:
        self._outputs.flush()
        return self._stream.read(size)

    def isatty(self) -> bool:
        return False


class StreamedOutput:
    """One file descriptor's writable stream of a StreamedOutputs."""

    def __init__(self, outputs: StreamedOutputs, fd: int) -> None:
        self._outputs = outputs
        self._fd = fd
        self.dropped = 0

    def write(self, data: bytes) -> int:
        self._outputs.write(self._fd, bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def getvalue(self) -> bytes:
        return b""


class BoundedOutput:
    """A write-only binary stream that keeps at most `limit` bytes.

    Output past the limit is counted and dropped, so a guest that writes
    forever cannot exhaust the enclave's memory.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.dropped = 0
        self._chunks: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> int:
        room = self.limit - self._size
        if room > 0:
            kept = bytes(data[:room])
            self._chunks.append(kept)
            self._size += len(kept)
        self.dropped += max(0, len(data) - max(room, 0))
        return len(data)

    def flush(self) -> None:
        pass

    def getvalue(self) -> bytes:
        return b"".join(self._chunks)


def _with_memory(function: Any) -> Any:
    """Adapt a guest API function to a host function that receives the Caller.

    The embedding API passes i32 arguments as signed integers, and the
    guest API wants addresses and lengths as unsigned ones.
    """

    def host_function(caller: Any, *args: int) -> int:
        memory = caller.memory
        if memory is None:
            return -1
        return int(function(memory, *(arg & 0xFFFFFFFF for arg in args)))

    return host_function

