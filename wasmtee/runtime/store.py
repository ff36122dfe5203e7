"""The store: limits, fuel and interruption cells, interned types, and the externs it owns."""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any, Self

from wasmtee.errors import UsageError
from wasmtee.model import FuncType
from wasmtee.runtime.config import MAX_DEADLINE_SECONDS, Config, Engine
from wasmtee.runtime.global_ import GlobalInstance
from wasmtee.runtime.memory import PAGE_SIZE, MemoryInstance
from wasmtee.runtime.table import TableInstance

# Largest fuel amount that Store.set_fuel accepts, as in wasmtime (u64).
MAX_FUEL = 2**64 - 1

logger = logging.getLogger(__name__)


def _check_limit(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"{name} must be a non-negative int or None, got {value!r}")
    return value


class InterruptCell(list):  # type: ignore[type-arg]
    """The one-element list `[interrupted]` that the python tier reads at loop back-edges.

    Native code cannot read a Python list, so the llvm tier registers objects
    with an `interrupt` attribute (its context blocks) in `native_contexts`;
    setting the flag writes through to each of them.
    """

    __slots__ = ("native_contexts",)

    def __init__(self) -> None:
        super().__init__([False])
        self.native_contexts: weakref.WeakSet[Any] = weakref.WeakSet()

    def __setitem__(self, index: Any, value: Any) -> None:
        list.__setitem__(self, index, value)
        for context in list(self.native_contexts):
            context.interrupt = 1 if value else 0


def _fire(cell: list[bool]) -> None:
    cell[0] = True


