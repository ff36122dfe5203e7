"""Decoding of a whole module: header, sections and the checks across them.

Sections follow the order of the spec interpreter's `decode.ml`. A section
reader reads from the whole input, not a slice, and `check_size` compares
where it stopped with the declared size afterwards. That gives the spec test
suite's messages for truncated and miscounted sections: a vector that claims
more entries than a section holds reads on into the next section and fails
there, exactly as the reference interpreter does.
"""

from __future__ import annotations

import gc
import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from wasmtee.binary.instructions import decode_expr
from wasmtee.binary.names import decode_name_section
from wasmtee.binary.notes import DecodeNotes
from wasmtee.binary.reader import (
    UNEXPECTED_END,
    check_size,
    read_bytes,
    read_len32,
    read_name,
    read_sized,
    read_u32,
)
from wasmtee.binary.types import (
    read_func_type,
    read_global_type,
    read_memory_type,
    read_reftype,
    read_table_type,
    read_valtype,
    skip_gc_composite_type,
)
from wasmtee.errors import DecodeError, UnsupportedFeature
from wasmtee.model import (
    ConstExpr,
    DataSegment,
    ElemSegment,
    Export,
    ExternKind,
    Function,
    FuncType,
    Global,
    Import,
    Instr,
    Memory,
    Module,
    SegmentMode,
    Table,
    ValType,
)
from wasmtee.opcodes import END, REF_FUNC

logger = logging.getLogger(__name__)

MAGIC = b"\0asm"
VERSION = b"\x01\0\0\0"
HEADER_SIZE = 8

# The maximum number of locals one function may declare. The spec allows up
# to 2**32 - 1, but wasmparser (the validator of wasm-tools and wasmtime)
# stops at 50000 (`MAX_WASM_FUNCTION_LOCALS` in its limits.rs), and expanding
# more into `Function.locals` would let a small module claim gigabytes.
MAX_LOCALS = 50_000

CUSTOM_SECTION = 0
TAG_SECTION = 13
SECTION_NAMES = {
    0: "custom",
    1: "type",
    2: "import",
    3: "function",
    4: "table",
    5: "memory",
    6: "global",
    7: "export",
    8: "start",
    9: "element",
    10: "code",
    11: "data",
    12: "data count",
    13: "tag",
}
# The position of each non-custom section id in the required order. The tag
# section (exception handling) sits between memory and global.
SECTION_ORDER = {
    1: 1,
    2: 2,
    3: 3,
    4: 4,
    5: 5,
    13: 6,
    6: 7,
    7: 8,
    8: 9,
    9: 10,
    12: 11,
    10: 12,
    11: 13,
}

_EXTERN_KINDS = {
    0: ExternKind.FUNC,
    1: ExternKind.TABLE,
    2: ExternKind.MEMORY,
    3: ExternKind.GLOBAL,
}
_TAG_KIND = 4
TABLE_WITH_INIT = 0x40


@dataclass
class _State:
    """The state that the section readers share while one module is decoded."""

    module: Module
    func_type_indices: list[int] = field(default_factory=list)
    bodies: list[Function] = field(default_factory=list)
    code_notes: DecodeNotes = field(default_factory=DecodeNotes)
    const_notes: DecodeNotes = field(default_factory=DecodeNotes)
    # Encodings of later proposals met outside instructions.
    notes: DecodeNotes = field(default_factory=DecodeNotes)
    has_name_section: bool = False


def _read_const_expr(data: bytes, pos: int, state: _State) -> tuple[ConstExpr, int]:
    return decode_expr(data, pos, state.const_notes)


def _read_vec_count(data: bytes, pos: int) -> tuple[int, int]:
    return read_len32(data, pos)


# Type section


def _type_section(data: bytes, pos: int, state: _State) -> int:
    count, pos = _read_vec_count(data, pos)
    types = state.module.types
    for _ in range(count):
        type_pos = pos
        after_gc_type = skip_gc_composite_type(data, pos)
        if after_gc_type is not None:
            state.notes.defer(
                UnsupportedFeature("gc", "struct or array type", type_pos)
            )
            pos = after_gc_type
            types.append(FuncType((), ()))  # a placeholder: the module is rejected
            continue
        func_type, pos = read_func_type(data, pos)
        types.append(func_type)
    return pos


# Import section


