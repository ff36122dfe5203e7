"""Typed wrappers over runtime objects: Func, Memory, Table, Global.

Values cross this boundary in API form: i32 and i64 as signed ints, f32 and
f64 as floats, funcref as a `Func` or None, externref as any object or None.
Every method takes the store (or a Caller) first, as in wasmtime-py.

Each extern belongs to the store it was created or instantiated in. Using it
with another store, or after its store is closed, raises UsageError. wasmtime
aborts the process with "object used with the wrong store" in the first
case and raises ValueError "already closed" in the second (wasmtime 50.0.1
from PyPI).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Self

from wasmtee.errors import ResourceLimitExceeded, Trap, TrapCode, UsageError
from wasmtee.model import FuncType, GlobalType, MemoryType, TableType, ValType
from wasmtee.runtime.caller import Caller
from wasmtee.runtime.func import FunctionInstance, HostFunction
from wasmtee.runtime.global_ import GlobalInstance
from wasmtee.runtime.memory import PAGE_SIZE, MemoryInstance
from wasmtee.runtime.store import Store
from wasmtee.runtime.table import TableInstance
from wasmtee.values import api_from_raw, raw_from_api

# The max number of calls through Func.__call__ active at once in one store,
# which bounds host functions that call back into wasm. Each such level uses C
# stack: with max_call_depth=100000 on CPython 3.11 (x86-64), 3000 levels ran
# and 5000 overflowed the 8 MiB main-thread stack. The python tier's default
# depth stops such recursion near 1500 levels anyway.
MAX_NESTED_CALLS = 1500


def store_of(store: Any) -> Store:
    """Return the Store behind a Store or Caller. Raises UsageError for anything else."""
    if isinstance(store, Store):
        return store
    if isinstance(store, Caller) and store.store is not None:
        return store.store
    raise UsageError(f"expected a Store or Caller, got {store!r}")


def check_use(store: Any, item: Any, what: str) -> None:
    """Raise UsageError unless the runtime extern `item` may be used with `store` now.

    `store` may be None for the methods where wasmtee makes it optional. In
    that case only the extern's own store is checked.
    """
    if store is not None:
        store_of(store).check_owner(item, what)
        return
    owner = item.store
    if owner is not None:
        owner.check_open()


def to_raw(val_type: ValType, value: Any, store: Store | None = None) -> Any:
    """Convert an API value to a raw value. Raises UsageError when it does not fit.

    With `store`, a Func value must belong to that store (or to none).
    """
    if val_type is ValType.FUNCREF:
        if value is None:
            return None
        if isinstance(value, Func):
            func = value._func
        elif isinstance(value, FunctionInstance):
            func = value
        else:
            raise UsageError(f"expected a Func or None for funcref, got {value!r}")
        if store is not None:
            store.check_owner(func, f"funcref value {value!r}")
        return func
    try:
        return raw_from_api(val_type, value)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    except OverflowError:
        raise UsageError(f"{value!r} is too large for {val_type.text}") from None


def from_raw(val_type: ValType, value: Any) -> Any:
    """Convert a raw value to its API form."""
    if val_type is ValType.FUNCREF:
        return None if value is None else Func._wrap(value)
    return api_from_raw(val_type, value)


def _to_raw_i32(value: Any) -> Any:
    if type(value) is int and -0x8000_0000 <= value <= 0xFFFF_FFFF:
        return value & 0xFFFF_FFFF
    return to_raw(ValType.I32, value)


def _to_raw_i64(value: Any) -> Any:
    if type(value) is int and -0x8000_0000_0000_0000 <= value <= 0xFFFF_FFFF_FFFF_FFFF:
        return value & 0xFFFF_FFFF_FFFF_FFFF
    return to_raw(ValType.I64, value)


def _to_raw_f64(value: Any) -> Any:
    if type(value) is float:
        return value
    return to_raw(ValType.F64, value)


def _from_raw_i32(value: int) -> int:
    return value - 0x1_0000_0000 if value & 0x8000_0000 else value


def _from_raw_i64(value: int) -> int:
    return value - 0x1_0000_0000_0000_0000 if value >> 63 else value


def _identity(value: Any) -> Any:
    return value


def _param_converter(val_type: ValType) -> Callable[[Any], Any]:
    if val_type is ValType.I32:
        return _to_raw_i32
    if val_type is ValType.I64:
        return _to_raw_i64
    if val_type is ValType.F64:
        return _to_raw_f64
    return lambda value: to_raw(val_type, value)


def _result_converter(val_type: ValType) -> Callable[[Any], Any]:
    if val_type is ValType.I32:
        return _from_raw_i32
    if val_type is ValType.I64:
        return _from_raw_i64
    if val_type is ValType.FUNCREF:
        return lambda value: from_raw(ValType.FUNCREF, value)
    return _identity


Converters = tuple[Callable[[Any], Any], ...]
# Per-signature converters for Func.__call__: (params, results, whether a param is a funcref).
_SIGNATURES: dict[FuncType, tuple[Converters, Converters, bool]] = {}


def _signature(func_type: FuncType) -> tuple[Converters, Converters, bool]:
    entry = _SIGNATURES.get(func_type)
    if entry is None:
        entry = (
            tuple(_param_converter(t) for t in func_type.params),
            tuple(_result_converter(t) for t in func_type.results),
            ValType.FUNCREF in func_type.params,
        )
        if len(_SIGNATURES) < 4096:
            _SIGNATURES[func_type] = entry
    return entry


def _check_index(name: str, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise UsageError(f"{name} must be an int or None, got {value!r}")


def _check_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{name} must be an int, got {value!r}")


def wrap_extern(item: Any) -> Any:
    """Return the API wrapper of a runtime object (function, memory, table, global)."""
    if isinstance(item, FunctionInstance):
        return Func._wrap(item)
    if isinstance(item, MemoryInstance):
        return Memory._wrap(item)
    if isinstance(item, TableInstance):
        return Table._wrap(item)
    if isinstance(item, GlobalInstance):
        return Global._wrap(item)
    if isinstance(item, (Func, Memory, Table, Global)):
        return item
    raise UsageError(f"not an extern: {item!r}")


def unwrap_extern(item: Any) -> Any:
    """Return the runtime object behind an API wrapper (runtime objects pass through).

    Raises UsageError for anything that is not an extern.
    """
    if isinstance(item, Func):
        return item._func
    if isinstance(item, Memory):
        return item._memory
    if isinstance(item, Table):
        return item._table
    if isinstance(item, Global):
        return item._global
    if isinstance(item, (FunctionInstance, MemoryInstance, TableInstance, GlobalInstance)):
        return item
    raise UsageError(f"not an extern (Func, Memory, Table or Global): {item!r}")


def _results_to_raw(results: tuple[ValType, ...], out: Any, store: Store | None) -> Any:
    """Convert a host callable's return value; raises TypeError (a HOST_ERROR trap) if it does not fit."""
    try:
        return _convert_results(results, out, store)
    except UsageError as exc:
        raise TypeError(f"host function returned a bad value: {exc}") from None


