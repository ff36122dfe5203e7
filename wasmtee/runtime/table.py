"""Tables: lists of references that tiers read directly and write through methods.

Writes go through `set`, `grow`, `fill`, `copy` and `init`, which call the
`on_change` callbacks so that a native mirror of the table can stay in sync.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wasmtee.errors import ResourceLimitExceeded, Trap, TrapCode
from wasmtee.model import Limits, TableType, ValType

MAX_ELEMENTS = 0xFFFF_FFFF
# The element limit of a table whose store sets no table limit
# (Store.set_limits(table_elements=...)). It is the JS API's limit on table
# size; a Python list of this many references takes about 80 MB.
DEFAULT_MAX_ELEMENTS = 10_000_000
# Bytes per element of the list, as wasmtime counts them in its "failed to
# allocate" message (8 bytes per funcref slot on 64-bit hosts).
_ELEMENT_BYTES = 8


def uninitialized_element(index: int) -> Trap:
    """Return the trap of `call_indirect` through a null element; both tiers raise it.

    The spec test suite expects the index right after the text, without
    brackets: "uninitialized element 2".
    """
    trap = Trap(TrapCode.UNINITIALIZED_ELEMENT, f"index {index}")
    trap.args = (f"{TrapCode.UNINITIALIZED_ELEMENT.message} {index}",)
    return trap


class TableInstance:
    """A table of raw references (None or a function instance / host object).

    `elements` is the list itself; `max` the largest length `grow` may reach.
    `store` is the owning Store, or None for a table created outside any store.

    `limit_elements` is the store's table limit; None means DEFAULT_MAX_ELEMENTS.
    Raises ResourceLimitExceeded when the minimum size exceeds the limit or
    the host cannot allocate it.
    """

    __slots__ = ("__weakref__", "elements", "limit_elements", "max", "on_change", "store", "type")

    def __init__(
        self, table_type: TableType, init: Any = None, limit_elements: int | None = None
    ) -> None:
        limits = table_type.limits
        maximum = MAX_ELEMENTS if limits.max is None else min(limits.max, MAX_ELEMENTS)
        limit = DEFAULT_MAX_ELEMENTS if limit_elements is None else max(limit_elements, 0)
        maximum = min(maximum, limit)
        if limits.min > maximum:
            raise ResourceLimitExceeded(
                f"table size exceeds limit (minimum {limits.min} elements, "
                f"{limits.min * _ELEMENT_BYTES} bytes; limit {maximum} elements)"
            )
        self.type = table_type
        self.store: Any = None
        self.limit_elements = limit_elements
        self.max = maximum
        try:
            self.elements: list[Any] = [init] * limits.min
        except MemoryError:
            raise ResourceLimitExceeded(
                f"out of memory (failed to allocate a table of {limits.min} elements, "
                f"{limits.min * _ELEMENT_BYTES} bytes)"
            ) from None
        # Callbacks run after a write with (table, start, count); growth reports
        # the new slots (start = old length).
        self.on_change: list[Callable[[TableInstance, int, int], None]] = []

    @classmethod
    def from_limits(
        cls, elem_type: ValType, min_size: int, max_size: int | None = None
    ) -> TableInstance:
        return cls(TableType(elem_type, Limits(min_size, max_size)))

    @property
    def size(self) -> int:
        return len(self.elements)

    def _oob(self, index: int, count: int | None = None) -> Trap:
        what = f"index {index}" if count is None else f"index {index}, count {count}"
        return Trap(TrapCode.TABLE_OUT_OF_BOUNDS, f"{what}, table size {len(self.elements)}")

    def _changed(self, start: int, count: int) -> None:
        for callback in self.on_change:
            callback(self, start, count)

    def get(self, index: int) -> Any:
        """Return the element at `index`. Raises Trap(TABLE_OUT_OF_BOUNDS)."""
        if index < 0 or index >= len(self.elements):
            raise self._oob(index)
        return self.elements[index]

    def set(self, index: int, value: Any) -> None:
        """Store `value` at `index`. Raises Trap(TABLE_OUT_OF_BOUNDS)."""
        if index < 0 or index >= len(self.elements):
            raise self._oob(index)
        self.elements[index] = value
        if self.on_change:
            self._changed(index, 1)

    def grow(self, delta: int, init: Any = None) -> int:
        """Append `delta` copies of `init`; return the old size, or -1 when it cannot."""
        old = len(self.elements)
        if delta < 0 or old + delta > self.max:
            return -1
        if delta:
            try:
                self.elements.extend([init] * delta)
            except MemoryError:
                return -1
            if self.on_change:
                self._changed(old, delta)
        return old

    def grow_failure(self, delta: int) -> str:
        """Describe why `grow(delta)` returned -1."""
        old = len(self.elements)
        new = old + delta
        declared = self.type.limits.max
        if declared is not None and new > declared:
            reason = f"its declared maximum is {declared}"
        elif self.limit_elements is not None and new > self.limit_elements:
            reason = f"the store's table limit is {self.limit_elements}"
        elif self.limit_elements is None and new > DEFAULT_MAX_ELEMENTS:
            reason = f"the default table limit is {DEFAULT_MAX_ELEMENTS}"
        elif new > MAX_ELEMENTS:
            reason = f"a table has at most {MAX_ELEMENTS}"
        else:
            reason = "the host is out of memory for"
        return f"cannot grow table from {old} to {new} elements: {reason} elements"

    def fill(self, index: int, value: Any, count: int) -> None:
        """Set `count` elements from `index` to `value`. Raises Trap(TABLE_OUT_OF_BOUNDS)."""
        if index < 0 or count < 0 or index + count > len(self.elements):
            raise self._oob(index, count)
        if count:
            self.elements[index:index + count] = [value] * count
            if self.on_change:
                self._changed(index, count)

    def copy(self, dst: int, src_table: TableInstance, src: int, count: int) -> None:
        """Copy `count` elements from `src_table[src:]` to `self[dst:]` (overlap-safe).

        Raises Trap(TABLE_OUT_OF_BOUNDS) before writing anything.
        """
        if src < 0 or count < 0 or src + count > len(src_table.elements):
            raise src_table._oob(src, count)
        if dst < 0 or dst + count > len(self.elements):
            raise self._oob(dst, count)
        if count:
            self.elements[dst:dst + count] = src_table.elements[src:src + count]
            if self.on_change:
                self._changed(dst, count)

    def init(self, dst: int, segment: list[Any], src: int, count: int) -> None:
        """Copy `count` references from an element segment. Raises Trap(TABLE_OUT_OF_BOUNDS)."""
        if src < 0 or count < 0 or src + count > len(segment):
            raise Trap(
                TrapCode.TABLE_OUT_OF_BOUNDS,
                f"segment index {src}, count {count}, segment length {len(segment)}",
            )
        if dst < 0 or dst + count > len(self.elements):
            raise self._oob(dst, count)
        if count:
            self.elements[dst:dst + count] = segment[src:src + count]
            if self.on_change:
                self._changed(dst, count)

    def __repr__(self) -> str:
        return f"<TableInstance {self.type.elem_type} size {len(self.elements)}>"
