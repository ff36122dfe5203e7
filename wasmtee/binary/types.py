"""Decoding of types: value, reference, function, table, memory and global types.

Encodings that belong to proposals beyond WebAssembly 2.0 raise
`UnsupportedFeature` naming the proposal. Bytes that no proposal assigns are
malformed.
"""

from __future__ import annotations

from wasmtee.binary.reader import read_len32, read_u32
from wasmtee.errors import DecodeError, UnsupportedFeature
from wasmtee.model import FuncType, GlobalType, Limits, MemoryType, TableType, ValType

VALUE_TYPES: dict[int, ValType] = {
    0x7F: ValType.I32,
    0x7E: ValType.I64,
    0x7D: ValType.F32,
    0x7C: ValType.F64,
    0x70: ValType.FUNCREF,
    0x6F: ValType.EXTERNREF,
}
REFERENCE_TYPES: dict[int, ValType] = {
    0x70: ValType.FUNCREF,
    0x6F: ValType.EXTERNREF,
}

# Type bytes that later proposals assign, mapped to the proposal's name.
PROPOSAL_TYPES: dict[int, str] = {
    0x7B: "simd",  # v128
    0x78: "gc",  # i8 (packed storage type)
    0x77: "gc",  # i16 (packed storage type)
    0x74: "exception-handling",  # nullexnref
    0x73: "gc",  # nullfuncref
    0x72: "gc",  # nullexternref
    0x71: "gc",  # nullref
    0x6E: "gc",  # anyref
    0x6D: "gc",  # eqref
    0x6C: "gc",  # i31ref
    0x6B: "gc",  # structref
    0x6A: "gc",  # arrayref
    0x69: "exception-handling",  # exnref
    0x68: "stack-switching",  # contref
    0x75: "stack-switching",  # nullcontref
    0x64: "function-references",  # (ref ht)
    0x63: "function-references",  # (ref null ht)
}

# Type-section forms other than a plain function type (0x60).
PROPOSAL_DEFINED_TYPES: dict[int, str] = {
    0x5F: "gc",  # struct
    0x5E: "gc",  # array
    0x50: "gc",  # sub
    0x4F: "gc",  # sub final
    0x4E: "gc",  # rec
    0x5D: "stack-switching",  # cont
}

FUNC_TYPE_FORM = 0x60


def _reject_type_byte(data: bytes, pos: int, message: str) -> None:
    byte = data[pos]
    feature = PROPOSAL_TYPES.get(byte)
    if feature is not None:
        raise UnsupportedFeature(feature, f"type byte 0x{byte:02x}", pos)
    if byte & 0x80:
        # Types are s7 LEB128 values, so a continuation bit makes them too long.
        raise DecodeError("integer representation too long", pos + 1)
    raise DecodeError(f"{message} (byte 0x{byte:02x})", pos)


def read_valtype(data: bytes, pos: int) -> tuple[ValType, int]:
    valtype = VALUE_TYPES.get(data[pos])
    if valtype is None:
        _reject_type_byte(data, pos, "malformed value type")
    return valtype, pos + 1  # type: ignore[return-value]


def read_reftype(data: bytes, pos: int) -> tuple[ValType, int]:
    reftype = REFERENCE_TYPES.get(data[pos])
    if reftype is None:
        _reject_type_byte(data, pos, "malformed reference type")
    return reftype, pos + 1  # type: ignore[return-value]


def read_result_type(data: bytes, pos: int) -> tuple[tuple[ValType, ...], int]:
    count, pos = read_len32(data, pos)
    types = []
    for _ in range(count):
        valtype, pos = read_valtype(data, pos)
        types.append(valtype)
    return tuple(types), pos


def read_func_type(data: bytes, pos: int) -> tuple[FuncType, int]:
    form = data[pos]
    if form != FUNC_TYPE_FORM:
        feature = PROPOSAL_DEFINED_TYPES.get(form)
        if feature is not None:
            raise UnsupportedFeature(feature, f"type form 0x{form:02x}", pos)
        if form & 0x80:
            raise DecodeError("integer representation too long", pos + 1)
        raise DecodeError(f"malformed function type (form 0x{form:02x})", pos)
    params, pos = read_result_type(data, pos + 1)
    results, pos = read_result_type(data, pos)
    return FuncType(params, results), pos


def read_limits(data: bytes, pos: int) -> tuple[Limits, int]:
    flags = data[pos]
    if flags > 1:
        if flags in (2, 3):
            raise UnsupportedFeature("threads", f"shared limits flags 0x{flags:02x}", pos)
        if 4 <= flags <= 7:
            raise UnsupportedFeature("memory64", f"64-bit limits flags 0x{flags:02x}", pos)
        raise DecodeError(f"malformed limits flags (0x{flags:02x})", pos)
    minimum, pos = read_u32(data, pos + 1)
    maximum = None
    if flags:
        maximum, pos = read_u32(data, pos)
    return Limits(minimum, maximum), pos


def read_table_type(data: bytes, pos: int) -> tuple[TableType, int]:
    elem_type, pos = read_reftype(data, pos)
    limits, pos = read_limits(data, pos)
    return TableType(elem_type, limits), pos


def read_memory_type(data: bytes, pos: int) -> tuple[MemoryType, int]:
    limits, pos = read_limits(data, pos)
    return MemoryType(limits), pos


def read_global_type(data: bytes, pos: int) -> tuple[GlobalType, int]:
    valtype, pos = read_valtype(data, pos)
    mutability = data[pos]
    if mutability > 1:
        raise DecodeError(f"malformed mutability (0x{mutability:02x})", pos)
    return GlobalType(valtype, mutability == 1), pos + 1
