"""The runner's view of the engine: decode, validate, instantiate, call with raw values.

The runner talks to the runtime only through `Backend`, so that it works on
raw values (bit-exact floats, NaN payloads) instead of the public API's
converted ones.
"""

from __future__ import annotations

from typing import Any

from wasmtee.binary import decode_module
from wasmtee.model import FuncType, Module, ValType
from wasmtee.runtime import Config, Engine, ModuleInstance, Store, instantiate
from wasmtee.script.spectest import spectest_exports

# One engine per tier, shared by every script, so tiers load once per process.
_ENGINES: dict[str, Engine] = {}


class SpectestInstance:
    """The spectest host module, with the same `export(name)` lookup as a ModuleInstance."""

    def __init__(self, store: Store) -> None:
        self.exports = spectest_exports(store)

    def export(self, name: str) -> object | None:
        return self.exports.get(name)


class Backend:
    """Decodes, validates and instantiates modules in one store on one tier.

    Raises UsageError when the tier cannot be loaded.
    """

    def __init__(self, tier: str = "python") -> None:
        from wasmtee.valid import validate_module

        engine = _ENGINES.get(tier)
        if engine is None:
            # Interruption lets the runner stop a command that runs too long.
            engine = Engine(Config(tier=tier, epoch_interruption=True))
            _ = (
                engine.tier
            )  # load now: an unavailable tier raises UsageError here, once
            _ENGINES[tier] = engine
        self.tier = tier
        self.store = Store(engine)
        self._validate = validate_module
        self._spectest = SpectestInstance(self.store)

    def close(self) -> None:
        self.store.close()

    def interrupt(self) -> None:
        """Make the running wasm code trap with INTERRUPTED; safe from another thread."""
        self.store.interrupt()

    def clear_interrupt(self) -> None:
        self.store.clear_interrupt()

    def decode(self, data: bytes) -> Module:
        return decode_module(data)

    def validate(self, module: Module) -> object:
        return self._validate(module)

    def spectest(self) -> object:
        return self._spectest

    def instantiate(
        self, module: Module, info: object, externs: list[object]
    ) -> object:
        return instantiate(self.store, module, info, externs)

    def export(self, instance: Any, name: str) -> object | None:
        return instance.export(name)

    def call(self, func: Any, args: list[object]) -> tuple[list[object], list[ValType]]:
        """Call a function instance with raw arguments; return raw results and their types."""
        func_type: FuncType = func.type
        if len(args) != len(func_type.params):
            from wasmtee.errors import UsageError

            raise UsageError(
                f"expected {len(func_type.params)} arguments, got {len(args)}"
            )
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


__all__ = ["Backend", "ModuleInstance", "SpectestInstance"]
