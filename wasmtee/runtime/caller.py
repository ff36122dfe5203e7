"""The Caller handed to host functions created with access_caller=True."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wasmtee.runtime.instance import ModuleInstance
    from wasmtee.runtime.memory import MemoryInstance
    from wasmtee.runtime.store import Store


class Caller:
    """The importing instance and its store, as seen from a host function.

    `get_export(name)` returns the raw runtime object (MemoryInstance,
    FunctionInstance, ...); `get(name)` and `caller[name]` return the public
    API wrapper (wasmtee.Memory, wasmtee.Func, ...). A host function called
    directly, outside any instance, gets a Caller whose instance is None.
    """

    __slots__ = ("instance", "store")

    def __init__(self, instance: ModuleInstance | None, store: Store | None) -> None:
        self.instance = instance
        self.store = store

    @property
    def data(self) -> Any:
        """The store's embedder data."""
        return None if self.store is None else self.store.data

    def get_export(self, name: str) -> Any:
        """Return the runtime object exported as `name`, or None."""
        if self.instance is None:
            return None
        return self.instance.exports.get(name)

    @property
    def memory(self) -> MemoryInstance | None:
        """The memory exported as "memory", else the instance's first memory, else None."""
        if self.instance is None:
            return None
        from wasmtee.runtime.memory import MemoryInstance

        memory = self.instance.exports.get("memory")
        if isinstance(memory, MemoryInstance):
            return memory
        return self.instance.mems[0] if self.instance.mems else None

    def get(self, name: str) -> Any:
        """Return the public API wrapper of the export `name`, or None."""
        item = self.get_export(name)
        if item is None:
            return None
        from wasmtee.api.extern import wrap_extern

        return wrap_extern(item)

    def __getitem__(self, name: str) -> Any:
        item = self.get(name)
        if item is None:
            raise KeyError(name)
        return item

    def __repr__(self) -> str:
        return f"<Caller of {self.instance!r}>"
