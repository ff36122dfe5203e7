"""Validation of function bodies: the spec's algorithm (WebAssembly 2.0, appendix A.3).

Conventions:
- `vals` is the operand stack of value types; `UNKNOWN` (None) is the bottom
  type that the polymorphic stack produces after an unconditional branch.
- `ctrls` is the control stack. Each `ControlFrame` records the opcode that
  opened it, its parameter and result types, the operand stack height at entry
  and whether the rest of the block is unreachable.
- The validator also records, per function, where each block's `else` and
  `end` are and the maximum operand stack height; the tiers reuse these.
"""

from __future__ import annotations

from dataclasses import dataclass

from wasmtee import opcodes as op
from wasmtee.errors import UnsupportedFeature, ValidationError
from wasmtee.model import FuncType, Instr, ValType

UNKNOWN = None
LOCAL_GET = op.LOCAL_GET

I32, I64, F32, F64 = ValType.I32, ValType.I64, ValType.F32, ValType.F64
FUNCREF, EXTERNREF = ValType.FUNCREF, ValType.EXTERNREF


def type_name(val_type: ValType | None) -> str:
    return "any" if val_type is None else val_type.text


@dataclass
class ControlFrame:
    opcode: int
    start_types: tuple[ValType, ...]
    end_types: tuple[ValType, ...]
    height: int
    unreachable: bool
    index: int  # instruction index of the block start, -1 for the function body

    @property
    def label_types(self) -> tuple[ValType, ...]:
        return self.start_types if self.opcode == op.LOOP else self.end_types


@dataclass
class FunctionFacts:
    """Facts that validation computed about one function body.

    `blocks` maps the instruction index of each block, loop and if to
    `(else_index, end_index)`, with else_index None when there is no else.
    `max_stack` is the maximum operand stack height.
    """

    blocks: dict[int, tuple[int | None, int]]
    max_stack: int


class Context:
    """The module-level context C of the spec, as the body validator needs it."""

    def __init__(
        self,
        types: list[FuncType],
        func_types: list[FuncType],
        tables: list[ValType],
        memories: int,
        globals: list[tuple[ValType, bool]],
        elems: list[ValType],
        data_count: int | None,
        refs: set[int],
    ) -> None:
        self.types = types
        self.func_types = func_types
        self.tables = tables
        self.memories = memories
        self.globals = globals
        self.elems = elems
        self.data_count = data_count
        self.refs = refs