def _convert_results(results: tuple[ValType, ...], out: Any, store: Store | None) -> Any:
    if not results:
        if out is not None:
            raise TypeError(f"host function has no results but returned {out!r}")
        return None
    if len(results) == 1:
        return to_raw(results[0], out, store)
    if not isinstance(out, (list, tuple)) or len(out) != len(results):
        raise TypeError(f"host function must return {len(results)} values, got {out!r}")
    return tuple(to_raw(t, v, store) for t, v in zip(results, out))


def _api_host(
    func_type: FuncType, fn: Callable[..., Any], access_caller: bool, store: Store | None = None
) -> Callable[..., Any]:
    """Wrap an API-level callable as a raw-level host callable.

    A wrong result count or type raises TypeError, which the HostFunction
    turns into Trap(HOST_ERROR). With `store`, funcref results must belong to it.
    """
    params = func_type.params
    results = func_type.results
    simple = all(t in (ValType.F32, ValType.F64, ValType.EXTERNREF) for t in params)
    if access_caller:

        def raw_with_caller(caller: Caller, *args: Any) -> Any:
            if not simple:
                args = tuple(from_raw(t, a) for t, a in zip(params, args))
            owner = store if store is not None else caller.store
            return _results_to_raw(results, fn(caller, *args), owner)

        return raw_with_caller

    def raw(*args: Any) -> Any:
        if not simple:
            args = tuple(from_raw(t, a) for t, a in zip(params, args))
        return _results_to_raw(results, fn(*args), store)

    return raw


