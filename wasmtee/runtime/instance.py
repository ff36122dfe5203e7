"""Module instances and instantiation (WebAssembly 2.0, section 4.5.4)."""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from wasmtee.errors import (
    InternalError,
    LinkError,
    ResourceLimitExceeded,
    Trap,
    TrapCode,
)
from wasmtee.model import (
    ConstExpr,
    ExternKind,
    FuncType,
    GlobalType,
    Import,
    Limits,
    MemoryType,
    Module,
    SegmentMode,
    TableType,
)
from wasmtee.opcodes import BY_NAME
from wasmtee.runtime.caller import Caller
from wasmtee.runtime.func import FunctionInstance, HostFunction, store_closed
from wasmtee.runtime.global_ import GlobalInstance
from wasmtee.runtime.memory import MemoryInstance
from wasmtee.runtime.table import TableInstance
from wasmtee.values import MASK32, MASK64, f32_from_bits, f64_from_bits

if TYPE_CHECKING:
    from wasmtee.runtime.store import Store

logger = logging.getLogger(__name__)

Extern = FunctionInstance | TableInstance | MemoryInstance | GlobalInstance


class ModuleInstance:
    """One instantiated module.

    `funcs`, `tables`, `mems` and `globals` are the full index spaces
    (imports first). `types` contains the module's function types interned in
    the store. `elems` are lists of raw references (a dropped segment is an
    empty list), `datas` bytes (dropped is b""), `exports` maps names to
    runtime objects. `release_hooks` are callables that a tier adds to drop
    what it caches of this instance when the store closes (see `release`).
    """

    def __init__(self, module: Module, store: Store, name: str | None = None) -> None:
        self.module = module
        self.store = store
        self.name = name if name is not None else module.names.module_name
        self.types: list[FuncType] = [store.intern_type(t) for t in module.types]
        self.funcs: list[FunctionInstance] = []
        self.tables: list[TableInstance] = []
        self.mems: list[MemoryInstance] = []
        self.globals: list[GlobalInstance] = []
        self.elems: list[list[Any]] = []
        self.datas: list[bytes] = []
        self.exports: dict[str, Extern] = {}
        self.info: Any = None
        self.compiled: Any = None
        self.release_hooks: list[Callable[[], None]] = []

    def export(self, name: str) -> Extern | None:
        return self.exports.get(name)

    def release(self) -> None:
        """Make every function this instance defined raise UsageError. `Store.close` calls it.

        The tiers' hooks replace what they bound directly (the python tier's
        namespace entries, the llvm tier's runtime callbacks), so wasm code that
        is still running when its store closes fails at its next call.
        """
        imported = len(self.module.imports_of(ExternKind.FUNC))
        for function in self.funcs[imported:]:
            function.call = store_closed
        for hook in self.release_hooks:
            hook()

    def close(self) -> None:
        """Release the memories this instance defined (not imported ones)."""
        imported = len(self.module.imports_of(ExternKind.MEMORY))
        for memory in self.mems[imported:]:
            memory.close()

    def __repr__(self) -> str:
        return f"<ModuleInstance {self.name or 'anonymous'}>"


# -- import matching ----------------------------------------------------------


def _limits_match(actual: Limits, expected: Limits) -> bool:
    if actual.min < expected.min:
        return False
    if expected.max is None:
        return True
    return actual.max is not None and actual.max <= expected.max


def _limits_text(limits: Limits) -> str:
    return f"{limits.min}" if limits.max is None else f"{limits.min}..{limits.max}"


def extern_type_text(item: Any) -> str:
    """Describe a runtime object's extern type for error messages."""
    if isinstance(item, FunctionInstance):
        return f"func {item.type}"
    if isinstance(item, TableInstance):
        return f"table {item.type.elem_type} {_limits_text(Limits(item.size, item.type.limits.max))}"
    if isinstance(item, MemoryInstance):
        return f"memory {_limits_text(Limits(item.pages, item.type.limits.max))}"
    if isinstance(item, GlobalInstance):
        mut = "mut " if item.type.mutable else ""
        return f"global {mut}{item.type.val_type}"
    return type(item).__name__


def _expected_text(module: Module, imp: Import) -> str:
    desc = imp.desc
    if imp.kind is ExternKind.FUNC:
        return f"func {module.types[desc]}"  # type: ignore[index]
    if isinstance(desc, TableType):
        return f"table {desc.elem_type} {_limits_text(desc.limits)}"
    if isinstance(desc, MemoryType):
        return f"memory {_limits_text(desc.limits)}"
    if isinstance(desc, GlobalType):
        return f"global {'mut ' if desc.mutable else ''}{desc.val_type}"
    return str(imp.kind)


