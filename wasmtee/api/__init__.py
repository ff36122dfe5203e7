"""The public embedding API, in the spirit of wasmtime-py."""

from wasmtee.api.extern import Func, Global, Memory, Table
from wasmtee.api.instance import Instance, InstanceExports
from wasmtee.api.linker import Linker
from wasmtee.api.module import ExportType, ImportType, Module

__all__ = [
    "ExportType",
    "Func",
    "Global",
    "ImportType",
    "Instance",
    "InstanceExports",
    "Linker",
    "Memory",
    "Module",
    "Table",
]
