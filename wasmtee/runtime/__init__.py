"""The runtime: store, instances, memories, tables, globals, functions, linking."""

from wasmtee.runtime.caller import Caller
from wasmtee.runtime.config import Config, Engine
from wasmtee.runtime.func import FunctionInstance, HostFunction
from wasmtee.runtime.global_ import GlobalInstance
from wasmtee.runtime.instance import ModuleInstance, eval_const, instantiate
from wasmtee.runtime.memory import PAGE_SIZE, MemoryInstance
from wasmtee.runtime.store import Store
from wasmtee.runtime.table import TableInstance

__all__ = [
    "PAGE_SIZE",
    "Caller",
    "Config",
    "Engine",
    "FunctionInstance",
    "GlobalInstance",
    "HostFunction",
    "MemoryInstance",
    "ModuleInstance",
    "Store",
    "TableInstance",
    "eval_const",
    "instantiate",
]