def _import_section(data: bytes, pos: int, state: _State) -> int:
    count, pos = _read_vec_count(data, pos)
    imports = state.module.imports
    for _ in range(count):
        module_name, pos = read_name(data, pos)
        item_name, pos = read_name(data, pos)
        kind_pos = pos
        kind_byte = data[pos]
        pos += 1
        kind = _EXTERN_KINDS.get(kind_byte)
        desc: object
        if kind is ExternKind.FUNC:
            desc, pos = read_u32(data, pos)
        elif kind is ExternKind.TABLE:
            desc, pos = read_table_type(data, pos, state.notes)
        elif kind is ExternKind.MEMORY:
            desc, pos = read_memory_type(data, pos, state.notes)
        elif kind is ExternKind.GLOBAL:
            desc, pos = read_global_type(data, pos)
        elif kind_byte == _TAG_KIND:
            raise UnsupportedFeature("exception-handling", "tag import", kind_pos)
        else:
            raise DecodeError(f"malformed import kind (0x{kind_byte:02x})", kind_pos)
        import_entry = Import(module_name, item_name, kind, desc)  # type: ignore[arg-type]
        imports.append(import_entry)
    return pos


# Function section


def _function_section(data: bytes, pos: int, state: _State) -> int:
    count, pos = _read_vec_count(data, pos)
    indices = state.func_type_indices
    for _ in range(count):
        type_index, pos = read_u32(data, pos)
        indices.append(type_index)
    return pos


# Table section


def _table_section(data: bytes, pos: int, state: _State) -> int:
    count, pos = _read_vec_count(data, pos)
    tables = state.module.tables
    for _ in range(count):
        if data[pos] != TABLE_WITH_INIT:
            table_type, pos = read_table_type(data, pos, state.notes)
            tables.append(Table(table_type))
            continue
        # The function-references encoding: 0x40 0x00, table type, init expression.
        state.notes.defer(
            UnsupportedFeature(
                "function-references", "table with an initializer expression", pos
            )
        )
        if data[pos + 1] != 0:
            raise DecodeError(
                f"zero byte expected (found 0x{data[pos + 1]:02x})", pos + 1
            )
        table_type, pos = read_table_type(data, pos + 2, state.notes)
        init, pos = _read_const_expr(data, pos, state)
        tables.append(Table(table_type, init))
    return pos


# Memory section


def _memory_section(data: bytes, pos: int, state: _State) -> int:
    count, pos = _read_vec_count(data, pos)
    mems = state.module.mems
    for _ in range(count):
        memory_type, pos = read_memory_type(data, pos, state.notes)
        mems.append(Memory(memory_type))
    return pos


# Global section


def _global_section(data: bytes, pos: int, state: _State) -> int:
    count, pos = _read_vec_count(data, pos)
    globals_ = state.module.globals
    for _ in range(count):
        global_type, pos = read_global_type(data, pos)
        init, pos = _read_const_expr(data, pos, state)
        globals_.append(Global(global_type, init))
    return pos


# Export section


def _export_section(data: bytes, pos: int, state: _State) -> int:
    count, pos = _read_vec_count(data, pos)
    exports = state.module.exports
    for _ in range(count):
        name, pos = read_name(data, pos)
        kind_pos = pos
        kind_byte = data[pos]
        kind = _EXTERN_KINDS.get(kind_byte)
        if kind is None:
            if kind_byte == _TAG_KIND:
                raise UnsupportedFeature("exception-handling", "tag export", kind_pos)
            raise DecodeError(f"malformed export kind (0x{kind_byte:02x})", kind_pos)
        index, pos = read_u32(data, pos + 1)
        exports.append(Export(name, kind, index))
    return pos


# Start section


def _start_section(data: bytes, pos: int, state: _State) -> int:
    state.module.start, pos = read_u32(data, pos)
    return pos


# Element section


def _read_func_index_exprs(data: bytes, pos: int) -> tuple[list[ConstExpr], int]:
    """Read a vector of function indices as `ref.func` constant expressions."""
    count, pos = _read_vec_count(data, pos)
    exprs: list[ConstExpr] = []
    for _ in range(count):
        start = pos
        index, pos = read_u32(data, pos)
        exprs.append([Instr(REF_FUNC, index, start), Instr(END, None, -1)])
    return exprs, pos


def _read_expr_vec(data: bytes, pos: int, state: _State) -> tuple[list[ConstExpr], int]:
    count, pos = _read_vec_count(data, pos)
    exprs: list[ConstExpr] = []
    for _ in range(count):
        expr, pos = _read_const_expr(data, pos, state)
        exprs.append(expr)
    return exprs, pos