class Store:
    """All runtime state of a group of instances, and the limits that bound it.

    `fuel_cell` is a one-element list with the remaining fuel when the
    engine consumes fuel, else None. `interrupt_cell[0]` turns True on
    `interrupt()` or when a deadline passes, and stays True until
    `set_deadline()` or `clear_interrupt()`. `max_call_depth` bounds wasm
    recursion. `data` is free for the embedder.

    Memories, tables, globals and instances created in a store record it as
    their `store`. `close()` releases the memories and disables the
    instances' functions. Afterwards every API use of these externs, and every
    call of a function of this store, raises UsageError.
    """

    def __init__(self, engine: Engine | None = None, data: Any = None) -> None:
        if engine is None:
            engine = Engine(Config(tier="python"))
        if not isinstance(engine, Engine):
            raise UsageError(f"expected an Engine, got {engine!r}")
        self.engine = engine
        self.config: Config = engine.config
        self.data = data
        self.fuel_cell: list[int] | None = [0] if self.config.consume_fuel else None
        self.interrupt_cell: InterruptCell = InterruptCell()
        self.max_call_depth: int = self.config.max_call_depth
        self.memory_limit: int | None = None  # bytes per linear memory
        self.table_limit: int | None = None  # elements per table
        self.instance_limit: int | None = None
        self.instance_count = 0
        # Calls through the API's Func.__call__ active now (see MAX_NESTED_CALLS).
        self.nested_calls = 0
        self._types: dict[FuncType, FuncType] = {}
        self._memories: weakref.WeakSet[MemoryInstance] = weakref.WeakSet()
        self._instances: weakref.WeakSet[Any] = weakref.WeakSet()
        self._timer: threading.Timer | None = None
        self._closed = False

    # -- fuel --------------------------------------------------------------

    def _fuel(self) -> list[int]:
        if self.fuel_cell is None:
            raise UsageError("fuel is not enabled: create the engine with Config(consume_fuel=True)")
        return self.fuel_cell

    def set_fuel(self, fuel: int) -> None:
        """Set the remaining fuel, in instructions (see docs/internals.md).

        Raises UsageError when fuel is disabled or `fuel` is not in 0..2**64-1
        (the range of wasmtime's u64 fuel).
        """
        cell = self._fuel()
        if isinstance(fuel, bool) or not isinstance(fuel, int) or fuel < 0:
            raise UsageError(f"fuel must be a non-negative int, got {fuel!r}")
        if fuel > MAX_FUEL:
            raise UsageError(f"fuel {fuel} is too large (the maximum is 2**64-1 = {MAX_FUEL})")
        cell[0] = fuel

    def get_fuel(self) -> int:
        """Return the remaining fuel. Raises UsageError when fuel is disabled."""
        return max(self._fuel()[0], 0)

    # -- limits ------------------------------------------------------------

    def set_limits(
        self,
        memory_size: int | None = None,
        table_elements: int | None = None,
        instances: int | None = None,
    ) -> None:
        """Bound each linear memory (bytes), each table (elements) and the instance count.

        A None argument removes that limit. The memory limit applies to
        memories created afterwards: it fixes their reservation.
        Raises UsageError for a negative or non-int limit.
        """
        self.memory_limit = _check_limit("memory_size", memory_size)
        self.table_limit = _check_limit("table_elements", table_elements)
        self.instance_limit = _check_limit("instances", instances)

    @property
    def memory_limit_pages(self) -> int | None:
        return None if self.memory_limit is None else self.memory_limit // PAGE_SIZE

    # -- interruption ------------------------------------------------------

    def _require_interruption(self) -> None:
        if not self.config.epoch_interruption:
            raise UsageError(
                "interruption is not enabled: create the engine with "
                "Config(epoch_interruption=True)"
            )

    def interrupt(self) -> None:
        """Make running wasm code in this store trap with INTERRUPTED; safe from any thread.

        Raises UsageError when the engine does not enable interruption.
        """
        self._require_interruption()
        self.interrupt_cell[0] = True

    def clear_interrupt(self) -> None:
        """Let code run again after an interrupt."""
        self.interrupt_cell[0] = False

    def set_deadline(self, seconds: float | None) -> None:
        """Interrupt this store `seconds` from now (None cancels); clears an earlier interrupt.

        Raises UsageError when the engine does not enable interruption, and
        for NaN, a negative value or one above MAX_DEADLINE_SECONDS (1e9).
        """
        self._require_interruption()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.interrupt_cell[0] = False
        if seconds is None:
            return
        if (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
                or not 0 <= seconds <= MAX_DEADLINE_SECONDS):
            # The chained comparison is False for NaN too.
            raise UsageError(f"deadline must be a number of seconds in 0..{MAX_DEADLINE_SECONDS:g}, "
                             f"got {seconds!r}")
        # The timer references the cell, not the store, so it never keeps the store alive.
        timer = threading.Timer(float(seconds), _fire, (self.interrupt_cell,))
        timer.daemon = True
        timer.start()
        self._timer = timer

    # -- shared state ------------------------------------------------------

    def intern_type(self, func_type: FuncType) -> FuncType:
        """Return the store's canonical object equal to `func_type`."""
        return self._types.setdefault(func_type, func_type)

    def new_memory(self, memory: MemoryInstance) -> MemoryInstance:
        """Make this store the owner of `memory`, so that `close()` releases it."""
        self.check_open()
        memory.store = self
        self._memories.add(memory)
        return memory

    def new_table(self, table: TableInstance) -> TableInstance:
        """Make this store the owner of `table`."""
        self.check_open()
        table.store = self
        return table

    def new_global(self, glob: GlobalInstance) -> GlobalInstance:
        """Make this store the owner of `glob`."""
        self.check_open()
        glob.store = self
        return glob

    def new_instance(self, instance: Any) -> None:
        """Record a module instance, so that `close()` disables its functions."""
        self.check_open()
        self._instances.add(instance)

    @property
    def closed(self) -> bool:
        return self._closed

    def check_open(self) -> None:
        """Raise UsageError when `close()` has run."""
        if self._closed:
            raise UsageError("the store is closed, so its functions, memories, tables and "
                             "globals can no longer be used")

    def check_owner(self, item: Any, what: str) -> None:
        """Raise UsageError unless `item` (a runtime extern) may be used in this store.

        An extern whose `store` is None belongs to no store (for example a
        host function defined with `Linker.define_func`) and fits every store.
        """
        owner = getattr(item, "store", None)
        if owner is not None and owner is not self:
            raise UsageError(
                f"{what} belongs to a different store; externs cannot be shared between "
                f"stores, so create it in the store that uses it"
            )
        self.check_open()

    def close(self) -> None:
        """Release every memory of this store, disable its instances and cancel its deadline.

        Closing twice is allowed. Later calls of the store's functions and API
        uses of its externs raise UsageError. A host function may close the
        store while wasm code waits for it: that code stops with UsageError
        when the host function returns. Code that another thread runs at the
        time reads zeros from its memory, whose mapping stays in place until
        the call returns, and the API call then raises UsageError.
        """
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._closed = True
        for instance in list(self._instances):
            instance.release()
        self._instances = weakref.WeakSet()
        for memory in list(self._memories):
            memory.close()
        self._memories = weakref.WeakSet()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = ", closed" if self._closed else ""
        return f"<Store {self.instance_count} instances{state}>"
