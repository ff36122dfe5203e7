"""Module validation (WebAssembly 2.0, section 3, with extended-const).

`validate_module` checks a decoded or parsed module and returns a `ModuleInfo`
with facts the runtime and tiers reuse. Every failure raises ValidationError
whose message begins with the spec test suite's text.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from wasmtee import opcodes as op
from wasmtee.errors import UnsupportedFeature, ValidationError
from wasmtee.model import (
    ConstExpr,
    ExternKind,
    FuncType,
    GlobalType,
    Limits,
    MemoryType,
    Module,
    SegmentMode,
    TableType,
    ValType,
)
from wasmtee.valid.code import BodyValidator, Context, FunctionFacts

__all__ = ["FunctionFacts", "ModuleInfo", "MultipleMemories", "validate_module"]

logger = logging.getLogger(__name__)

MAX_PAGES = 65536
MAX_TABLE_SIZE = (1 << 32) - 1

# Binary opcodes allowed in extended constant expressions, with their type.
_EXTENDED_CONST = {
    op.BY_NAME[name].code: op.BY_NAME[name].params[0]  # type: ignore[index]
    for name in ("i32.add", "i32.sub", "i32.mul", "i64.add", "i64.sub", "i64.mul")
}


@dataclass
class ModuleInfo:
    """Facts that validation computed, for the runtime and both tiers.

    - `func_types`: the `FuncType` of every function in the function index
      space, imports first.
    - `functions`: one `FunctionFacts` per defined function, in definition
      order (so function index `len(func_types) - len(functions) + i` has
      `functions[i]`). `FunctionFacts.blocks` maps the instruction index of
      each `block`, `loop` and `if` to `(else_index, end_index)`, with
      `else_index` None when there is no `else`. `FunctionFacts.max_stack` is
      the maximum operand stack height, in values, over the body.
    - `declared_refs`: the spec's C.refs, the function indices that `ref.func`
      may name inside function bodies.
    """

    func_types: list[FuncType]
    functions: list[FunctionFacts] = field(default_factory=list)
    declared_refs: set[int] = field(default_factory=set)


class MultipleMemories(UnsupportedFeature):
    """More than one memory: invalid in WebAssembly 2.0, part of the multi-memory proposal.

    The message begins with "multiple memories", the 2.0 test suite's text.
    """

    def __init__(self, count: int) -> None:
        super().__init__("multi-memory", f"{count} memories")
        self.message = f"multiple memories ({count} memories, multi-memory is not supported)"
        self.args = (self.message,)


def _limits(limits: Limits, bound: int, kind: str) -> None:
    if limits.min > bound:
        raise ValidationError(f"{kind} size must be at most {bound} (minimum {limits.min})")
    if limits.max is not None:
        if limits.max > bound:
            raise ValidationError(f"{kind} size must be at most {bound} (maximum {limits.max})")
        if limits.min > limits.max:
            raise ValidationError(
                f"size minimum must not be greater than maximum ({limits.min} > {limits.max})"
            )


def _memory_type(memory_type: MemoryType) -> None:
    limits = memory_type.limits
    if limits.min > MAX_PAGES or (limits.max is not None and limits.max > MAX_PAGES):
        raise ValidationError(
            f"memory size must be at most {MAX_PAGES} pages (4GiB) "
            f"(limits {limits.min}..{limits.max})"
        )
    if limits.max is not None and limits.min > limits.max:
        raise ValidationError(
            f"size minimum must not be greater than maximum ({limits.min} > {limits.max})"
        )


def _table_type(table_type: TableType) -> None:
    if not table_type.elem_type.is_ref:
        raise ValidationError(f"malformed reference type ({table_type.elem_type.text})")
    _limits(table_type.limits, MAX_TABLE_SIZE, "table")


class _ConstChecker:
    """Validate constant expressions against the globals visible so far."""

    def __init__(self, func_count: int, globals: list[tuple[ValType, bool]],
                 imported_globals: int) -> None:
        self.func_count = func_count
        self.globals = globals
        self.imported_globals = imported_globals

    def check(self, expr: ConstExpr, expected: ValType, visible_globals: int, what: str) -> None:
        stack: list[ValType] = []
        for instr in expr:
            code = instr.op
            if code == op.END:
                break
            if code in (op.I32_CONST, op.I64_CONST, op.F32_CONST, op.F64_CONST):
                stack.append(op.OPS[code].results[0])  # type: ignore[index]
            elif code == op.REF_NULL:
                stack.append(instr.imm)
            elif code == op.REF_FUNC:
                if not 0 <= instr.imm < self.func_count:
                    raise ValidationError(f"unknown function {instr.imm} (in {what})")
                stack.append(ValType.FUNCREF)
            elif code == op.GLOBAL_GET:
                if not 0 <= instr.imm < visible_globals:
                    raise ValidationError(f"unknown global {instr.imm} (in {what})")
                val_type, mutable = self.globals[instr.imm]
                if mutable:
                    raise ValidationError(
                        f"constant expression required (global.get of mutable global {instr.imm})"
                    )
                stack.append(val_type)
            elif code in _EXTENDED_CONST:
                operand_type = _EXTENDED_CONST[code]
                for _ in range(2):
                    if not stack or stack.pop() != operand_type:
                        raise ValidationError(
                            f"type mismatch (expected two {operand_type.text} operands, "
                            f"in {op.op_name(code)} of {what})"
                        )
                stack.append(operand_type)
            else:
                raise ValidationError(
                    f"constant expression required ({op.op_name(code)} in {what})"
                )
        if len(stack) != 1 or stack[0] != expected:
            got = " ".join(t.text for t in stack) or "nothing"
            raise ValidationError(f"type mismatch (expected {expected.text}, got {got}, in {what})")


def _declared_refs(module: Module) -> set[int]:
    """Return C.refs: functions referenced outside function bodies."""
    refs: set[int] = set()
    expressions: list[ConstExpr] = [g.init for g in module.globals]
    for segment in module.elems:
        expressions.extend(segment.init)
    for expr in expressions:
        for instr in expr:
            if instr.op == op.REF_FUNC:
                refs.add(instr.imm)
    for export in module.exports:
        if export.kind is ExternKind.FUNC:
            refs.add(export.index)
    return refs


def validate_module(module: Module) -> ModuleInfo:
    """Validate `module` and return the facts the runtime needs.

    Raises ValidationError naming the failed rule and the offending value, or
    UnsupportedFeature (a ValidationError) for a proposal beyond WebAssembly 2.0.
    """
    started = time.perf_counter()
    try:
        info = _validate(module)
    except (TypeError, ValueError, IndexError, AttributeError, KeyError) as exc:
        # Decoded and parsed modules never get here: only a hand-built Module
        # with a field of the wrong type or shape does.
        raise ValidationError(f"malformed module ({type(exc).__name__}: {exc})") from None
    logger.debug("validated %d functions in %.3f s", len(info.functions),
                 time.perf_counter() - started)
    return info


def _validate(module: Module) -> ModuleInfo:
    types = module.types
    func_types: list[FuncType] = []
    tables: list[ValType] = []
    memories = 0
    globals: list[tuple[ValType, bool]] = []
    for imp in module.imports:
        desc = imp.desc
        where = f"import {imp.module}.{imp.name}"
        if imp.kind is ExternKind.FUNC:
            if not isinstance(desc, int) or not 0 <= desc < len(types):
                raise ValidationError(f"unknown type {desc} ({where})")
            func_types.append(types[desc])
        elif imp.kind is ExternKind.TABLE and isinstance(desc, TableType):
            _table_type(desc)
            tables.append(desc.elem_type)
        elif imp.kind is ExternKind.MEMORY and isinstance(desc, MemoryType):
            _memory_type(desc)
            memories += 1
        elif imp.kind is ExternKind.GLOBAL and isinstance(desc, GlobalType):
            globals.append((desc.val_type, desc.mutable))
        else:
            raise ValidationError(f"malformed import kind ({where}: {imp.kind!r} with {desc!r})")
    imported_globals = len(globals)
    for index, func in enumerate(module.funcs):
        if not 0 <= func.type_index < len(types):
            raise ValidationError(f"unknown type {func.type_index} (function {len(func_types)})")
        func_types.append(types[func.type_index])
    for table in module.tables:
        _table_type(table.type)
        tables.append(table.type.elem_type)
    for memory in module.mems:
        _memory_type(memory.type)
        memories += 1
    if memories > 1:
        raise MultipleMemories(memories)

    checker = _ConstChecker(len(func_types), globals, imported_globals)
    for index, glob in enumerate(module.globals):
        # WebAssembly 2.0 lets an initializer read imported globals only; 3.0 (and
        # wasmtime) also allow earlier immutable defined globals, and so does wasmtee.
        visible = len(globals)
        checker.check(glob.init, glob.type.val_type, visible, f"global {visible}")
        globals.append((glob.type.val_type, glob.type.mutable))

    elems = [segment.elem_type for segment in module.elems]
    for index, segment in enumerate(module.elems):
        what = f"element segment {index}"
        for expr in segment.init:
            checker.check(expr, segment.elem_type, len(globals), what)
        if segment.mode is SegmentMode.ACTIVE:
            if not 0 <= segment.table_index < len(tables):
                raise ValidationError(f"unknown table {segment.table_index} (in {what})")
            if tables[segment.table_index] != segment.elem_type:
                raise ValidationError(
                    f"type mismatch ({what} of {segment.elem_type.text} for a table of "
                    f"{tables[segment.table_index].text})"
                )
            checker.check(segment.offset or [], ValType.I32, len(globals), f"offset of {what}")

    for index, data in enumerate(module.datas):
        if data.mode is SegmentMode.ACTIVE:
            if not 0 <= data.memory_index < memories:
                raise ValidationError(f"unknown memory {data.memory_index} (in data segment {index})")
            checker.check(data.offset or [], ValType.I32, len(globals), f"offset of data segment {index}")
    if module.data_count is not None and module.data_count != len(module.datas):
        raise ValidationError(
            f"data count and data section have inconsistent lengths "
            f"({module.data_count} and {len(module.datas)})"
        )

    if module.start is not None:
        if not 0 <= module.start < len(func_types):
            raise ValidationError(f"unknown function {module.start} (start function)")
        start_type = func_types[module.start]
        if start_type.params or start_type.results:
            raise ValidationError(f"start function must have type [] -> [] (has {start_type})")

    names: set[str] = set()
    spaces = {
        ExternKind.FUNC: (len(func_types), "function"),
        ExternKind.TABLE: (len(tables), "table"),
        ExternKind.MEMORY: (memories, "memory"),
        ExternKind.GLOBAL: (len(globals), "global"),
    }
    for export in module.exports:
        if export.name in names:
            raise ValidationError(f"duplicate export name {export.name!r}")
        names.add(export.name)
        count, kind = spaces[export.kind]
        if not 0 <= export.index < count:
            raise ValidationError(f"unknown {kind} {export.index} (export {export.name!r})")

    refs = _declared_refs(module)
    context = Context(types, func_types, tables, memories, globals, elems, module.data_count, refs)
    info = ModuleInfo(func_types=func_types, declared_refs=refs)
    first_defined = len(func_types) - len(module.funcs)
    for index, func in enumerate(module.funcs):
        func_index = first_defined + index
        validator = BodyValidator(context, func_index, func_types[func_index], func.locals)
        info.functions.append(validator.validate(func.body))
    return info
