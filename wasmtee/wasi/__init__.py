"""WASI preview1 (`wasi_snapshot_preview1`, and `wasi_unstable`) for wasmtee.

Usage with the embedding API:

    config = WasiConfig(argv=["app", "x"], env={"K": "V"}, stdout="inherit")
    config.preopen_dir("/srv/data", "/data", read_only=True)
    wasi = add_to_linker(linker, store, config)
    instance = linker.instantiate(store, module)
    instance.exports(store)["_start"](store)     # may raise WasiExit

`add_to_linker` returns the WasiContext (descriptor table); call
`wasi.close()` when done to close the host descriptors it holds.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from wasmtee.errors import UsageError
from wasmtee.model import FuncType, ValType
from wasmtee.wasi.config import Preopen, WasiConfig
from wasmtee.wasi.constants import Errno, WasiError
from wasmtee.wasi.context import WasiContext
from wasmtee.wasi.guest import GuestMemory
from wasmtee.wasi.preview1 import PREVIEW1, SIGNATURES, UNSTABLE, Layout, Preview1

logger = logging.getLogger(__name__)

MODULES: dict[str, Layout] = {"wasi_snapshot_preview1": PREVIEW1, "wasi_unstable": UNSTABLE}

__all__ = [
    "Errno", "Preopen", "WasiConfig", "WasiContext", "WasiError", "add_to_linker",
    "host_functions",
]


def _func_type(name: str) -> FuncType:
    params = tuple(ValType.I32 if c == "i" else ValType.I64 for c in SIGNATURES[name])
    results = () if name == "proc_exit" else (ValType.I32,)
    return FuncType(params, results)


def _raw_callable(method: Callable[..., Any]) -> Callable[..., Any]:
    """Adapt `method(mem, *args)` to the raw host convention `fn(caller, *args)`."""

    def call(caller: Any, *args: int) -> Any:
        try:
            return int(method(GuestMemory(caller.memory), *args))
        except WasiError as exc:
            logger.debug("%s%r -> %s", method.__name__, args, exc)
            return int(exc.errno)
        except RecursionError:
            raise
        except (OverflowError, ValueError) as exc:
            logger.debug("%s%r -> inval (%s)", method.__name__, args, exc)
            return int(Errno.INVAL)

    def call_no_memory(caller: Any, *args: int) -> Any:
        # proc_exit and sched_yield need no memory; a module without one may call them.
        try:
            result = method(_NoMemory(), *args)
        except WasiError as exc:
            return int(exc.errno)
        return None if result is None else int(result)

    if method.__name__ in ("proc_exit", "sched_yield", "proc_raise"):
        return call_no_memory
    return call


class _NoMemory(GuestMemory):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.size = 0


def host_functions(ctx: WasiContext, module: str = "wasi_snapshot_preview1") -> dict[str, Any]:
    """Return the HostFunction of every WASI function of `module`, bound to `ctx`."""
    from wasmtee.runtime.func import HostFunction

    if module not in MODULES:
        raise UsageError(f"unknown WASI module {module!r} (expected {', '.join(MODULES)})")
    impl = Preview1(ctx, MODULES[module])
    funcs = {}
    for name in SIGNATURES:
        if name == "sock_accept" and module == "wasi_unstable":
            continue
        funcs[name] = HostFunction(_func_type(name), _raw_callable(getattr(impl, name)), True, name)
    return funcs


def add_to_linker(linker: Any, store: Any, config: WasiConfig) -> WasiContext:
    """Define every WASI function in `linker`, under both module names.

    Returns the new WasiContext. Raises LinkError when a WASI name is already
    defined and the linker does not allow shadowing.
    """
    if not isinstance(config, WasiConfig):
        raise UsageError(f"expected a WasiConfig, got {config!r}")
    ctx = WasiContext(config, getattr(store, "interrupt_cell", None))
    for module in MODULES:
        for name, func in host_functions(ctx, module).items():
            linker.define(store, module, name, func)
    return ctx
