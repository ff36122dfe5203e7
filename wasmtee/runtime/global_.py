"""Global variables: a type and a raw value that tiers read and write directly."""

from __future__ import annotations

from typing import Any

from wasmtee.model import GlobalType, ValType
from wasmtee.values import default_value


class GlobalInstance:
    """A global: `type` (GlobalType), `value` (raw) and the owning `store` (or None)."""

    __slots__ = ("__weakref__", "store", "type", "value")

    def __init__(self, global_type: GlobalType, value: Any = None) -> None:
        self.type = global_type
        self.store: Any = None
        self.value = default_value(global_type.val_type) if value is None else value

    @classmethod
    def of(cls, val_type: ValType, value: Any, mutable: bool = False) -> GlobalInstance:
        return cls(GlobalType(val_type, mutable), value)

    def __repr__(self) -> str:
        mut = "mut " if self.type.mutable else ""
        return f"<GlobalInstance {mut}{self.type.val_type} = {self.value!r}>"
