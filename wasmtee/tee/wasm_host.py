"""The enclave's use of wasmtee's public embedding API (wasmtee/__init__.py).

The enclave runs modules with the same runtime as everyone else. This module
keeps that dependency in one place so the ECALL handlers need not know the
embedding API's details.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Iterator
from typing import Any

from wasmtee.tee.errors import EnclaveError

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

    def run_wasi(self, module: Any, argv: list[str], env: dict[str, str], stdin: bytes,
                 host_imports: Any = None,
                 preopens: list[tuple[str, Any]] | None = None,
                 timeout: float | None = None) -> tuple[int, BoundedOutput, BoundedOutput]:
        """Run a WASI command's `_start`; return its exit status, stdout and stderr.

        The guest sees no host directory: only the `preopens` backends
        (guest path, wasmtee.wasi.fs backend), for example protected files.
        With `timeout`, the guest traps once that many seconds have passed.
        """
        from wasmtee.wasi import WasiConfig, add_to_linker

        stdout = BoundedOutput(MAX_OUTPUT_SIZE)
        stderr = BoundedOutput(MAX_OUTPUT_SIZE)
        config = WasiConfig(argv=list(argv), env=dict(env), stdin=bytes(stdin),
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
        return exit_code, stdout, stderr


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