def check_import(module: Module, imp: Import, item: Any) -> None:
    """Raise LinkError "incompatible import type" unless `item` matches the import."""
    desc = imp.desc
    ok = False
    if imp.kind is ExternKind.FUNC:
        ok = isinstance(item, FunctionInstance) and item.type == module.types[desc]  # type: ignore[index]
    elif imp.kind is ExternKind.TABLE:
        ok = (
            isinstance(item, TableInstance)
            and isinstance(desc, TableType)
            and item.type.elem_type == desc.elem_type
            and _limits_match(Limits(item.size, item.type.limits.max), desc.limits)
        )
    elif imp.kind is ExternKind.MEMORY:
        ok = (
            isinstance(item, MemoryInstance)
            and isinstance(desc, MemoryType)
            and _limits_match(Limits(item.pages, item.type.limits.max), desc.limits)
        )
    elif imp.kind is ExternKind.GLOBAL:
        ok = isinstance(item, GlobalInstance) and item.type == desc
    if not ok:
        raise LinkError(
            f"incompatible import type ({imp.module}.{imp.name}: expected "
            f"{_expected_text(module, imp)}, got {extern_type_text(item)})"
        )


# -- constant expressions ----------------------------------------------------


_OP = {name: BY_NAME[name].code for name in (
    "i32.const", "i64.const", "f32.const", "f64.const", "global.get", "ref.null",
    "ref.func", "end", "i32.add", "i32.sub", "i32.mul", "i64.add", "i64.sub", "i64.mul",
)}
I32_CONST, I64_CONST = _OP["i32.const"], _OP["i64.const"]
F32_CONST, F64_CONST = _OP["f32.const"], _OP["f64.const"]
GLOBAL_GET, REF_NULL, REF_FUNC, END = _OP["global.get"], _OP["ref.null"], _OP["ref.func"], _OP["end"]
# The extended-const arithmetic: opcode to (mask, operation).
_ARITH: dict[int, tuple[int, Callable[[int, int], int]]] = {
    _OP["i32.add"]: (MASK32, operator.add),
    _OP["i32.sub"]: (MASK32, operator.sub),
    _OP["i32.mul"]: (MASK32, operator.mul),
    _OP["i64.add"]: (MASK64, operator.add),
    _OP["i64.sub"]: (MASK64, operator.sub),
    _OP["i64.mul"]: (MASK64, operator.mul),
}


def eval_const(expr: ConstExpr, instance: ModuleInstance) -> Any:
    """Evaluate a validated constant expression to a raw value.

    Raises InternalError for an instruction the validator should have rejected.
    """
    stack: list[Any] = []
    push = stack.append
    for instr in expr:
        op = instr.op
        if op == I32_CONST:
            push(instr.imm & MASK32)
        elif op == I64_CONST:
            push(instr.imm & MASK64)
        elif op == F32_CONST:
            push(f32_from_bits(instr.imm))
        elif op == F64_CONST:
            push(f64_from_bits(instr.imm))
        elif op == GLOBAL_GET:
            push(instance.globals[instr.imm].value)
        elif op == REF_NULL:
            push(None)
        elif op == REF_FUNC:
            push(instance.funcs[instr.imm])
        elif op == END:
            break
        elif op in _ARITH:
            mask, operation = _ARITH[op]
            right = stack.pop()
            left = stack.pop()
            push(operation(left, right) & mask)
        else:
            raise InternalError(f"constant expression has a non-constant instruction (opcode 0x{op:x})")
    if len(stack) != 1:
        raise InternalError(f"constant expression left {len(stack)} values instead of 1")
    return stack[0]


def _active_offset(offset: ConstExpr | None, index: int) -> ConstExpr:
    if offset is None:
        raise InternalError(f"active segment {index} has no offset expression")
    return offset


# -- instantiation ------------------------------------------------------------