class BodyValidator:
    """Validate one function body against its type and the module context."""

    def __init__(self, context: Context, func_index: int, func_type: FuncType,
                 locals: list[ValType]) -> None:
        self.context = context
        self.func_index = func_index
        self.func_type = func_type
        self.locals = list(func_type.params) + list(locals)
        self.vals: list[ValType | None] = []
        self.ctrls: list[ControlFrame] = []
        self.offset = -1
        self.code = op.NOP  # opcode of the instruction being validated, for messages
        self.max_stack = 0
        self.blocks: dict[int, tuple[int | None, int]] = {}
        self.open_blocks: list[int] = []
        self.else_at: dict[int, int] = {}

    # -- errors and the operand stack ------------------------------------------

    def error(self, message: str) -> ValidationError:
        """Build the error for the current instruction, naming it in the brackets."""
        name = op.op_name(self.code)
        if message.endswith(")"):
            message = f"{message[:-1]}, in {name})"
        else:
            message = f"{message} (in {name})"
        return ValidationError(message, self.func_index, self.offset)

    def push(self, val_type: ValType | None) -> None:
        self.vals.append(val_type)
        self.max_stack = max(self.max_stack, len(self.vals))

    def pop_any(self) -> ValType | None:
        frame = self.ctrls[-1]
        if len(self.vals) == frame.height:
            if frame.unreachable:
                return UNKNOWN
            raise self.error("type mismatch (expected a value, got an empty operand stack)")
        return self.vals.pop()

    def pop(self, expected: ValType | None) -> ValType | None:
        vals = self.vals
        frame = self.ctrls[-1]
        if len(vals) == frame.height:
            if frame.unreachable:
                return UNKNOWN
            raise self.error(
                f"type mismatch (expected {type_name(expected)}, got an empty operand stack)"
            )
        actual = vals.pop()
        if actual != expected and actual is not UNKNOWN and expected is not UNKNOWN:
            raise self.error(
                f"type mismatch (expected {type_name(expected)}, got {type_name(actual)})"
            )
        return actual

    def pop_types(self, types: tuple[ValType, ...]) -> None:
        count = len(types)
        if not count:
            return
        vals = self.vals
        if len(vals) - count >= self.ctrls[-1].height and vals[-count:] == list(types):
            del vals[-count:]
            return
        for val_type in reversed(types):
            self.pop(val_type)

    def push_types(self, types: tuple[ValType, ...]) -> None:
        vals = self.vals
        vals.extend(types)
        self.max_stack = max(self.max_stack, len(vals))

    def push_ctrl(self, opcode: int, start: tuple[ValType, ...], end: tuple[ValType, ...],
                  index: int) -> None:
        self.ctrls.append(ControlFrame(opcode, start, end, len(self.vals), False, index))
        self.push_types(start)

    def pop_ctrl(self) -> ControlFrame:
        if not self.ctrls:
            raise self.error("type mismatch (end without a block)")
        frame = self.ctrls[-1]
        self.pop_types(frame.end_types)
        if len(self.vals) != frame.height:
            raise self.error(
                f"type mismatch ({len(self.vals) - frame.height} extra values at the end of a block)"
            )
        self.ctrls.pop()
        return frame

    def set_unreachable(self) -> None:
        frame = self.ctrls[-1]
        del self.vals[frame.height:]
        frame.unreachable = True

    def label(self, depth: int) -> ControlFrame:
        if not 0 <= depth < len(self.ctrls):
            raise self.error(f"unknown label {depth}")
        return self.ctrls[-1 - depth]

    # -- index lookups ---------------------------------------------------------

    def local_type(self, index: int) -> ValType:
        if not 0 <= index < len(self.locals):
            raise self.error(f"unknown local {index}")
        return self.locals[index]

    def global_type(self, index: int) -> tuple[ValType, bool]:
        if not 0 <= index < len(self.context.globals):
            raise self.error(f"unknown global {index}")
        return self.context.globals[index]

    def table_type(self, index: int) -> ValType:
        if not 0 <= index < len(self.context.tables):
            raise self.error(f"unknown table {index}")
        return self.context.tables[index]

    def require_memory(self, index: int = 0) -> None:
        if not 0 <= index < self.context.memories:
            raise self.error(f"unknown memory {index}")

    def elem_type(self, index: int) -> ValType:
        if not 0 <= index < len(self.context.elems):
            raise self.error(f"unknown elem segment {index}")
        return self.context.elems[index]

    def require_data(self, index: int) -> None:
        if self.context.data_count is None:
            raise self.error("data count section required")
        if not 0 <= index < self.context.data_count:
            raise self.error(f"unknown data segment {index}")

    def type_at(self, index: int) -> FuncType:
        if not isinstance(index, int) or not 0 <= index < len(self.context.types):
            raise self.error(f"unknown type {index}")
        return self.context.types[index]

    def function_type(self, index: int) -> FuncType:
        if not 0 <= index < len(self.context.func_types):
            raise self.error(f"unknown function {index}")
        return self.context.func_types[index]

    def block_type(self, block_type: object) -> tuple[tuple[ValType, ...], tuple[ValType, ...]]:
        if block_type is None:
            return (), ()
        if isinstance(block_type, ValType):
            return (), (block_type,)
        func_type = self.type_at(block_type)  # type: ignore[arg-type]
        return func_type.params, func_type.results

    # -- the body ------------------------------------------------------------

    def validate(self, body: list[Instr]) -> FunctionFacts:
        """Validate `body` and return its block map and maximum stack height.

        Raises ValidationError for an invalid body, or UnsupportedFeature for
        an instruction of a proposal wasmtee does not implement.
        """
        self.ctrls.append(ControlFrame(op.BLOCK, (), self.func_type.results, 0, False, -1))
        vals = self.vals
        ctrls = self.ctrls
        handlers = HANDLERS
        simple = SIMPLE
        instr: object = None
        try:
            for index, instr in enumerate(body):
                code = instr.op
                self.code = code
                self.offset = instr.offset
                if not ctrls:
                    raise self.error("type mismatch (instructions after the function's end)")
                signature = simple.get(code)
                if signature is not None:
                    # Fast path for fixed signatures: compare the top of the stack at once.
                    params, results, max_align = signature
                    if max_align >= 0:
                        self.check_memarg(instr.imm, max_align)
                    count = len(params)
                    if count and len(vals) - count >= ctrls[-1].height and vals[-count:] == params:
                        del vals[-count:]
                    else:
                        for val_type in reversed(params):
                            self.pop(val_type)
                    vals.extend(results)
                    if len(vals) > self.max_stack:  # noqa: PLR1730 (faster than max in this loop)
                        self.max_stack = len(vals)
                    continue
                if code == LOCAL_GET:
                    local = instr.imm
                    if not 0 <= local < len(self.locals):
                        raise self.error(f"unknown local {local}")
                    vals.append(self.locals[local])
                    if len(vals) > self.max_stack:  # noqa: PLR1730 (faster than max in this loop)
                        self.max_stack = len(vals)
                    continue
                handler = handlers.get(code)
                if handler is None:
                    raise self.unknown_instruction(code)
                handler(self, instr, index)
        except (TypeError, ValueError, IndexError, AttributeError, KeyError):
            # Only a hand-built Module can carry an immediate of the wrong shape.
            raise self.error(f"malformed instruction {instr!r}") from None
        if ctrls:
            raise self.error("type mismatch (function body does not end with end)")
        return FunctionFacts(self.blocks, self.max_stack)

    def unknown_instruction(self, code: int) -> ValidationError:
        feature = op.UNSUPPORTED_PREFIXES.get(code >> 8) if isinstance(code, int) else None
        if feature is not None:
            return UnsupportedFeature(feature, f"opcode 0x{code:x}", self.offset)
        return self.error(f"illegal opcode {code!r}")

    # -- control instructions ----------------------------------------------------

    def on_unreachable(self, instr: Instr, index: int) -> None:
        self.set_unreachable()

    def on_nop(self, instr: Instr, index: int) -> None:
        pass

    def on_block(self, instr: Instr, index: int) -> None:
        params, results = self.block_type(instr.imm)
        if instr.op == op.IF:
            self.pop(I32)
        self.pop_types(params)
        self.push_ctrl(instr.op, params, results, index)
        self.open_blocks.append(index)

    def on_else(self, instr: Instr, index: int) -> None:
        frame = self.ctrls[-1] if self.ctrls else None
        if frame is None or frame.opcode != op.IF:
            raise self.error("type mismatch (else without if)")
        self.pop_ctrl()
        self.push_ctrl(op.ELSE, frame.start_types, frame.end_types, frame.index)
        self.else_at[frame.index] = index

    def on_end(self, instr: Instr, index: int) -> None:
        frame = self.pop_ctrl()
        if frame.opcode == op.IF and frame.start_types != frame.end_types:
            raise self.error("type mismatch (if without else must leave its parameters as results)")
        if frame.index >= 0:
            start = self.open_blocks.pop()
            self.blocks[start] = (self.else_at.pop(start, None), index)
        self.push_types(frame.end_types)
        if not self.ctrls:
            # The function body's end: its results stay as the return values.
            self.vals.clear()

    def on_br(self, instr: Instr, index: int) -> None:
        self.pop_types(self.label(instr.imm).label_types)
        self.set_unreachable()

    def on_br_if(self, instr: Instr, index: int) -> None:
        self.pop(I32)
        types = self.label(instr.imm).label_types
        self.pop_types(types)
        self.push_types(types)

    def on_br_table(self, instr: Instr, index: int) -> None:
        labels, default = instr.imm
        self.pop(I32)
        default_types = self.label(default).label_types
        arity = len(default_types)
        for depth in labels:
            types = self.label(depth).label_types
            if len(types) != arity:
                raise self.error(
                    f"type mismatch (br_table targets have {len(types)} and {arity} values)"
                )
            # Check each target against the stack without consuming it.
            popped = [self.pop(t) for t in reversed(types)]
            for val_type in reversed(popped):
                self.push(val_type)
        self.pop_types(default_types)
        self.set_unreachable()

    def on_return(self, instr: Instr, index: int) -> None:
        self.pop_types(self.func_type.results)
        self.set_unreachable()

    def on_call(self, instr: Instr, index: int) -> None:
        func_type = self.function_type(instr.imm)
        self.pop_types(func_type.params)
        self.push_types(func_type.results)

    def on_call_indirect(self, instr: Instr, index: int) -> None:
        type_index, table_index = instr.imm
        table_type = self.table_type(table_index)
        if table_type != FUNCREF:
            raise self.error(f"type mismatch (call_indirect through a table of {table_type.text})")
        func_type = self.type_at(type_index)
        self.pop(I32)
        self.pop_types(func_type.params)
        self.push_types(func_type.results)

    # -- parametric ----------------------------------------------------------------

    def on_drop(self, instr: Instr, index: int) -> None:
        self.pop_any()

    def on_select(self, instr: Instr, index: int) -> None:
        self.pop(I32)
        if instr.op == op.SELECT_T:
            types = instr.imm
            if len(types) != 1:
                raise self.error(f"invalid result arity (select with {len(types)} types)")
            self.pop(types[0])
            self.pop(types[0])
            self.push(types[0])
            return
        first = self.pop_any()
        second = self.pop_any()
        for val_type in (first, second):
            if val_type is not UNKNOWN and not val_type.is_num:
                raise self.error(f"type mismatch (untyped select on {val_type.text})")
        if first is not UNKNOWN and second is not UNKNOWN and first != second:
            raise self.error(f"type mismatch (select on {first.text} and {second.text})")
        self.push(first if first is not UNKNOWN else second)

    # -- variables -----------------------------------------------------------------

    def on_local_get(self, instr: Instr, index: int) -> None:
        self.push(self.local_type(instr.imm))

    def on_local_set(self, instr: Instr, index: int) -> None:
        self.pop(self.local_type(instr.imm))

    def on_local_tee(self, instr: Instr, index: int) -> None:
        val_type = self.local_type(instr.imm)
        self.pop(val_type)
        self.push(val_type)

    def on_global_get(self, instr: Instr, index: int) -> None:
        self.push(self.global_type(instr.imm)[0])

    def on_global_set(self, instr: Instr, index: int) -> None:
        val_type, mutable = self.global_type(instr.imm)
        if not mutable:
            raise self.error(f"immutable global (global.set of global {instr.imm})")
        self.pop(val_type)

    # -- tables ----------------------------------------------------------------------

    def on_table(self, instr: Instr, index: int) -> None:
        name = op.OPS[instr.op].name
        if name == "table.get":
            elem = self.table_type(instr.imm)
            self.pop(I32)
            self.push(elem)
        elif name == "table.set":
            elem = self.table_type(instr.imm)
            self.pop(elem)
            self.pop(I32)
        elif name == "table.size":
            self.table_type(instr.imm)
            self.push(I32)
        elif name == "table.grow":
            elem = self.table_type(instr.imm)
            self.pop(I32)
            self.pop(elem)
            self.push(I32)
        elif name == "table.fill":
            elem = self.table_type(instr.imm)
            self.pop(I32)
            self.pop(elem)
            self.pop(I32)
        elif name == "table.copy":
            dest, source = instr.imm
            dest_type = self.table_type(dest)
            source_type = self.table_type(source)
            if dest_type != source_type:
                raise self.error(
                    f"type mismatch (table.copy from {source_type.text} to {dest_type.text})"
                )
            self.pop_types((I32, I32, I32))
        elif name == "table.init":
            elem_index, table_index = instr.imm
            table_type = self.table_type(table_index)
            segment_type = self.elem_type(elem_index)
            if table_type != segment_type:
                raise self.error(
                    f"type mismatch (table.init of {segment_type.text} into {table_type.text})"
                )
            self.pop_types((I32, I32, I32))
        else:  # elem.drop
            self.elem_type(instr.imm)

    # -- memory --------------------------------------------------------------------

    def check_memarg(self, memarg: tuple[int, int], max_align: int) -> None:
        """Check a load's or store's memory, alignment and offset (spec 3.3.7)."""
        if not self.context.memories:
            raise self.error("unknown memory 0")
        align, offset = memarg
        if not 0 <= align <= max_align:
            raise self.error(
                f"alignment must not be larger than natural "
                f"(2**{align} > {1 << max_align} bytes)"
            )
        if not 0 <= offset < 1 << 32:
            raise self.error(f"offset out of range ({offset})")

    def on_memory(self, instr: Instr, index: int) -> None:
        info = op.OPS[instr.op]
        name = info.name
        if name == "memory.init":
            self.require_memory(0)
            self.require_data(instr.imm if isinstance(instr.imm, int) else instr.imm[0])
        elif name == "data.drop":
            self.require_data(instr.imm)
        elif name == "memory.copy":
            dest, source = instr.imm if isinstance(instr.imm, tuple) else (0, 0)
            self.require_memory(dest)
            self.require_memory(source)
        else:
            memory = instr.imm if isinstance(instr.imm, int) else 0
            self.require_memory(memory)
        for val_type in reversed(info.params):  # type: ignore[arg-type]
            self.pop(val_type)
        for val_type in info.results:  # type: ignore[union-attr]
            self.push(val_type)

    # -- references ------------------------------------------------------------------

    def on_ref_null(self, instr: Instr, index: int) -> None:
        self.push(instr.imm)

    def on_ref_is_null(self, instr: Instr, index: int) -> None:
        val_type = self.pop_any()
        if val_type is not UNKNOWN and not val_type.is_ref:
            raise self.error(f"type mismatch (ref.is_null on {val_type.text})")
        self.push(I32)

    def on_ref_func(self, instr: Instr, index: int) -> None:
        self.function_type(instr.imm)
        if instr.imm not in self.context.refs:
            raise self.error(f"undeclared function reference (function {instr.imm})")
        self.push(FUNCREF)