class Func:
    """A function: wasm or host. Call it with `func(store, *args)`.

    `Func(store, ty, fn)` makes a host function of `store`. With
    `access_caller=True`, `fn` receives a Caller before the arguments. When
    `fn` raises, the call raises the same exception if it is a WasmteeError
    (Trap, WasiExit, ...), and otherwise Trap(HOST_ERROR) whose `__cause__`
    is the original exception (wasmtime-py raises the original instead). A
    result of the wrong count or type is also Trap(HOST_ERROR).

    Raises UsageError when `ty` is not a FuncType, `fn` is not callable or
    the store is closed.
    """

    __slots__ = ("_func",)

    def __init__(
        self,
        store: Any,
        ty: FuncType,
        fn: Callable[..., Any],
        access_caller: bool = False,
    ) -> None:
        st = store_of(store)
        if not isinstance(ty, FuncType):
            raise UsageError(f"expected a FuncType, got {ty!r}")
        if not callable(fn):
            raise UsageError(f"expected a callable, got {fn!r}")
        st.check_open()
        ty = st.intern_type(ty)
        name = getattr(fn, "__name__", None)
        # Called from Python, the host function still gets this store through its Caller.
        caller = Caller(None, st) if access_caller else None
        self._func: FunctionInstance = HostFunction(
            ty, _api_host(ty, fn, access_caller, st), access_caller, name, caller, st
        )

    @classmethod
    def _wrap(cls, func: FunctionInstance) -> Func:
        self = cls.__new__(cls)
        self._func = func
        return self

    def _what(self) -> str:
        return f"function {self._func.name!r}" if self._func.name else "function"

    def type(self, store: Any = None) -> FuncType:
        """Return the function's type. Raises UsageError for a wrong or closed store."""
        check_use(store, self._func, self._what())
        return self._func.type

    @property
    def param_arity(self) -> int:
        return len(self._func.type.params)

    @property
    def result_arity(self) -> int:
        return len(self._func.type.results)

    @property
    def name(self) -> str | None:
        return self._func.name

    def __call__(self, store: Any, *args: Any) -> Any:
        """Call the function; return None, one value, or a list for several results.

        Raises UsageError for a wrong argument count or type, for a store
        other than the function's own and for a closed store; Trap when the
        function traps, and what a host function raises (see the class).
        """
        st = store if type(store) is Store else store_of(store)
        func = self._func
        owner = func.store
        if st._closed or (owner is not st and owner is not None):
            st.check_owner(func, self._what())
        params, results, has_funcref = _signature(func.type)
        if len(args) != len(params):
            raise UsageError(
                f"wrong number of arguments: {func.name or 'function'} expects "
                f"{len(params)}, got {len(args)}"
            )
        if has_funcref:
            for arg in args:
                if isinstance(arg, Func):
                    st.check_owner(arg._func, f"funcref argument {arg!r}")
        nested = st.nested_calls
        if nested >= MAX_NESTED_CALLS:
            raise Trap(TrapCode.STACK_EXHAUSTED,
                       f"more than {MAX_NESTED_CALLS} nested calls from the host into wasm")
        st.nested_calls = nested + 1
        try:
            if len(params) == 1:
                out = func.call(params[0](args[0]))
            else:
                out = func.call(*[convert(arg) for convert, arg in zip(params, args)])
        except RecursionError as exc:
            raise Trap(TrapCode.STACK_EXHAUSTED, "Python recursion limit") from exc
        finally:
            st.nested_calls -= 1
        if st._closed:
            # Another thread closed the store during the call, so `out` may come from zeroed memory.
            raise UsageError("the store was closed while the function ran, so its results are lost")
        if not results:
            return None
        if len(results) == 1:
            return results[0](out)
        return [convert(value) for convert, value in zip(results, out)]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Func) and other._func is self._func

    def __hash__(self) -> int:
        return id(self._func)

    def __repr__(self) -> str:
        return f"<Func {self._func.name or ''} {self._func.type}>"


