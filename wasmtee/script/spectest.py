"""The `spectest` host module that the spec test suite imports.

Its contents match the spectest module of the WebAssembly spec reference
interpreter.
The print functions take the listed parameters, return nothing and log their
arguments at debug level. The globals are global_i32 and global_i64 (666) and
global_f32 and global_f64 (666.6). The table holds 10 funcref elements with
maximum 20, and the memory has 1 page with maximum 2."""

from __future__ import annotations

import logging

from wasmtee.model import FuncType, GlobalType, Limits, MemoryType, TableType, ValType
from wasmtee.runtime import (
    GlobalInstance,
    HostFunction,
    MemoryInstance,
    Store,
    TableInstance,
)
from wasmtee.values import round_f32

log = logging.getLogger(__name__)

I32, I64, F32, F64 = ValType.I32, ValType.I64, ValType.F32, ValType.F64

PRINT_FUNCTIONS = {
    "print": (),
    "print_i32": (I32,),
    "print_i64": (I64,),
    "print_f32": (F32,),
    "print_f64": (F64,),
    "print_i32_f32": (I32, F32),
    "print_f64_f64": (F64, F64),
}


def _make_print(name: str):  # type: ignore[no-untyped-def]
    def print_values(*args: object) -> None:
        log.debug("spectest.%s%r", name, args)

    return print_values


def spectest_exports(store: Store) -> dict[str, object]:
    """Create the spectest module's exports in `store`, keyed by export name."""
    exports: dict[str, object] = {}
    for name, params in PRINT_FUNCTIONS.items():
        func_type = store.intern_type(FuncType(params, ()))
        exports[name] = HostFunction(
            func_type, _make_print(name), name=f"spectest.{name}"
        )
    exports["global_i32"] = GlobalInstance(GlobalType(I32, False), 666)
    exports["global_i64"] = GlobalInstance(GlobalType(I64, False), 666)
    exports["global_f32"] = GlobalInstance(GlobalType(F32, False), round_f32(666.6))
    exports["global_f64"] = GlobalInstance(GlobalType(F64, False), 666.6)
    exports["table"] = TableInstance(TableType(ValType.FUNCREF, Limits(10, 20)))
    exports["memory"] = store.new_memory(MemoryInstance(MemoryType(Limits(1, 2))))
    return exports
