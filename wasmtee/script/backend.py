"""The runner's view of the engine: decode, validate, instantiate, call with raw values.

The runner talks to the runtime only through `Backend`, so that it works on
raw values (bit-exact floats, NaN payloads) instead of the public API's
converted ones.
"""

from __future__ import annotations

from typing import Any

from wasmtee.model import FuncType, Module, ValType


class Backend:
    """Decodes, validates and instantiates modules in one store on one tier."""

    def __init__(self, tier: str = "python") -> None:
        from wasmtee.binary import decode_module
        from wasmtee.valid import validate_module

        self.tier = tier
        self._decode = decode_module
        self._validate = validate_module
        self._spectest: Any = None
        self._setup_runtime()

    def _setup_runtime(self) -> None:
        raise NotImplementedError("the runtime is not available yet")

    def decode(self, data: bytes) -> Module:
        return self._decode(data)

    def validate(self, module: Module) -> object:
        return self._validate(module)

    def spectest(self) -> object:
        return self._spectest

    def instantiate(self, module: Module, info: object, externs: list[object]) -> object:
        raise NotImplementedError

    def export(self, instance: object, name: str) -> object | None:
        raise NotImplementedError

    def call(self, func: Any, args: list[object]) -> tuple[list[object], list[ValType]]:
        func_type: FuncType = func.type
        result = func.call(*args)
        results = list(func_type.results)
        if not results:
            return [], []
        if len(results) == 1:
            return [result], results
        return list(result), results

    def global_value(self, extern: Any) -> object:
        return extern.value

    def global_type(self, extern: Any) -> ValType:
        return extern.type.val_type