class Memory:
    """A linear memory. `Memory(store, MemoryType)` creates a new one.

    Raises ResourceLimitExceeded when the store's memory limit is smaller
    than the minimum size. After `close()` (its own, its instance's or its
    store's) every method raises UsageError.
    """

    __slots__ = ("_memory",)

    def __init__(self, store: Any, ty: MemoryType) -> None:
        st = store_of(store)
        if not isinstance(ty, MemoryType):
            raise UsageError(f"expected a MemoryType, got {ty!r}")
        st.check_open()
        self._memory = st.new_memory(MemoryInstance(ty, st.memory_limit_pages))

    @classmethod
    def _wrap(cls, memory: MemoryInstance) -> Memory:
        self = cls.__new__(cls)
        self._memory = memory
        return self

    def _use(self, store: Any) -> MemoryInstance:
        """Return the runtime memory after checking the store and that the memory is open."""
        memory = self._memory
        check_use(store, memory, "memory")
        if memory.closed:
            raise UsageError("the memory is closed, so it can no longer be used")
        return memory

    def type(self, store: Any = None) -> MemoryType:
        return self._use(store).type

    def size(self, store: Any = None) -> int:
        """Return the size in pages."""
        return self._use(store).size // PAGE_SIZE

    def data_len(self, store: Any = None) -> int:
        """Return the size in bytes."""
        return self._use(store).size

    def grow(self, store: Any, delta: int) -> int:
        """Grow by `delta` pages and return the old size in pages.

        Raises UsageError for a negative delta, and ResourceLimitExceeded
        naming the old and requested sizes and the maximum when the memory
        cannot grow (its declared maximum or the store's limit). The wasm
        `memory.grow` instruction returns -1 in that case instead.
        """
        memory = self._use(store)
        if isinstance(delta, bool) or not isinstance(delta, int) or delta < 0:
            raise UsageError(f"delta must be a non-negative int, got {delta!r}")
        old = memory.grow(delta)
        if old < 0:
            raise ResourceLimitExceeded(memory.grow_failure(delta))
        return old

    def read(self, store: Any, start: int | None = 0, stop: int | None = None) -> bytearray:
        """Return a copy of memory[start:stop] (slice semantics, clamped to the size).

        Raises UsageError when `start` or `stop` is not an int or None.
        """
        memory = self._use(store)
        _check_index("start", start)
        _check_index("stop", stop)
        size = memory.size
        begin, end, _ = slice(start, stop).indices(size)
        if end <= begin:
            return bytearray()
        return bytearray(memory.buf[begin:end])

    def write(self, store: Any, data: bytes | bytearray | memoryview, start: int | None = None) -> int:
        """Write `data` at `start` (negative counts from the end); return the length.

        Raises Trap(MEMORY_OUT_OF_BOUNDS) naming the address when it does not
        fit, UsageError when `data` is not bytes-like or `start` not an int.
        """
        memory = self._use(store)
        _check_index("start", start)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise UsageError(f"expected bytes, bytearray or memoryview, got {type(data).__name__}")
        size = memory.size
        begin = slice(start, None).indices(size)[0] if start is not None else 0
        if start is not None and start >= size and len(data):
            begin = start
        memory.write(begin, data)
        return len(data)

    @property
    def address(self) -> int:
        """The base address for native code; valid until the memory or its store closes.

        Raises UsageError after that.
        """
        return self._use(None).address

    def close(self) -> None:
        """Release the mapping; every later use raises UsageError. Closing twice is allowed."""
        self._memory.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Memory) and other._memory is self._memory

    def __hash__(self) -> int:
        return id(self._memory)

    def __repr__(self) -> str:
        if self._memory.closed:
            return "<Memory closed>"
        return f"<Memory {self._memory.pages} pages>"