def instantiate(
    store: Store,
    module: Module,
    info: Any,
    imports: Sequence[Any],
    compiled: Any = None,
    name: str | None = None,
) -> ModuleInstance:
    """Instantiate a validated module with resolved imports, in import order.

    `compiled` is the tier's CompiledModule; when None the store's engine
    compiles the module. Raises LinkError for a missing or mismatched import,
    ResourceLimitExceeded when the store's limits are exceeded, and Trap when
    a segment is out of bounds or the start function traps, and UsageError
    when the store is closed or an import belongs to another store.
    """
    store.check_open()
    if len(imports) != len(module.imports):
        missing = module.imports[len(imports)] if len(imports) < len(module.imports) else None
        where = f"{missing.module}.{missing.name}" if missing else "extra imports"
        raise LinkError(
            f"unknown import ({where}: {len(module.imports)} imports expected, {len(imports)} given)"
        )
    if store.instance_limit is not None and store.instance_count >= store.instance_limit:
        raise ResourceLimitExceeded(
            f"instance count exceeds limit (limit {store.instance_limit})"
        )
    for imp, item in zip(module.imports, imports):
        check_import(module, imp, item)
        store.check_owner(item, f"import {imp.module}.{imp.name} ({ExternKind(imp.kind)})")
    if compiled is None:
        compiled = store.engine.tier.compile(module, info, store.config)

    instance = ModuleInstance(module, store, name)
    instance.info = info
    instance.compiled = compiled
    caller: Caller | None = None
    for imp, item in zip(module.imports, imports):
        if imp.kind is ExternKind.FUNC:
            if isinstance(item, HostFunction) and item.access_caller:
                if caller is None:
                    caller = Caller(instance, store)
                item = item.bind(caller)
            instance.funcs.append(item)
        elif imp.kind is ExternKind.TABLE:
            instance.tables.append(item)
        elif imp.kind is ExternKind.MEMORY:
            instance.mems.append(item)
        else:
            instance.globals.append(item)

    # Tables and memories first: they may fail on limits before any code is made.
    for table in module.tables:
        instance.tables.append(store.new_table(TableInstance(table.type, None, store.table_limit)))
    for mem in module.mems:
        instance.mems.append(store.new_memory(MemoryInstance(mem.type, store.memory_limit_pages)))
    store.instance_count += 1
    store.new_instance(instance)

    defined = compiled.make_functions(instance)
    if len(defined) != len(module.funcs):
        raise InternalError(
            f"tier made {len(defined)} functions for a module that defines {len(module.funcs)}"
        )
    instance.funcs.extend(defined)
    for glob in module.globals:
        instance.globals.append(
            store.new_global(GlobalInstance(glob.type, eval_const(glob.init, instance)))
        )
    for segment in module.elems:
        instance.elems.append([eval_const(expr, instance) for expr in segment.init])
    instance.datas = [segment.init for segment in module.datas]

    for export in module.exports:
        space: list[Any]
        if export.kind is ExternKind.FUNC:
            space = instance.funcs
        elif export.kind is ExternKind.TABLE:
            space = instance.tables
        elif export.kind is ExternKind.MEMORY:
            space = instance.mems
        else:
            space = instance.globals
        item = space[export.index]
        instance.exports[export.name] = item
        if isinstance(item, FunctionInstance) and item.name is None:
            item.name = export.name

    logger.debug(
        "instantiating %s: %d functions, %d memories, %d tables",
        instance.name or "module", len(instance.funcs), len(instance.mems), len(instance.tables),
    )
    # Element and data segments in order; a failing one traps and aborts
    # instantiation, and the writes before it stay (WebAssembly 2.0).
    for index, elem in enumerate(module.elems):
        if elem.mode is SegmentMode.ACTIVE:
            offset = eval_const(_active_offset(elem.offset, index), instance)
            refs = instance.elems[index]
            target = instance.tables[elem.table_index]
            if offset + len(refs) > target.size:
                raise Trap(
                    TrapCode.TABLE_OUT_OF_BOUNDS,
                    f"element segment {index} at offset {offset}, length {len(refs)}, "
                    f"table size {target.size}",
                )
            target.init(offset, refs, 0, len(refs))
            instance.elems[index] = []
        elif elem.mode is SegmentMode.DECLARATIVE:
            instance.elems[index] = []
    for index, data in enumerate(module.datas):
        if data.mode is SegmentMode.ACTIVE:
            offset = eval_const(_active_offset(data.offset, index), instance)
            memory = instance.mems[data.memory_index]
            if offset + len(data.init) > memory.size:
                raise Trap(
                    TrapCode.MEMORY_OUT_OF_BOUNDS,
                    f"data segment {index} at offset {offset}, length {len(data.init)}, "
                    f"memory size {memory.size}",
                )
            memory.write(offset, data.init)
            instance.datas[index] = b""

    if module.start is not None:
        try:
            instance.funcs[module.start].call()
        except RecursionError as exc:
            raise Trap(TrapCode.STACK_EXHAUSTED, "Python recursion limit in the start function") from exc
    return instance