def _read_elem_kind(data: bytes, pos: int) -> tuple[ValType, int]:
    kind = data[pos]
    if kind != 0x00:
        raise DecodeError(f"malformed element kind (0x{kind:02x})", pos)
    return ValType.FUNCREF, pos + 1


def _read_elem_segment(data: bytes, pos: int, state: _State) -> tuple[ElemSegment, int]:
    """Read one element segment in any of its 8 encodings (spec "Element Section").

    Bit 0 of the flags marks a passive or declarative segment, bit 1 an
    explicit table index (active) or a declarative segment (otherwise), and
    bit 2 element expressions instead of function indices.
    """
    flags_pos = pos
    flags, pos = read_u32(data, pos)
    if flags > 7:
        raise DecodeError(f"malformed elements segment kind ({flags})", flags_pos)
    table_index = 0
    offset: ConstExpr | None = None
    if flags & 1:
        mode = SegmentMode.DECLARATIVE if flags & 2 else SegmentMode.PASSIVE
    else:
        mode = SegmentMode.ACTIVE
        if flags & 2:
            table_index, pos = read_u32(data, pos)
        offset, pos = _read_const_expr(data, pos, state)
    uses_exprs = bool(flags & 4)
    if flags & 3:
        if uses_exprs:
            elem_type, pos = read_reftype(data, pos)
        else:
            elem_type, pos = _read_elem_kind(data, pos)
    else:
        elem_type = ValType.FUNCREF
    if uses_exprs:
        init, pos = _read_expr_vec(data, pos, state)
    else:
        init, pos = _read_func_index_exprs(data, pos)
    return ElemSegment(elem_type, init, mode, table_index, offset), pos


def _element_section(data: bytes, pos: int, state: _State) -> int:
    count, pos = _read_vec_count(data, pos)
    elems = state.module.elems
    for _ in range(count):
        segment, pos = _read_elem_segment(data, pos, state)
        elems.append(segment)
    return pos


# Data count section


def _data_count_section(data: bytes, pos: int, state: _State) -> int:
    state.module.data_count, pos = read_u32(data, pos)
    return pos


# Code section


def _read_locals(data: bytes, pos: int) -> tuple[list[ValType], int]:
    start = pos
    count, pos = _read_vec_count(data, pos)
    groups = []
    total = 0
    for _ in range(count):
        repeat, pos = read_u32(data, pos)
        valtype, pos = read_valtype(data, pos)
        total += repeat
        groups.append((repeat, valtype))
    if total > MAX_LOCALS:
        raise DecodeError(f"too many locals ({total} > {MAX_LOCALS})", start)
    local_types: list[ValType] = []
    for repeat, valtype in groups:
        local_types.extend([valtype] * repeat)
    return local_types, pos


def _code_section(data: bytes, pos: int, state: _State) -> int:
    count, pos = _read_vec_count(data, pos)
    bodies = state.bodies
    for _ in range(count):
        entry_pos = pos
        _, start, end = read_sized(data, pos)
        local_types, pos = _read_locals(data, start)
        body, pos = decode_expr(data, pos, state.code_notes)
        check_size(pos, start, end)
        bodies.append(Function(-1, local_types, body, entry_pos))
    return pos


# Data section


def _data_section(data: bytes, pos: int, state: _State) -> int:
    count, pos = _read_vec_count(data, pos)
    datas = state.module.datas
    for _ in range(count):
        flags_pos = pos
        flags, pos = read_u32(data, pos)
        if flags == 1:
            init, pos = read_bytes(data, pos)
            datas.append(DataSegment(init, SegmentMode.PASSIVE))
            continue
        if flags == 0:
            memory_index = 0
        elif flags == 2:
            memory_index, pos = read_u32(data, pos)
        else:
            raise DecodeError(f"malformed data segment kind ({flags})", flags_pos)
        offset, pos = _read_const_expr(data, pos, state)
        init, pos = read_bytes(data, pos)
        datas.append(DataSegment(init, SegmentMode.ACTIVE, memory_index, offset))
    return pos


# Custom sections


def _custom_section(data: bytes, start: int, end: int, state: _State) -> int:
    name, pos = read_name(data, start)
    if pos > end:
        # The spec interpreter reads a negative number of payload bytes here.
        raise DecodeError(
            f"{UNEXPECTED_END} (custom section name runs past the section end)", end
        )
    if end > len(data):
        raise DecodeError(UNEXPECTED_END, len(data))
    payload = data[pos:end]
    state.module.customs.append((name, payload))
    if name == "name":
        _decode_names(payload, pos, state)
    return end