# Instructions whose typing is a fixed signature from the opcode table:
# opcode to (params, results, maximum alignment exponent or -1 without a memarg).
SIMPLE: dict[int, tuple[list[ValType], tuple[ValType, ...], int]] = {
    info.code: (
        list(info.params),  # type: ignore[arg-type]
        info.results,  # type: ignore[misc]
        info.natural_align if info.family in (op.Family.LOAD, op.Family.STORE) else -1,
    )
    for info in op.OPS.values()
    if info.family in (op.Family.CONST, op.Family.TEST, op.Family.COMPARE, op.Family.UNARY,
                       op.Family.BINARY, op.Family.CONVERT, op.Family.LOAD, op.Family.STORE)
}

HANDLERS = {
    op.UNREACHABLE: BodyValidator.on_unreachable,
    op.NOP: BodyValidator.on_nop,
    op.BLOCK: BodyValidator.on_block,
    op.LOOP: BodyValidator.on_block,
    op.IF: BodyValidator.on_block,
    op.ELSE: BodyValidator.on_else,
    op.END: BodyValidator.on_end,
    op.BR: BodyValidator.on_br,
    op.BR_IF: BodyValidator.on_br_if,
    op.BR_TABLE: BodyValidator.on_br_table,
    op.RETURN: BodyValidator.on_return,
    op.CALL: BodyValidator.on_call,
    op.CALL_INDIRECT: BodyValidator.on_call_indirect,
    op.DROP: BodyValidator.on_drop,
    op.SELECT: BodyValidator.on_select,
    op.SELECT_T: BodyValidator.on_select,
    op.LOCAL_GET: BodyValidator.on_local_get,
    op.LOCAL_SET: BodyValidator.on_local_set,
    op.LOCAL_TEE: BodyValidator.on_local_tee,
    op.GLOBAL_GET: BodyValidator.on_global_get,
    op.GLOBAL_SET: BodyValidator.on_global_set,
    op.REF_NULL: BodyValidator.on_ref_null,
    op.REF_IS_NULL: BodyValidator.on_ref_is_null,
    op.REF_FUNC: BodyValidator.on_ref_func,
}
for _info in op.OPS.values():
    if _info.family is op.Family.TABLE:
        HANDLERS[_info.code] = BodyValidator.on_table
    elif _info.family is op.Family.MEMORY:
        HANDLERS[_info.code] = BodyValidator.on_memory
