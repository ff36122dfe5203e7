"""Decoding of instruction sequences: function bodies and constant expressions.

`decode_expr` reads instructions up to the `end` that closes the sequence and
returns them as one flat list of `Instr`, that `end` included. The immediate
kind (`Imm`) of each opcode in `wasmtee.opcodes.OPS` selects how its
immediates are read. This module only adds the opcodes of later proposals,
which raise `UnsupportedFeature`: at once, or for those whose immediates it
can read, once the rest of the module turned out well formed.

The decoder checks the block structure that the binary grammar fixes: `else`
may only follow the instructions of an `if` that has no `else` yet, and every
block ends with `end` ("END opcode expected" otherwise, as in the spec
interpreter). Blocks are tracked on an explicit stack, so deep nesting needs
no recursion.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wasmtee import opcodes
from wasmtee.binary.notes import DecodeNotes
from wasmtee.binary.reader import (
    read_f32_bits,
    read_f64_bits,
    read_len32,
    read_s64,
    read_signed,
    read_u32,
    read_u64,
    read_unsigned,
)
from wasmtee.binary.types import (
    PROPOSAL_TYPES,
    VALUE_TYPES,
    read_reftype,
    read_valtype,
)
from wasmtee.errors import DecodeError, UnsupportedFeature
from wasmtee.model import Instr
from wasmtee.opcodes import OPS, Imm

# Decoder kinds: what the loop in `decode_expr` does after reading an opcode.
# The common ones are handled inline, the rest by the readers in `_READERS`.
K_ILLEGAL = 0
K_NONE = 1
K_INDEX = 2  # one u32 index: label, function, local, global, table
K_MEMARG = 3
K_I32 = 4
K_END = 5
K_BLOCK = 6
K_ELSE = 7
K_PREFIX_FC = 8
K_UNSUPPORTED = 9
K_OTHER = 10  # read by a function from _READERS
K_DEFERRED = 11  # a proposal opcode from DEFERRED_PROPOSAL_OPCODES

_IMM_TO_KIND = {
    Imm.NONE: K_NONE,
    Imm.LABEL: K_INDEX,
    Imm.FUNC: K_INDEX,
    Imm.LOCAL: K_INDEX,
    Imm.GLOBAL: K_INDEX,
    Imm.TABLE: K_INDEX,
    Imm.DATA: K_INDEX,
    Imm.ELEM: K_INDEX,
    Imm.MEMARG: K_MEMARG,
    Imm.I32: K_I32,
    Imm.BLOCK_TYPE: K_BLOCK,
}

# Single-byte opcodes and prefixes of later proposals, which raise
# UnsupportedFeature at once.
PROPOSAL_OPCODES: dict[int, tuple[str, str]] = {
    0x06: ("legacy-exceptions", "try"),
    0x07: ("legacy-exceptions", "catch"),
    0x09: ("legacy-exceptions", "rethrow"),
    0x18: ("legacy-exceptions", "delegate"),
    0x19: ("legacy-exceptions", "catch_all"),
    0xE0: ("stack-switching", "cont.new"),
    0xE1: ("stack-switching", "cont.bind"),
    0xE2: ("stack-switching", "suspend"),
    0xE3: ("stack-switching", "resume"),
    0xE4: ("stack-switching", "resume_throw"),
    0xE5: ("stack-switching", "switch"),
    0xFB: ("gc", "0xfb prefix"),
}
for _prefix, _feature in opcodes.UNSUPPORTED_PREFIXES.items():
    PROPOSAL_OPCODES[_prefix] = (_feature, f"0x{_prefix:02x} prefix")

# 0xFC sub-opcodes of later proposals.
PROPOSAL_FC_OPCODES: dict[int, tuple[str, str]] = {
    0x13: ("wide-arithmetic", "i64.add128"),
    0x14: ("wide-arithmetic", "i64.sub128"),
    0x15: ("wide-arithmetic", "i64.mul_wide_s"),
    0x16: ("wide-arithmetic", "i64.mul_wide_u"),
}

Reader = Callable[[bytes, int], tuple[Any, int]]


def _read_memory_index(data: bytes, pos: int) -> tuple[int, int]:
    """Read the memory index of memory.size, memory.grow or memory.fill.

    WebAssembly 2.0 reserves a zero byte here; 3.0 reads a u32 index. The
    index is kept, so that the validator reports "unknown memory 1" as the
    spec test suite expects.
    """
    return read_u32(data, pos)


def _read_memory_zero(data: bytes, pos: int) -> int:
    """Read a memory index that the module model can only express as 0."""
    index, end = read_u32(data, pos)
    if index != 0:
        raise UnsupportedFeature("multi-memory", f"memory index {index}", pos)
    return end


def _read_index(data: bytes, pos: int) -> tuple[int, int]:
    return read_u32(data, pos)


def _read_br_table(data: bytes, pos: int) -> tuple[tuple[tuple[int, ...], int], int]:
    count, pos = read_len32(data, pos)
    labels = []
    for _ in range(count):
        label, pos = read_u32(data, pos)
        labels.append(label)
    default, pos = read_u32(data, pos)
    return (tuple(labels), default), pos


def _read_call_indirect(data: bytes, pos: int) -> tuple[tuple[int, int], int]:
    type_index, pos = read_u32(data, pos)
    table_index, pos = read_u32(data, pos)
    return (type_index, table_index), pos


def _read_index_pair(data: bytes, pos: int) -> tuple[tuple[int, int], int]:
    first, pos = read_u32(data, pos)
    second, pos = read_u32(data, pos)
    return (first, second), pos


def _read_heap_type(data: bytes, pos: int) -> tuple[Any, int]:
    byte = data[pos]
    if byte < 0x40 or 0x80 <= byte < 0xC0:
        # A non-negative s33 is a type index: a typed function reference.
        raise UnsupportedFeature("function-references", "typed ref.null", pos)
    return read_reftype(data, pos)


def _read_select_types(data: bytes, pos: int) -> tuple[tuple[Any, ...], int]:
    count, pos = read_len32(data, pos)
    types = []
    for _ in range(count):
        valtype, pos = read_valtype(data, pos)
        types.append(valtype)
    return tuple(types), pos


def _read_memory_init(data: bytes, pos: int) -> tuple[int, int]:
    data_index, pos = read_u32(data, pos)
    pos = _read_memory_zero(data, pos)
    return data_index, pos


def _read_memory_copy(data: bytes, pos: int) -> tuple[tuple[int, int], int]:
    destination, pos = read_u32(data, pos)
    source, pos = read_u32(data, pos)
    return (destination, source), pos


def _read_try_table(data: bytes, pos: int) -> tuple[Any, int]:
    block_type, pos = _read_block_type(data, pos)
    count, pos = read_len32(data, pos)
    for _ in range(count):
        kind = data[pos]
        if kind > 3:
            raise DecodeError(f"malformed catch clause (0x{kind:02x})", pos)
        pos += 1
        if kind < 2:
            _, pos = read_u32(data, pos)  # the tag index
        _, pos = read_u32(data, pos)  # the label
    return block_type, pos


def _read_nothing(data: bytes, pos: int) -> tuple[None, int]:
    return None, pos


# Opcodes of later proposals whose immediates are simple enough to decode.
# Decoding goes on past them and records the feature, so that a malformed
# module is still reported as malformed, as the spec test suite expects.
DEFERRED_PROPOSAL_OPCODES: dict[int, tuple[str, str, Reader]] = {
    0x08: ("exception-handling", "throw", _read_index),
    0x0A: ("exception-handling", "throw_ref", _read_nothing),
    0x1F: ("exception-handling", "try_table", _read_try_table),
    0x12: ("tail-call", "return_call", _read_index),
    0x13: ("tail-call", "return_call_indirect", _read_call_indirect),
    0x14: ("function-references", "call_ref", _read_index),
    0x15: ("function-references", "return_call_ref", _read_index),
    0xD3: ("gc", "ref.eq", _read_nothing),
    0xD4: ("function-references", "ref.as_non_null", _read_nothing),
    0xD5: ("function-references", "br_on_null", _read_index),
    0xD6: ("function-references", "br_on_non_null", _read_index),
}
TRY_TABLE = 0x1F

_IMM_READERS: dict[Imm, Reader] = {
    Imm.BR_TABLE: _read_br_table,
    Imm.CALL_INDIRECT: _read_call_indirect,
    Imm.MEMORY: _read_memory_index,
    Imm.I64: read_s64,
    Imm.F32: read_f32_bits,
    Imm.F64: read_f64_bits,
    Imm.REF_TYPE: _read_heap_type,
    Imm.SELECT_TYPES: _read_select_types,
    Imm.MEMORY_INIT: _read_memory_init,
    Imm.MEMORY_COPY: _read_memory_copy,
    Imm.TABLE_INIT: _read_index_pair,
    Imm.TABLE_COPY: _read_index_pair,
}


def _reader_for(imm: Imm) -> Reader:
    if imm is Imm.NONE:
        return _read_nothing
    if _IMM_TO_KIND.get(imm) == K_INDEX:
        return _read_index
    if imm is Imm.MEMARG:
        return _read_memarg
    if imm is Imm.I32:
        return _read_i32
    return _IMM_READERS[imm]


def _read_memarg(data: bytes, pos: int) -> tuple[tuple[int, int], int]:
    """Read a memarg as WebAssembly 3.0 encodes it.

    Bit 6 of the flags announces a memory index; index 0 is memory 0 as in
    2.0, any other needs multi-memory. The offset is a u64 so that offsets of
    2**32 and more reach the validator, which rejects them for a 32-bit
    memory as the spec test suite expects.
    """
    start = pos
    flags, pos = read_u32(data, pos)
    if flags >= 0x40:
        if flags >= 0x80:
            raise DecodeError(f"malformed memop flags (0x{flags:x})", start)
        index_pos = pos
        memory_index, pos = read_u32(data, pos)
        if memory_index != 0:
            raise UnsupportedFeature(
                "multi-memory", f"memory index {memory_index}", index_pos
            )
        flags &= 0x3F
    offset, pos = read_u64(data, pos)
    return (flags, offset), pos


def _read_i32(data: bytes, pos: int) -> tuple[int, int]:
    return read_signed(data, pos, 32)


def _build_tables() -> tuple[
    list[int], list[Reader | None], dict[int, tuple[int, Reader]]
]:
    kinds = [K_ILLEGAL] * 256
    readers: list[Reader | None] = [None] * 256
    fc_ops: dict[int, tuple[int, Reader]] = {}
    for code, info in OPS.items():
        if code > 0xFF:
            if code >> 8 == opcodes.PREFIX_FC:
                fc_ops[code & 0xFF] = (code, _reader_for(info.imm))
            continue
        kind = _IMM_TO_KIND.get(info.imm, K_OTHER)
        if kind == K_OTHER:
            readers[code] = _IMM_READERS[info.imm]
        kinds[code] = kind
    kinds[opcodes.END] = K_END
    kinds[opcodes.ELSE] = K_ELSE
    kinds[opcodes.PREFIX_FC] = K_PREFIX_FC
    for code in PROPOSAL_OPCODES:
        kinds[code] = K_UNSUPPORTED
    for code in DEFERRED_PROPOSAL_OPCODES:
        kinds[code] = K_DEFERRED
    return kinds, readers, fc_ops


_KINDS, _READERS, _FC_OPS = _build_tables()

# Block kinds on the control stack of `decode_expr`.
_BLOCK_OR_LOOP = 0
_IF = 1
_IF_WITH_ELSE = 2

_DATA_INDEX_OPS = frozenset(
    {opcodes.BY_NAME["memory.init"].code, opcodes.BY_NAME["data.drop"].code}
)


def _read_block_type(data: bytes, pos: int) -> tuple[Any, int]:
    byte = data[pos]
    if byte == 0x40:
        return None, pos + 1
    valtype = VALUE_TYPES.get(byte)
    if valtype is not None:
        return valtype, pos + 1
    if byte & 0xC0 == 0x40 or byte in PROPOSAL_TYPES:
        # A one-byte negative s33: a value type, just not a 2.0 one.
        return read_valtype(data, pos)
    start = pos
    index, pos = read_signed(data, pos, 33)
    if index < 0:
        raise DecodeError(f"malformed block type ({index})", start)
    return index, pos


def _raise_illegal(data: bytes, start: int, op: int) -> None:
    proposal = PROPOSAL_OPCODES.get(op)
    if proposal is not None:
        feature, name = proposal
        raise UnsupportedFeature(feature, name, start)
    raise DecodeError(f"illegal opcode {op:02x}", start)


def _decode_fc(data: bytes, start: int, pos: int) -> tuple[int, Any, int]:
    sub, pos = read_u32(data, pos)
    entry = _FC_OPS.get(sub)
    if entry is None:
        proposal = PROPOSAL_FC_OPCODES.get(sub)
        if proposal is not None:
            raise UnsupportedFeature(proposal[0], proposal[1], start)
        raise DecodeError(f"illegal opcode fc {sub:02x}", start)
    code, reader = entry
    imm, pos = reader(data, pos)
    return code, imm, pos


def _decode_deferred(
    data: bytes, start: int, op: int, notes: DecodeNotes
) -> tuple[Any, int]:
    feature, name, reader = DEFERRED_PROPOSAL_OPCODES[op]
    notes.defer(UnsupportedFeature(feature, name, start))
    return reader(data, start + 1)


def decode_expr(data: bytes, pos: int, notes: DecodeNotes) -> tuple[list[Instr], int]:
    """Decode instructions from `pos` up to the `end` that closes the sequence.

    Return the instructions (the final `end` included) and the position after
    them. Reading past the end of `data` raises IndexError, which the caller
    reports.
    """
    instrs: list[Instr] = []
    append = instrs.append
    new = tuple.__new__
    instr_type = Instr
    kinds = _KINDS
    control: list[int] = []
    # Local names for the kinds: the loop runs once per instruction.
    k_index, k_memarg, k_i32, k_none = K_INDEX, K_MEMARG, K_I32, K_NONE
    k_end, k_block, k_else, k_other = K_END, K_BLOCK, K_ELSE, K_OTHER
    k_prefix_fc, k_deferred = K_PREFIX_FC, K_DEFERRED
    read_unsigned_leb = read_unsigned
    while True:
        start = pos
        op = data[pos]
        pos += 1
        kind = kinds[op]
        if kind == k_index:
            byte = data[pos]
            if byte < 0x80:
                pos += 1
                append(new(instr_type, (op, byte, start)))
            else:
                index, pos = read_unsigned_leb(data, pos, 32)
                append(new(instr_type, (op, index, start)))
        elif kind == k_memarg:
            flags = data[pos]
            offset = data[pos + 1]
            if flags < 0x40 and offset < 0x80:
                pos += 2
                append(new(instr_type, (op, (flags, offset), start)))
            else:
                memarg, pos = _read_memarg(data, pos)
                append(new(instr_type, (op, memarg, start)))
        elif kind == k_i32:
            byte = data[pos]
            if byte < 0x80:
                pos += 1
                append(
                    new(instr_type, (op, byte - 0x80 if byte & 0x40 else byte, start))
                )
            else:
                value, pos = read_signed(data, pos, 32)
                append(new(instr_type, (op, value, start)))
        elif kind == k_none:
            append(new(instr_type, (op, None, start)))
        elif kind == k_end:
            append(new(instr_type, (op, None, start)))
            if not control:
                return instrs, pos
            control.pop()
        elif kind == k_block:
            block_type, pos = _read_block_type(data, pos)
            append(new(instr_type, (op, block_type, start)))
            control.append(_IF if op == opcodes.IF else _BLOCK_OR_LOOP)
        elif kind == k_else:
            if not control or control[-1] != _IF:
                raise DecodeError("END opcode expected (else outside if)", start)
            control[-1] = _IF_WITH_ELSE
            append(new(instr_type, (op, None, start)))
        elif kind == k_other:
            imm, pos = _READERS[op](data, pos)  # type: ignore[misc]
            append(new(instr_type, (op, imm, start)))
        elif kind == k_prefix_fc:
            code, imm, pos = _decode_fc(data, start, pos)
            if code in _DATA_INDEX_OPS:
                notes.uses_data_index = True
            append(new(instr_type, (code, imm, start)))
        elif kind == k_deferred:
            imm, pos = _decode_deferred(data, start, op, notes)
            append(new(instr_type, (op, imm, start)))
            if op == TRY_TABLE:
                control.append(_BLOCK_OR_LOOP)
        else:
            _raise_illegal(data, start, op)