class Table:
    """A table of references. `Table(store, TableType, init)` creates a new one.

    Raises ResourceLimitExceeded when the store's table limit is smaller
    than the minimum size, UsageError when `init` does not fit the type or
    belongs to another store. Methods raise UsageError for a wrong or closed store.
    """

    __slots__ = ("_table",)

    def __init__(self, store: Any, ty: TableType, init: Any = None) -> None:
        st = store_of(store)
        if not isinstance(ty, TableType):
            raise UsageError(f"expected a TableType, got {ty!r}")
        st.check_open()
        self._table = st.new_table(TableInstance(ty, to_raw(ty.elem_type, init, st), st.table_limit))

    @classmethod
    def _wrap(cls, table: TableInstance) -> Table:
        self = cls.__new__(cls)
        self._table = table
        return self

    def type(self, store: Any = None) -> TableType:
        check_use(store, self._table, "table")
        return self._table.type

    def size(self, store: Any = None) -> int:
        check_use(store, self._table, "table")
        return self._table.size

    def get(self, store: Any, index: int) -> Any:
        """Return the element at `index`, or None when it is out of bounds (as wasmtime-py)."""
        check_use(store, self._table, "table")
        _check_int("index", index)
        elements = self._table.elements
        if not 0 <= index < len(elements):
            return None
        return from_raw(self._table.type.elem_type, elements[index])

    def set(self, store: Any, index: int, value: Any) -> None:
        """Set the element at `index`. Raises Trap(TABLE_OUT_OF_BOUNDS) or UsageError."""
        check_use(store, self._table, "table")
        _check_int("index", index)
        self._table.set(index, to_raw(self._table.type.elem_type, value, store_of(store)))

    def grow(self, store: Any, delta: int, init: Any = None) -> int:
        """Grow by `delta` elements set to `init`; return the old size.

        Raises ResourceLimitExceeded naming the old and requested sizes and
        the maximum when the table cannot grow (the wasm `table.grow`
        instruction returns -1 instead), UsageError for a bad argument.
        """
        check_use(store, self._table, "table")
        if isinstance(delta, bool) or not isinstance(delta, int) or delta < 0:
            raise UsageError(f"delta must be a non-negative int, got {delta!r}")
        old = self._table.grow(delta, to_raw(self._table.type.elem_type, init, store_of(store)))
        if old < 0:
            raise ResourceLimitExceeded(self._table.grow_failure(delta))
        return old

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Table) and other._table is self._table

    def __hash__(self) -> int:
        return id(self._table)

    def __repr__(self) -> str:
        return f"<Table {self._table.type.elem_type} size {self._table.size}>"


class Global:
    """A global variable. `Global(store, GlobalType, value)` creates a new one.

    Raises UsageError when `value` does not fit the type or belongs to
    another store. Methods raise UsageError for a wrong or closed store.
    """

    __slots__ = ("_global",)

    def __init__(self, store: Any, ty: GlobalType, value: Any) -> None:
        st = store_of(store)
        if not isinstance(ty, GlobalType):
            raise UsageError(f"expected a GlobalType, got {ty!r}")
        st.check_open()
        self._global = st.new_global(GlobalInstance(ty, to_raw(ty.val_type, value, st)))

    @classmethod
    def _wrap(cls, glob: GlobalInstance) -> Global:
        self = cls.__new__(cls)
        self._global = glob
        return self

    def type(self, store: Any = None) -> GlobalType:
        check_use(store, self._global, "global")
        return self._global.type

    def value(self, store: Any = None) -> Any:
        """Return the value in API form."""
        check_use(store, self._global, "global")
        return from_raw(self._global.type.val_type, self._global.value)

    def set_value(self, store: Any, value: Any) -> None:
        """Set the value. Raises UsageError for an immutable global or a value that does not fit."""
        check_use(store, self._global, "global")
        if not self._global.type.mutable:
            raise UsageError("cannot set an immutable global")
        self._global.value = to_raw(self._global.type.val_type, value, store_of(store))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Global) and other._global is self._global

    def __hash__(self) -> int:
        return id(self._global)

    def __repr__(self) -> str:
        value = from_raw(self._global.type.val_type, self._global.value)
        return f"<Global {self._global.type.val_type} = {value!r}>"


Extern = Func | Memory | Table | Global
ExternSeq = Sequence[Extern]
