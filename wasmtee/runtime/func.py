"""Function instances: the one calling convention shared by both tiers and host code.

Every function instance has `type` (a `FuncType`), `name` (debug name or
None) and `call(*raw_args)`, which returns None for no results, the raw value
for one result and a tuple for two or more (docs/internals.md). Wasm functions
also carry the `module_instance` they belong to and their `index` in its
function index space; host functions leave both None. `store` is the owning
Store: the module instance's store, the store a host function was created in,
or None for a host function that fits every store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wasmtee.errors import Trap, TrapCode, UsageError, WasmteeError
from wasmtee.model import FuncType

if TYPE_CHECKING:
    from wasmtee.runtime.caller import Caller
    from wasmtee.runtime.instance import ModuleInstance

logger = logging.getLogger(__name__)


class FunctionInstance:
    """A callable function of any origin: a wasm function on either tier, or a host function.

    Tiers create wasm functions directly, filling `call` with their entry point.
    Positional order: `FunctionInstance(type, name, call, module_instance, index)`.
    """

    __slots__ = (
        "__dict__", "__weakref__", "call", "index", "module_instance", "name", "store", "type",
    )

    def __init__(
        self,
        type: FuncType,
        name: str | None = None,
        call: Callable[..., Any] | None = None,
        module_instance: ModuleInstance | None = None,
        index: int | None = None,
    ) -> None:
        self.type = type
        self.call = call if call is not None else _not_ready
        self.name = name
        self.module_instance = module_instance
        self.index = index
        self.store: Any = None if module_instance is None else module_instance.store

    def __repr__(self) -> str:
        label = self.name or (f"func {self.index}" if self.index is not None else "anonymous")
        return f"<{type(self).__name__} {label} {self.type}>"


def store_closed(*_args: object) -> Any:
    """Raise UsageError: the `call` of each function of a closed store."""
    raise UsageError("the function's store is closed, so the function can no longer be called")


def _not_ready(*_args: object) -> Any:
    from wasmtee.errors import InternalError

    raise InternalError("function called before its tier installed an entry point")


def _closed_during_call(func: HostFunction) -> None:
    raise UsageError(
        f"{func.name or 'a host function'} closed its store, so the calling wasm code "
        f"cannot continue"
    )


def _host_error(func: HostFunction, exc: BaseException) -> Trap:
    detail = f"{func.name or 'host function'}: {type(exc).__name__}: {exc}"
    return Trap(TrapCode.HOST_ERROR, detail)


def _recursion_trap(func: HostFunction, exc: RecursionError) -> Trap:
    """Return STACK_EXHAUSTED for Python's own recursion limit, else a host error.

    CPython's message for its limit starts with "maximum recursion depth
    exceeded"; a RecursionError that the host raised itself keeps its message.
    """
    if str(exc).startswith("maximum recursion depth exceeded"):
        return Trap(TrapCode.STACK_EXHAUSTED, f"Python recursion limit, in {func.name or 'a host function'}")
    return _host_error(func, exc)


class HostFunction(FunctionInstance):
    """A function implemented in Python, taking and returning raw values.

    With `access_caller=True` the callable receives a `Caller` before the wasm
    arguments. Instantiation binds one copy per importing instance with
    `bind(caller)`, so the tier-facing `call` never changes shape. `store`
    (or the caller's store) makes it belong to that store; without either it
    fits every store.

    `call` raises what the callable raises when it is a WasmteeError (Trap,
    WasiExit, ...); any other exception becomes Trap(HOST_ERROR) whose
    `__cause__` is the original. `call` raises UsageError when the
    function's store is closed, and also when the callable itself closes the
    store, after it returns, so that the wasm code that called it stops there.
    """

    __slots__ = ("access_caller", "callable", "caller")

    def __init__(
        self,
        func_type: FuncType,
        callable: Callable[..., Any],
        access_caller: bool = False,
        name: str | None = None,
        caller: Caller | None = None,
        store: Any = None,
    ) -> None:
        if not isinstance(func_type, FuncType):
            raise TypeError(f"expected a FuncType, got {func_type!r}")
        super().__init__(func_type, name=name)
        self.callable = callable
        self.access_caller = access_caller
        self.caller = caller
        if store is None and caller is not None:
            store = caller.store
        self.store = store
        self.call = self._make_call()

    def _make_call(self) -> Callable[..., Any]:
        fn = self.callable
        me = self
        # NOTE: a host function without a store cannot see a close, so python-tier code
        # after it runs on until its next call, which raises UsageError.
        store = self.store
        if self.access_caller:
            caller = self.caller
            if caller is None:
                from wasmtee.runtime.caller import Caller

                caller = Caller(None, None)

            def call(*args: Any) -> Any:
                if store is not None and store.closed:
                    store_closed()
                try:
                    result = fn(caller, *args)
                except WasmteeError:
                    raise
                except RecursionError as exc:
                    raise _recursion_trap(me, exc) from exc
                except Exception as exc:
                    raise _host_error(me, exc) from exc
                if store is not None and store.closed:
                    _closed_during_call(me)
                return result

        else:

            def call(*args: Any) -> Any:
                if store is not None and store.closed:
                    store_closed()
                try:
                    result = fn(*args)
                except WasmteeError:
                    raise
                except RecursionError as exc:
                    raise _recursion_trap(me, exc) from exc
                except Exception as exc:
                    raise _host_error(me, exc) from exc
                if store is not None and store.closed:
                    _closed_during_call(me)
                return result

        return call

    def bind(self, caller: Caller) -> HostFunction:
        """Return a copy whose callable receives `caller`; self when it takes no caller."""
        if not self.access_caller:
            return self
        bound = HostFunction(self.type, self.callable, True, self.name, caller, self.store)
        return bound
