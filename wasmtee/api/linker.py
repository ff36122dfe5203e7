"""The Linker: resolve imports by module and field name."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from wasmtee.api.extern import Func, _api_host, store_of, unwrap_extern, wrap_extern
from wasmtee.api.instance import Instance
from wasmtee.api.module import Module, check_store_compatible
from wasmtee.errors import LinkError, UsageError
from wasmtee.model import ExternKind, FuncType
from wasmtee.runtime.config import Engine
from wasmtee.runtime.func import HostFunction
from wasmtee.runtime.instance import instantiate

logger = logging.getLogger(__name__)


class Linker:
    """Definitions by (module, name), used to instantiate modules without listing imports.

    Defining a name twice raises LinkError unless `allow_shadowing` is True.
    Externs given to `define` and `define_instance` belong to one store, and
    instantiating with them in another store raises UsageError. Host
    functions from `define_func` fit every store.
    """

    def __init__(self, engine: Engine) -> None:
        if not isinstance(engine, Engine):
            raise UsageError(f"expected an Engine, got {engine!r}")
        self.engine = engine
        self.allow_shadowing = False
        self._defs: dict[tuple[str, str], Any] = {}

    def _insert(self, module: str, name: str, item: Any) -> None:
        if not isinstance(module, str) or not isinstance(name, str):
            raise UsageError(f"module and name must be str, got {module!r} and {name!r}")
        key = (module, name)
        if key in self._defs and not self.allow_shadowing:
            raise LinkError(f"import defined twice ({module}.{name})")
        self._defs[key] = item

    def define(self, store: Any, module: str, name: str, item: Any) -> None:
        """Define `module.name` as a Func, Memory, Table or Global of `store`.

        Raises UsageError for a non-extern or an extern of another store,
        and LinkError for a duplicate.
        """
        st = store_of(store)
        raw = unwrap_extern(item)
        st.check_owner(raw, f"the definition of {module}.{name}")
        self._insert(module, name, raw)

    def define_func(
        self,
        module: str,
        name: str,
        ty: FuncType,
        fn: Callable[..., Any],
        access_caller: bool = False,
    ) -> None:
        """Define a host function usable in every store of this engine.

        Raises UsageError for a bad type or callable, LinkError for a duplicate.
        """
        if not isinstance(ty, FuncType):
            raise UsageError(f"expected a FuncType, got {ty!r}")
        if not callable(fn):
            raise UsageError(f"expected a callable, got {fn!r}")
        func = HostFunction(ty, _api_host(ty, fn, access_caller), access_caller, name)
        self._insert(module, name, func)

    def define_instance(self, store: Any, name: str, instance: Instance) -> None:
        """Define every export of `instance` under the module name `name`.

        Raises LinkError for a duplicate, UsageError when the instance
        belongs to another store.
        """
        st = store_of(store)
        if not isinstance(instance, Instance):
            raise UsageError(f"expected an Instance, got {instance!r}")
        st.check_owner(instance.runtime_instance, f"instance {name!r}")
        for export_name, item in instance.runtime_instance.exports.items():
            self._insert(name, export_name, item)

    def define_wasi(self, store: Any, config: Any) -> Any:
        """Define the WASI preview1 functions (both module names) for `config`.

        Returns the WasiContext; close it when done to release host
        descriptors. Raises LinkError when a WASI name is already defined.
        """
        from wasmtee.wasi import add_to_linker

        return add_to_linker(self, store, config)

    def define_module(self, store: Any, name: str, module: Module) -> None:
        """Instantiate `module` with this linker and define its exports under `name`."""
        self.define_instance(store, name, self.instantiate(store, module))

    def get(self, store: Any, module: str, name: str) -> Any:
        """Return the definition of `module.name` as an API object.

        Raises LinkError "unknown import" when it is not defined, UsageError
        when it belongs to a store other than `store`.
        """
        st = store_of(store)
        try:
            item = self._defs[(module, name)]
        except KeyError:
            raise LinkError(f"unknown import ({module}.{name} is not defined in the linker)") from None
        st.check_owner(item, f"the definition of {module}.{name}")
        return wrap_extern(item)

    def instantiate(self, store: Any, module: Module) -> Instance:
        """Instantiate `module`, resolving each import by name.

        Raises LinkError "unknown import" or "incompatible import type"
        naming the import, and what Instance() raises, including UsageError
        when a definition belongs to a store other than `store`.
        """
        st = store_of(store)
        if not isinstance(module, Module):
            raise UsageError(f"expected a Module, got {module!r}")
        check_store_compatible(module, st)
        imports = []
        for imp in module.model.imports:
            try:
                imports.append(self._defs[(imp.module, imp.name)])
            except KeyError:
                raise LinkError(
                    f"unknown import ({imp.module}.{imp.name}: no {ExternKind(imp.kind)} "
                    f"is defined with that name)"
                ) from None
        runtime = instantiate(st, module._model, module._info, imports, module.compiled)
        return Instance._wrap(runtime)

    def __repr__(self) -> str:
        return f"<Linker {len(self._defs)} definitions>"


__all__ = ["Func", "Linker"]
