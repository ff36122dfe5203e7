"""wasmtee: a WebAssembly runtime for trusted cloud applications.

The embedding API follows wasmtime-py:

    engine = wasmtee.Engine()
    store = wasmtee.Store(engine)
    module = wasmtee.Module(engine, "(module (func (export \\"f\\") (result i32) i32.const 7))")
    instance = wasmtee.Instance(store, module, [])
    instance.exports(store)["f"](store)   # 7

Names load on first use, so `import wasmtee.model` stays cheap for tools that
need only one layer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Config": "wasmtee.runtime.config",
    "Engine": "wasmtee.runtime.config",
    "Store": "wasmtee.runtime.store",
    "Caller": "wasmtee.runtime.caller",
    "Module": "wasmtee.api.module",
    "ImportType": "wasmtee.api.module",
    "ExportType": "wasmtee.api.module",
    "Instance": "wasmtee.api.instance",
    "InstanceExports": "wasmtee.api.instance",
    "Linker": "wasmtee.api.linker",
    "Func": "wasmtee.api.extern",
    "Memory": "wasmtee.api.extern",
    "Table": "wasmtee.api.extern",
    "Global": "wasmtee.api.extern",
    "FuncType": "wasmtee.model",
    "ValType": "wasmtee.model",
    "Limits": "wasmtee.model",
    "MemoryType": "wasmtee.model",
    "TableType": "wasmtee.model",
    "GlobalType": "wasmtee.model",
    "WasmteeError": "wasmtee.errors",
    "DecodeError": "wasmtee.errors",
    "ValidationError": "wasmtee.errors",
    "UnsupportedFeature": "wasmtee.errors",
    "WatSyntaxError": "wasmtee.errors",
    "LinkError": "wasmtee.errors",
    "ResourceLimitExceeded": "wasmtee.errors",
    "CompileError": "wasmtee.errors",
    "UsageError": "wasmtee.errors",
    "Trap": "wasmtee.errors",
    "TrapCode": "wasmtee.errors",
    "WasiExit": "wasmtee.errors",
    "WasiConfig": "wasmtee.wasi",
}

__all__ = [
    "Caller",
    "CompileError",
    "Config",
    "DecodeError",
    "Engine",
    "ExportType",
    "Func",
    "FuncType",
    "Global",
    "GlobalType",
    "ImportType",
    "Instance",
    "InstanceExports",
    "Limits",
    "LinkError",
    "Linker",
    "Memory",
    "MemoryType",
    "Module",
    "ResourceLimitExceeded",
    "Store",
    "Table",
    "TableType",
    "Trap",
    "TrapCode",
    "UnsupportedFeature",
    "UsageError",
    "ValType",
    "ValidationError",
    "WasiConfig",
    "WasiExit",
    "WasmteeError",
    "WatSyntaxError",
    "__version__",
]

if TYPE_CHECKING:
    from wasmtee.api.extern import Func, Global, Memory, Table
    from wasmtee.api.instance import Instance, InstanceExports
    from wasmtee.api.linker import Linker
    from wasmtee.api.module import ExportType, ImportType, Module
    from wasmtee.errors import (
        CompileError,
        DecodeError,
        LinkError,
        ResourceLimitExceeded,
        Trap,
        TrapCode,
        UnsupportedFeature,
        UsageError,
        ValidationError,
        WasiExit,
        WasmteeError,
        WatSyntaxError,
    )
    from wasmtee.model import (
        FuncType,
        GlobalType,
        Limits,
        MemoryType,
        TableType,
        ValType,
    )
    from wasmtee.runtime.caller import Caller
    from wasmtee.runtime.config import Config, Engine
    from wasmtee.runtime.store import Store
    from wasmtee.wasi import WasiConfig


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'wasmtee' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
