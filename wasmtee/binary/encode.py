"""Encoding of a `wasmtee.model.Module` into the binary format.

`encode_module` writes one canonical form: minimal LEB128 integers, element
segments as function indices whenever every element is a `ref.func`, and
custom sections after all other sections. A module built by the text parser thus
gets a binary form, and `decode_module(encode_module(m))` equals `m` up to
byte offsets and the placement of custom sections.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

from wasmtee import opcodes
from wasmtee.errors import InternalError
from wasmtee.model import (
    ConstExpr,
    DataSegment,
    ElemSegment,
    Function,
    FuncType,
    GlobalType,
    Import,
    Instr,
    Limits,
    MemoryType,
    Module,
    NameSection,
    SegmentMode,
    TableType,
    ValType,
)
from wasmtee.opcodes import OPS, Imm

_F32_BITS = struct.Struct("<I")
_F64_BITS = struct.Struct("<Q")


def encode_u(value: int) -> bytes:
    """Encode an unsigned integer as minimal LEB128."""
    if value < 0:
        raise InternalError(
            f"cannot encode the negative value {value} as unsigned LEB128"
        )
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_s(value: int) -> bytes:
    """Encode a signed integer as minimal LEB128."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        done = (value == 0 and not byte & 0x40) or (value == -1 and byte & 0x40)
        if done:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def _signed(value: int, bits: int) -> int:
    """Return `value` as a signed integer, whether it came signed or unsigned."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _name(text: str) -> bytes:
    raw = text.encode("utf-8")
    return encode_u(len(raw)) + raw


def _vec(items: Iterable[bytes]) -> bytes:
    parts = list(items)
    return encode_u(len(parts)) + b"".join(parts)


def _section(section_id: int, payload: bytes) -> bytes:
    return bytes([section_id]) + encode_u(len(payload)) + payload


# Types


def _func_type(func_type: FuncType) -> bytes:
    params = _vec(bytes([valtype]) for valtype in func_type.params)
    results = _vec(bytes([valtype]) for valtype in func_type.results)
    return b"\x60" + params + results


def _limits(limits: Limits) -> bytes:
    if limits.max is None:
        return b"\x00" + encode_u(limits.min)
    return b"\x01" + encode_u(limits.min) + encode_u(limits.max)


def _table_type(table_type: TableType) -> bytes:
    return bytes([table_type.elem_type]) + _limits(table_type.limits)


def _memory_type(memory_type: MemoryType) -> bytes:
    return _limits(memory_type.limits)


def _global_type(global_type: GlobalType) -> bytes:
    return bytes([global_type.val_type, 1 if global_type.mutable else 0])


# Instructions


def _block_type(block_type: object) -> bytes:
    if block_type is None:
        return b"\x40"
    if isinstance(block_type, ValType):
        return bytes([block_type])
    if isinstance(block_type, int):
        return encode_s(block_type)
    raise InternalError(f"invalid block type {block_type!r}")


def _immediate(info: opcodes.OpInfo, imm: Any) -> bytes:
    kind = info.imm
    if kind is Imm.NONE:
        return b""
    if kind in (
        Imm.LABEL,
        Imm.FUNC,
        Imm.LOCAL,
        Imm.GLOBAL,
        Imm.TABLE,
        Imm.MEMORY,
        Imm.DATA,
        Imm.ELEM,
    ):
        return encode_u(imm)
    if kind is Imm.BLOCK_TYPE:
        return _block_type(imm)
    if kind is Imm.MEMARG:
        align, offset = imm
        return encode_u(align) + encode_u(offset)
    if kind is Imm.I32:
        return encode_s(_signed(imm, 32))
    if kind is Imm.I64:
        return encode_s(_signed(imm, 64))
    if kind is Imm.F32:
        return _F32_BITS.pack(imm)
    if kind is Imm.F64:
        return _F64_BITS.pack(imm)
    if kind is Imm.BR_TABLE:
        labels, default = imm
        return _vec(encode_u(label) for label in labels) + encode_u(default)
    if kind in (Imm.CALL_INDIRECT, Imm.TABLE_INIT, Imm.TABLE_COPY, Imm.MEMORY_COPY):
        first, second = imm
        return encode_u(first) + encode_u(second)
    if kind is Imm.REF_TYPE:
        return bytes([imm])
    if kind is Imm.SELECT_TYPES:
        return _vec(bytes([valtype]) for valtype in imm)
    if kind is Imm.MEMORY_INIT:
        return encode_u(imm) + b"\x00"
    raise InternalError(f"no encoding for immediate kind {kind}")


def encode_instructions(instrs: Iterable[Instr]) -> bytes:
    """Encode a flat instruction sequence, such as a body ending with `end`."""
    out = bytearray()
    for instr in instrs:
        info = OPS.get(instr.op)
        if info is None:
            raise InternalError(f"cannot encode the unknown opcode 0x{instr.op:x}")
        if instr.op > 0xFF:
            out.append(instr.op >> 8)
            out += encode_u(instr.op & 0xFF)
        else:
            out.append(instr.op)
        out += _immediate(info, instr.imm)
    return bytes(out)


# Sections


def _import(entry: Import) -> bytes:
    head = _name(entry.module) + _name(entry.name) + bytes([entry.kind])
    desc = entry.desc
    if isinstance(desc, int):
        return head + encode_u(desc)
    if isinstance(desc, TableType):
        return head + _table_type(desc)
    if isinstance(desc, MemoryType):
        return head + _memory_type(desc)
    return head + _global_type(desc)


def _function_indices(exprs: list[ConstExpr]) -> list[int] | None:
    """Return the function indices if every expression is `ref.func x; end`."""
    indices = []
    for expr in exprs:
        if (
            len(expr) != 2
            or expr[0].op != opcodes.REF_FUNC
            or expr[1].op != opcodes.END
        ):
            return None
        indices.append(expr[0].imm)
    return indices


def _elem(segment: ElemSegment) -> bytes:
    indices = None
    if segment.elem_type == ValType.FUNCREF:
        indices = _function_indices(segment.init)
    active = segment.mode is SegmentMode.ACTIVE
    explicit_table = active and (
        segment.table_index != 0 or segment.elem_type != ValType.FUNCREF
    )
    if active:
        flags = 2 if explicit_table else 0
    else:
        flags = 1 if segment.mode is SegmentMode.PASSIVE else 3
    if indices is None:
        flags |= 4
    out = bytearray(encode_u(flags))
    if explicit_table:
        out += encode_u(segment.table_index)
    if active:
        out += encode_instructions(segment.offset or [])
    if flags & 3:
        out += bytes([segment.elem_type]) if indices is None else b"\x00"
    if indices is None:
        out += _vec(encode_instructions(expr) for expr in segment.init)
    else:
        out += _vec(encode_u(index) for index in indices)
    return bytes(out)


def _data(segment: DataSegment) -> bytes:
    if segment.mode is SegmentMode.PASSIVE:
        return b"\x01" + encode_u(len(segment.init)) + segment.init
    if segment.memory_index == 0:
        head = b"\x00"
    else:
        head = b"\x02" + encode_u(segment.memory_index)
    offset = encode_instructions(segment.offset or [])
    return head + offset + encode_u(len(segment.init)) + segment.init


def _code(function: Function) -> bytes:
    groups: list[tuple[int, ValType]] = []
    for valtype in function.locals:
        if groups and groups[-1][1] == valtype:
            groups[-1] = (groups[-1][0] + 1, valtype)
        else:
            groups.append((1, valtype))
    body = _vec(encode_u(count) + bytes([valtype]) for count, valtype in groups)
    body += encode_instructions(function.body)
    return encode_u(len(body)) + body


def _name_map(names: dict[int, str]) -> bytes:
    return _vec(encode_u(index) + _name(name) for index, name in sorted(names.items()))


def encode_name_section(names: NameSection) -> bytes:
    """Encode the payload of a `name` custom section (after its own name)."""
    out = bytearray()
    if names.module_name is not None:
        out += _section(0, _name(names.module_name))
    if names.func_names:
        out += _section(1, _name_map(names.func_names))
    if names.local_names:
        payload = _vec(
            encode_u(index) + _name_map(locals_)
            for index, locals_ in sorted(names.local_names.items())
        )
        out += _section(2, payload)
    return bytes(out)


def encode_module(module: Module) -> bytes:
    """Encode a module into the binary format.

    Raises InternalError for a module that no binary can express, such as an
    instruction with an opcode outside the opcode table.
    """
    out = bytearray(b"\0asm\x01\0\0\0")
    if module.types:
        out += _section(1, _vec(_func_type(func_type) for func_type in module.types))
    if module.imports:
        out += _section(2, _vec(_import(entry) for entry in module.imports))
    if module.funcs:
        out += _section(3, _vec(encode_u(f.type_index) for f in module.funcs))
    if module.tables:
        out += _section(4, _vec(_table_type(table.type) for table in module.tables))
    if module.mems:
        out += _section(5, _vec(_memory_type(memory.type) for memory in module.mems))
    if module.globals:
        out += _section(
            6,
            _vec(
                _global_type(g.type) + encode_instructions(g.init)
                for g in module.globals
            ),
        )
    if module.exports:
        out += _section(
            7,
            _vec(
                _name(e.name) + bytes([e.kind]) + encode_u(e.index)
                for e in module.exports
            ),
        )
    if module.start is not None:
        out += _section(8, encode_u(module.start))
    if module.elems:
        out += _section(9, _vec(_elem(segment) for segment in module.elems))
    if module.data_count is not None:
        out += _section(12, encode_u(module.data_count))
    if module.funcs:
        out += _section(10, _vec(_code(function) for function in module.funcs))
    if module.datas:
        out += _section(11, _vec(_data(segment) for segment in module.datas))
    custom_names = {name for name, _ in module.customs}
    for name, payload in module.customs:
        out += _section(0, _name(name) + payload)
    names = module.names
    has_names = names.module_name is not None or names.func_names or names.local_names
    if has_names and "name" not in custom_names:
        out += _section(0, _name("name") + encode_name_section(names))
    return bytes(out)
