"""Instances and their exports."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Self

from wasmtee.api.extern import (
    Func,
    Global,
    Memory,
    Table,
    store_of,
    unwrap_extern,
    wrap_extern,
)
from wasmtee.api.module import Module, check_store_compatible
from wasmtee.errors import UsageError
from wasmtee.runtime.instance import ModuleInstance, instantiate

logger = logging.getLogger(__name__)


class InstanceExports(Mapping[str, Any]):
    """An instance's exports by name, as Func, Memory, Table or Global.

    Supports `exports["name"]`, `exports.name` and iteration over names.
    """

    def __init__(self, instance: ModuleInstance) -> None:
        self._items = {name: wrap_extern(item) for name, item in instance.exports.items()}

    def __getitem__(self, name: str) -> Any:
        return self._items[name]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_items"][name]
        except KeyError:
            raise AttributeError(f"no export named {name!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"<InstanceExports {list(self._items)}>"


class Instance:
    """An instantiated module.

    `Instance(store, module, imports)` takes one extern per import, in order.
    Raises LinkError for a missing or mismatched import, ResourceLimitExceeded
    when the store's limits are exceeded, Trap when a segment is out of
    bounds or the start function traps, and UsageError when an import
    belongs to another store or the store is closed.
    """

    def __init__(self, store: Any, module: Module, imports: Sequence[Any] = ()) -> None:
        st = store_of(store)
        if not isinstance(module, Module):
            raise UsageError(f"expected a Module, got {module!r}")
        check_store_compatible(module, st)
        if isinstance(imports, (str, bytes)) or not isinstance(imports, (list, tuple)):
            raise UsageError(f"imports must be a list or tuple of externs, got {imports!r}")
        raw = [unwrap_extern(item) for item in imports]
        self._instance = instantiate(st, module._model, module._info, raw, module.compiled)
        self._exports: InstanceExports | None = None
        logger.debug("instantiated %s", module.name or "module")

    @classmethod
    def _wrap(cls, instance: ModuleInstance) -> Instance:
        self = cls.__new__(cls)
        self._instance = instance
        self._exports = None
        return self

    @property
    def runtime_instance(self) -> ModuleInstance:
        """The runtime ModuleInstance (raw values, for tiers and tools)."""
        return self._instance

    def exports(self, store: Any = None) -> InstanceExports:
        """Return the exports by name. Raises UsageError for another or a closed store."""
        owner = self._instance.store
        if store is not None:
            st = store_of(store)
            if st is not owner:
                raise UsageError(
                    "the instance belongs to a different store; externs cannot be shared "
                    "between stores, so use the store it was instantiated in"
                )
        owner.check_open()
        if self._exports is None:
            self._exports = InstanceExports(self._instance)
        return self._exports

    def close(self) -> None:
        """Release the memories this instance defined.

        Later API uses of those memories raise UsageError, and wasm accesses
        to them trap with MEMORY_OUT_OF_BOUNDS. The store stays open.
        """
        self._instance.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Instance {self._instance.name or ''}>"


__all__ = ["Func", "Global", "Instance", "InstanceExports", "Memory", "Table"]
