"""Instruction parsing for the text format (spec 6.5): plain, structured and folded forms.

Instructions are emitted into the flat `Instr` list form that the binary
decoder produces, so `(i32.add (local.get 0) (i32.const 1))` becomes
`local.get 0`, `i32.const 1`, `i32.add`. Labels are resolved to relative
depths while parsing, with the innermost label at depth 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from wasmtee import opcodes
from wasmtee.errors import UnsupportedFeature
from wasmtee.model import Instr, ValType
from wasmtee.opcodes import BY_NAME, Imm
from wasmtee.text.numbers import (
    F32,
    F64,
    int_literal_bits,
    parse_float_bits,
    parse_uint,
)
from wasmtee.text.sexpr import ID, KEYWORD, Atom, Node, SList

if TYPE_CHECKING:
    from wasmtee.text.wat import ModuleParser

# Mnemonic prefixes of later proposals, mapped to the feature name that
# `UnsupportedFeature` reports.
_FEATURE_PREFIXES = [
    ("v128.", "simd"),
    ("i8x16.", "simd"),
    ("i16x8.", "simd"),
    ("i32x4.", "simd"),
    ("i64x2.", "simd"),
    ("f32x4.", "simd"),
    ("f64x2.", "simd"),
    ("return_call", "tail-call"),
    ("struct.", "gc"),
    ("array.", "gc"),
    ("i31.", "gc"),
    ("ref.test", "gc"),
    ("ref.cast", "gc"),
    ("br_on_cast", "gc"),
    ("any.convert", "gc"),
    ("extern.convert", "gc"),
    ("ref.eq", "gc"),
    ("ref.i31", "gc"),
    ("call_ref", "function-references"),
    ("ref.as_non_null", "function-references"),
    ("br_on_null", "function-references"),
    ("br_on_non_null", "function-references"),
    ("try", "exceptions"),
    ("catch", "exceptions"),
    ("throw", "exceptions"),
    ("rethrow", "exceptions"),
    ("delegate", "exceptions"),
    ("memory.atomic", "threads"),
    ("atomic.fence", "threads"),
]


# Kinds of the tasks that unfold nested instructions without recursion.
_SEQ, _FOLDED, _EMIT, _CLOSE, _OPEN = range(5)


def unsupported_operator(name: str) -> str | None:
    """Return the proposal that defines an unknown mnemonic, or None."""
    if "/" in name or ":" in name:
        return None  # obsolete pre-1.0 spelling such as "i32.trunc_s/f32"
    if ".atomic." in name:
        return "threads"
    for prefix, feature in _FEATURE_PREFIXES:
        if name.startswith(prefix):
            return feature
    return None


class FunctionContext:
    """Names visible inside one function body: locals and the enclosing labels."""

    __slots__ = ("labels", "local_ids", "openers")

    def __init__(self, local_ids: dict[bytes, int]) -> None:
        self.local_ids = local_ids
        # One entry per open block, innermost last; the label id or None.
        self.labels: list[bytes | None] = []
        # The opcode that opened each of those blocks; ELSE once an `if` reached its `else`.
        self.openers: list[int] = []


class InstructionParser:
    """Parses instruction sequences of one module, resolving names through `module`."""

    def __init__(self, module: ModuleParser) -> None:
        self.mp = module

    # Sequences --------------------------------------------------------------

    def parse_body(
        self, items: Sequence[Node], pos: int, ctx: FunctionContext, out: list[Instr]
    ) -> None:
        """Parse items[pos:] as a complete expression and append the final `end`."""
        self.parse_seq(items, pos, ctx, out, len(ctx.labels))
        out.append(Instr(opcodes.END))

    def parse_seq(
        self,
        items: Sequence[Node],
        pos: int,
        ctx: FunctionContext,
        out: list[Instr],
        depth: int,
    ) -> None:
        """Parse items[pos:] as an instruction sequence that must leave `depth` labels open.

        Folded instructions nest without limit, so they are unfolded with an
        explicit stack of tasks instead of recursion. Tasks run last in,
        first out, and each one appends to `out` in binary order.
        """
        tasks: list[tuple] = [(_SEQ, items, pos, depth)]  # type: ignore[type-arg]
        while tasks:
            task = tasks.pop()
            kind = task[0]
            if kind == _SEQ:
                self.run_seq_task(task, ctx, out, tasks)
            elif kind == _FOLDED:
                self.expand_folded(task[1], ctx, out, tasks)
            elif kind == _EMIT:
                out.append(task[1])
            elif kind == _CLOSE:
                ctx.labels.pop()
                ctx.openers.pop()
                out.append(Instr(opcodes.END))
            elif kind == _OPEN:
                out.append(task[1])
                ctx.labels.append(task[2])
                ctx.openers.append(task[1].op)
            else:
                raise AssertionError(f"unknown parser task {kind}")

    def run_seq_task(
        self,
        task: tuple,
        ctx: FunctionContext,
        out: list[Instr],  # type: ignore[type-arg]
        tasks: list[tuple],
    ) -> None:  # type: ignore[type-arg]
        """Parse plain instructions until the next folded one, which becomes a task."""
        _, items, pos, depth = task
        count = len(items)
        while pos < count:
            node = items[pos]
            if isinstance(node, SList):
                tasks.append((_SEQ, items, pos + 1, depth))
                tasks.append((_FOLDED, node))
                return
            pos = self.parse_plain(items, pos, ctx, out, depth)
        if len(ctx.labels) != depth:
            where = items[-1] if items else None
            raise self.mp.error('unexpected end of input: missing "end"', where)

    # Plain instructions ---------------------------------------------------------

    def parse_plain(
        self,
        items: Sequence[Node],
        pos: int,
        ctx: FunctionContext,
        out: list[Instr],
        depth: int,
    ) -> int:
        node = items[pos]
        assert isinstance(node, Atom)
        if node.kind != KEYWORD:
            raise self.mp.error(f'unexpected token "{node.text}"', node)
        name = node.text
        pos += 1
        if name in ("block", "loop", "if"):
            label, pos = self.read_label_id(items, pos)
            block_type, pos = self.mp.read_block_type(items, pos)
            out.append(Instr(BY_NAME[name].code, block_type))
            ctx.labels.append(label)
            ctx.openers.append(BY_NAME[name].code)
            return pos
        if name == "else" or name == "end":
            if len(ctx.labels) <= depth:
                raise self.mp.error(f'unexpected token "{name}"', node)
            label = ctx.labels[-1]
            if name == "else":
                if ctx.openers[-1] != opcodes.IF:
                    raise self.mp.error('unexpected token "else" outside "if"', node)
                ctx.openers[-1] = opcodes.ELSE
                out.append(Instr(opcodes.ELSE))
            else:
                ctx.labels.pop()
                ctx.openers.pop()
                out.append(Instr(opcodes.END))
            return self.check_closing_label(items, pos, label)
        info = BY_NAME.get(name)
        if info is None or name == "select_t":
            raise self.unknown_operator(node)
        instr, pos = self.read_immediates(info, node, items, pos, ctx)
        out.append(instr)
        return pos

    def check_closing_label(
        self, items: Sequence[Node], pos: int, label: bytes | None
    ) -> int:
        if pos < len(items):
            node = items[pos]
            if isinstance(node, Atom) and node.kind == ID:
                if label != node.value:
                    raise self.mp.error(f'mismatching label "{node.text}"', node)
                return pos + 1
        return pos

    def read_label_id(
        self, items: Sequence[Node], pos: int
    ) -> tuple[bytes | None, int]:
        if pos < len(items):
            node = items[pos]
            if isinstance(node, Atom) and node.kind == ID:
                return node.value, pos + 1
        return None, pos

    def unknown_operator(self, node: Atom) -> Exception:
        feature = unsupported_operator(node.text)
        if feature is not None:
            return UnsupportedFeature(feature, f"instruction {node.text}")
        return self.mp.error(f'unknown operator "{node.text}"', node)

    # Folded instructions --------------------------------------------------------

    def parse_folded(self, node: SList, ctx: FunctionContext, out: list[Instr]) -> None:
        """Parse one folded instruction with its operands."""
        self.parse_seq([node], 0, ctx, out, len(ctx.labels))

    def expand_folded(
        self, node: SList, ctx: FunctionContext, out: list[Instr], tasks: list[tuple]
    ) -> None:  # type: ignore[type-arg]
        """Read a folded instruction's header and push tasks for its parts, last part first."""
        items = node.items
        if not items or not isinstance(items[0], Atom) or items[0].kind != KEYWORD:
            raise self.mp.error("unexpected token: expected an instruction", node)
        head = items[0]
        name = head.text
        if name in ("block", "loop"):
            label, pos = self.read_label_id(items, 1)
            block_type, pos = self.mp.read_block_type(items, pos)
            tasks.append((_CLOSE,))
            tasks.append((_SEQ, items, pos, len(ctx.labels) + 1))
            tasks.append((_OPEN, Instr(BY_NAME[name].code, block_type), label))
            return
        if name == "if":
            self.expand_folded_if(node, ctx, tasks)
            return
        info = BY_NAME.get(name)
        if info is None or name == "select_t" or name in ("else", "end"):
            raise self.unknown_operator(head)
        instr, pos = self.read_immediates(info, head, items, 1, ctx)
        operands = items[pos:]
        for operand in operands:
            if not isinstance(operand, SList):
                raise self.mp.error(f'unexpected token "{operand.text}"', operand)
        tasks.append((_EMIT, instr))
        for operand in reversed(operands):
            tasks.append((_FOLDED, operand))

    def expand_folded_if(
        self, node: SList, ctx: FunctionContext, tasks: list[tuple]
    ) -> None:  # type: ignore[type-arg]
        items = node.items
        label, pos = self.read_label_id(items, 1)
        block_type, pos = self.mp.read_block_type(items, pos)
        count = len(items)
        conditions = []
        while pos < count:
            cond = items[pos]
            if not isinstance(cond, SList):
                raise self.mp.error(f'unexpected token "{cond.text}"', cond)
            if cond.head() == "then":
                break
            conditions.append(cond)
            pos += 1
        else:
            raise self.mp.error('unexpected token: missing "then" in "if"', node)
        then = items[pos]
        assert isinstance(then, SList)
        other = None
        if pos + 1 < count:
            other = items[pos + 1]
            if not isinstance(other, SList) or other.head() != "else":
                raise self.mp.error('unexpected token after "then" clause', other)
        if pos + 2 < count:
            raise self.mp.error('unexpected token after "else" clause', items[pos + 2])
        depth = len(ctx.labels) + 1
        tasks.append((_CLOSE,))
        if other is not None:
            tasks.append((_SEQ, other.items, 1, depth))
            tasks.append((_EMIT, Instr(opcodes.ELSE)))
        tasks.append((_SEQ, then.items, 1, depth))
        tasks.append((_OPEN, Instr(opcodes.IF, block_type), label))
        for cond in reversed(conditions):
            tasks.append((_FOLDED, cond))

    # Immediates -----------------------------------------------------------------

    def read_immediates(
        self,
        info: opcodes.OpInfo,
        head: Atom,
        items: Sequence[Node],
        pos: int,
        ctx: FunctionContext,
    ) -> tuple[Instr, int]:
        kind = info.imm
        code = info.code
        mp = self.mp
        if kind is Imm.NONE:
            if code == opcodes.SELECT:
                return self.read_select(items, pos)
            return Instr(code), pos
        if kind is Imm.I32 or kind is Imm.I64:
            bits = 32 if kind is Imm.I32 else 64
            atom = mp.expect_atom(items, pos, head)
            value = int_literal_bits(atom.text, bits)
            if value is None:
                raise mp.number_error(atom, f"i{bits}")
            if value >= 1 << (bits - 1):
                value -= 1 << bits
            return Instr(code, value), pos + 1
        if kind is Imm.F32 or kind is Imm.F64:
            atom = mp.expect_atom(items, pos, head)
            bits_value = parse_float_bits(atom.text, F32 if kind is Imm.F32 else F64)
            if bits_value is None:
                raise mp.number_error(atom, "f32" if kind is Imm.F32 else "f64")
            return Instr(code, bits_value), pos + 1
        if kind is Imm.LOCAL:
            atom = mp.expect_atom(items, pos, head)
            return Instr(code, self.resolve_local(atom, ctx)), pos + 1
        if kind is Imm.LABEL:
            atom = mp.expect_atom(items, pos, head)
            return Instr(code, self.resolve_label(atom, ctx)), pos + 1
        if kind is Imm.BR_TABLE:
            labels = []
            while pos < len(items) and is_index_atom(items[pos]):
                labels.append(self.resolve_label(items[pos], ctx))  # type: ignore[arg-type]
                pos += 1
            if not labels:
                raise mp.error("unexpected token: br_table needs a label", head)
            return Instr(code, (tuple(labels[:-1]), labels[-1])), pos
        if kind is Imm.FUNC:
            atom = mp.expect_atom(items, pos, head)
            return Instr(code, mp.funcs.resolve(atom, mp)), pos + 1
        if kind is Imm.GLOBAL:
            atom = mp.expect_atom(items, pos, head)
            return Instr(code, mp.globals.resolve(atom, mp)), pos + 1
        if kind is Imm.TABLE:
            index, pos = mp.read_optional_index(items, pos, mp.tables)
            return Instr(code, index), pos
        if kind is Imm.MEMORY:
            index, pos = mp.read_optional_index(items, pos, mp.mems)
            return Instr(code, index), pos
        if kind is Imm.MEMARG:
            return self.read_memarg(info, head, items, pos)
        if kind is Imm.BLOCK_TYPE:
            raise mp.error("unexpected block instruction", head)
        if kind is Imm.CALL_INDIRECT:
            table, pos = mp.read_optional_index(items, pos, mp.tables)
            type_index, _, pos = mp.read_type_use(items, pos, allow_names=False)
            return Instr(code, (type_index, table)), pos
        if kind is Imm.REF_TYPE:
            atom = mp.expect_atom(items, pos, head)
            return Instr(code, mp.heap_type(atom)), pos + 1
        if kind is Imm.DATA:
            atom = mp.expect_atom(items, pos, head)
            return Instr(code, mp.datas.resolve(atom, mp)), pos + 1
        if kind is Imm.ELEM:
            atom = mp.expect_atom(items, pos, head)
            return Instr(code, mp.elems.resolve(atom, mp)), pos + 1
        if kind is Imm.MEMORY_INIT:
            return self.read_segment_init(
                code, head, items, pos, mp.mems, mp.datas, False
            )
        if kind is Imm.TABLE_INIT:
            return self.read_segment_init(
                code, head, items, pos, mp.tables, mp.elems, True
            )
        if kind is Imm.MEMORY_COPY or kind is Imm.TABLE_COPY:
            space = mp.mems if kind is Imm.MEMORY_COPY else mp.tables
            if pos < len(items) and is_index_atom(items[pos]):
                dst = space.resolve(items[pos], mp)  # type: ignore[arg-type]
                atom = mp.expect_atom(items, pos + 1, head)
                src = space.resolve(atom, mp)
                return Instr(code, (dst, src)), pos + 2
            return Instr(code, (0, 0)), pos
        raise mp.error(f'unknown operator "{head.text}"', head)

    def read_select(self, items: Sequence[Node], pos: int) -> tuple[Instr, int]:
        types: list[ValType] = []
        typed = False
        while pos < len(items):
            node = items[pos]
            if not isinstance(node, SList) or node.head() != "result":
                break
            typed = True
            types.extend(self.mp.valtype(t) for t in node.items[1:])
            pos += 1
        if typed:
            return Instr(opcodes.SELECT_T, tuple(types)), pos
        return Instr(opcodes.SELECT), pos

    def read_segment_init(
        self,
        code: int,
        head: Atom,
        items: Sequence[Node],
        pos: int,
        target_space: object,
        segment_space: object,
        table_first: bool,
    ) -> tuple[Instr, int]:
        mp = self.mp
        first = mp.expect_atom(items, pos, head)
        if pos + 1 < len(items) and is_index_atom(items[pos + 1]):
            target = target_space.resolve(first, mp)  # type: ignore[attr-defined]
            segment = segment_space.resolve(items[pos + 1], mp)  # type: ignore[attr-defined]
            pos += 2
        else:
            target = 0
            segment = segment_space.resolve(first, mp)  # type: ignore[attr-defined]
            pos += 1
        if table_first:
            return Instr(code, (segment, target)), pos
        if target != 0:
            raise UnsupportedFeature("multi-memory", f"memory index {target}")
        return Instr(code, segment), pos

    def read_memarg(
        self, info: opcodes.OpInfo, head: Atom, items: Sequence[Node], pos: int
    ) -> tuple[Instr, int]:
        mp = self.mp
        if pos < len(items) and is_index_atom(items[pos]):
            memory = mp.mems.resolve(items[pos], mp)  # type: ignore[arg-type]
            if memory != 0:
                raise UnsupportedFeature("multi-memory", f"memory index {memory}")
            pos += 1
        offset = 0
        align = info.natural_align
        if pos < len(items):
            node = items[pos]
            if (
                isinstance(node, Atom)
                and node.kind == KEYWORD
                and node.text.startswith("offset=")
            ):
                value = parse_uint(node.text[7:])
                if value is None:
                    raise mp.error(f'unknown operator "{node.text}"', node)
                if value >= 1 << 64:
                    raise mp.error(f'i64 constant out of range "{node.text}"', node)
                # Offsets of 2**32 and more are left for the validator to reject.
                offset = value
                pos += 1
        if pos < len(items):
            node = items[pos]
            if (
                isinstance(node, Atom)
                and node.kind == KEYWORD
                and node.text.startswith("align=")
            ):
                value = parse_uint(node.text[6:])
                if value is None:
                    raise mp.error(f'unknown operator "{node.text}"', node)
                if value <= 0 or value & (value - 1) or value >= 1 << 64:
                    raise mp.error(
                        f"alignment must be a power of two [{node.text}]", node
                    )
                align = value.bit_length() - 1
                pos += 1
        return Instr(info.code, (align, offset)), pos

    # Names ----------------------------------------------------------------------

    def resolve_local(self, atom: Atom, ctx: FunctionContext) -> int:
        if atom.kind == ID:
            index = ctx.local_ids.get(atom.value)  # type: ignore[arg-type]
            if index is None:
                raise self.mp.error(f"unknown local {atom.text}", atom)
            return index
        return self.mp.read_u32(atom)

    def resolve_label(self, atom: Atom, ctx: FunctionContext) -> int:
        if atom.kind == ID:
            labels = ctx.labels
            for depth in range(len(labels)):
                if labels[-1 - depth] == atom.value:
                    return depth
            raise self.mp.error(f"unknown label {atom.text}", atom)
        return self.mp.read_u32(atom)


def is_index_atom(node: Node) -> bool:
    """Tell whether a node can be an index: an identifier or an unsigned integer."""
    if not isinstance(node, Atom):
        return False
    if node.kind == ID:
        return True
    return node.kind == KEYWORD and node.text[:1].isdigit()