def _decode_names(payload: bytes, offset: int, state: _State) -> None:
    if state.has_name_section:
        logger.debug("ignoring a second name section at byte 0x%x", offset)
        return
    state.has_name_section = True
    try:
        state.module.names = decode_name_section(payload)
    except DecodeError as exc:
        where = exc.offset + offset if exc.offset is not None else offset
        logger.debug(
            "ignoring a malformed name section: %s (at byte 0x%x)", exc.message, where
        )
    except (IndexError, struct.error):
        logger.debug("ignoring a truncated name section at byte 0x%x", offset)


SectionReader = Callable[[bytes, int, _State], int]
_SECTION_READERS: dict[int, SectionReader] = {
    1: _type_section,
    2: _import_section,
    3: _function_section,
    4: _table_section,
    5: _memory_section,
    6: _global_section,
    7: _export_section,
    8: _start_section,
    9: _element_section,
    10: _code_section,
    11: _data_section,
    12: _data_count_section,
}


# Modules


def check_header(data: bytes) -> None:
    """Raise DecodeError unless `data` starts with the magic and version 1."""
    if len(data) < 4:
        raise DecodeError("unexpected end (no magic header)", len(data))
    if data[:4] != MAGIC:
        raise DecodeError(f"magic header not detected (found {data[:4]!r})", 0)
    if len(data) < HEADER_SIZE:
        raise DecodeError("unexpected end (no binary version)", len(data))
    if data[4:8] != VERSION:
        version = int.from_bytes(data[4:8], "little")
        raise DecodeError(f"unknown binary version (0x{version:x})", 4)


def _decode_sections(data: bytes, state: _State) -> None:
    pos = HEADER_SIZE
    size = len(data)
    last_rank = 0
    while pos < size:
        section_id = data[pos]
        if section_id == CUSTOM_SECTION:
            _, start, end = read_sized(data, pos + 1)
            pos = _custom_section(data, start, end, state)
            continue
        rank = SECTION_ORDER.get(section_id)
        if rank is None:
            raise DecodeError(f"malformed section id ({section_id})", pos)
        if rank <= last_rank:
            raise DecodeError(
                "unexpected content after last section "
                f"({SECTION_NAMES[section_id]} section out of order or repeated)",
                pos,
            )
        if section_id == TAG_SECTION:
            raise UnsupportedFeature("exception-handling", "tag section", pos)
        last_rank = rank
        _, start, end = read_sized(data, pos + 1)
        pos = _SECTION_READERS[section_id](data, start, state)
        check_size(pos, start, end)


def _finish(data: bytes, state: _State) -> Module:
    module = state.module
    type_indices = state.func_type_indices
    bodies = state.bodies
    if len(type_indices) != len(bodies):
        raise DecodeError(
            "function and code section have inconsistent lengths "
            f"({len(type_indices)} functions, {len(bodies)} bodies)",
            len(data),
        )
    if module.data_count is not None and module.data_count != len(module.datas):
        raise DecodeError(
            "data count and data section have inconsistent lengths "
            f"(data count {module.data_count}, {len(module.datas)} segments)",
            len(data),
        )
    if module.data_count is None and state.code_notes.uses_data_index:
        raise DecodeError(
            "data count section required (memory.init or data.drop is used)",
            len(data),
        )
    for unsupported in (
        state.notes.unsupported,
        state.const_notes.unsupported,
        state.code_notes.unsupported,
    ):
        if unsupported is not None:
            raise unsupported
    for type_index, function in zip(type_indices, bodies):
        function.type_index = type_index
    module.funcs = bodies
    return module


def decode_module(data: bytes | bytearray | memoryview) -> Module:
    """Decode a binary WebAssembly 2.0 module.

    Raises DecodeError for a malformed module, with the spec test suite's
    message and the byte offset, and UnsupportedFeature for encodings of
    later proposals (SIMD, threads, memory64, exception handling, ...).
    """
    data = bytes(data)
    started = time.perf_counter()
    check_header(data)
    state = _State(Module())
    # Decoding allocates millions of instruction tuples and no cycles. The
    # cyclic garbage collector would scan the growing heap again and again,
    # which made decoding CPython for WASI three to five times slower.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        _decode_sections(data, state)
    except (IndexError, struct.error):
        raise DecodeError(UNEXPECTED_END, len(data)) from None
    finally:
        if gc_was_enabled:
            gc.enable()
    module = _finish(data, state)
    logger.debug(
        "decoded a module of %d bytes with %d functions in %.3f s",
        len(data),
        len(module.funcs),
        time.perf_counter() - started,
    )
    return module
