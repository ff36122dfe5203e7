"""Decoding of types: value, reference, function, table, memory and global types.

Encodings that belong to proposals beyond WebAssembly 2.0 raise
`UnsupportedFeature` naming the proposal. Bytes that no proposal assigns are
malformed.
"""

from __future__ import annotations

from wasmtee.binary.notes import DecodeNotes
from wasmtee.binary.reader import read_len32, read_s33, read_u64
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
STRUCT_FORM = 0x5F
ARRAY_FORM = 0x5E


REF_NULL_FORM = 0x63
REF_FORM = 0x64
PACKED_TYPES = frozenset({0x78, 0x77})


def _read_other_type(data: bytes, pos: int, message: str) -> tuple[ValType, int]:
    """Read a type byte outside the one-byte 2.0 value types.

    `(ref null func)` and `(ref null extern)` are the long forms of funcref
    and externref, so they decode to those. Other proposal types raise
    UnsupportedFeature, and unknown bytes DecodeError with `message`.
    """
    byte = data[pos]
    if byte == REF_NULL_FORM:
        reftype = REFERENCE_TYPES.get(data[pos + 1])
        if reftype is not None:
            return reftype, pos + 2
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
        return _read_other_type(data, pos, "malformed value type")
    return valtype, pos + 1


def read_reftype(data: bytes, pos: int) -> tuple[ValType, int]:
    reftype = REFERENCE_TYPES.get(data[pos])
    if reftype is None:
        return _read_other_type(data, pos, "malformed reference type")
    return reftype, pos + 1


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


def _skip_storage_type(data: bytes, pos: int) -> int:
    byte = data[pos]
    if byte == REF_NULL_FORM or byte == REF_FORM:
        _, pos = read_s33(data, pos + 1)  # the heap type
        return pos
    if byte in VALUE_TYPES or byte in PACKED_TYPES or byte in PROPOSAL_TYPES:
        return pos + 1
    if byte & 0x80:
        raise DecodeError("integer representation too long", pos + 1)
    raise DecodeError(f"malformed storage type (byte 0x{byte:02x})", pos)


def _skip_field_type(data: bytes, pos: int) -> int:
    pos = _skip_storage_type(data, pos)
    mutability = data[pos]
    if mutability > 1:
        raise DecodeError(f"malformed mutability (0x{mutability:02x})", pos)
    return pos + 1


def skip_gc_composite_type(data: bytes, pos: int) -> int | None:
    """Skip a GC struct or array type and return the position after it.

    Return None when the type at `pos` is no struct or array type. The type
    section reads these only to report malformed content before the
    unsupported GC feature, as the spec test suite expects.
    """
    form = data[pos]
    if form == ARRAY_FORM:
        return _skip_field_type(data, pos + 1)
    if form == STRUCT_FORM:
        count, pos = read_len32(data, pos + 1)
        for _ in range(count):
            pos = _skip_field_type(data, pos)
        return pos
    return None


def read_limits(data: bytes, pos: int, notes: DecodeNotes) -> tuple[Limits, int]:
    """Read limits; flags of threads (shared) and memory64 are recorded in `notes`."""
    flags = data[pos]
    if flags > 1:
        if flags > 7:
            raise DecodeError(f"malformed limits flags (0x{flags:02x})", pos)
        if flags & 4:
            notes.defer(
                UnsupportedFeature("memory64", f"limits flags 0x{flags:02x}", pos)
            )
        else:
            notes.defer(
                UnsupportedFeature("threads", f"limits flags 0x{flags:02x}", pos)
            )
    # Limits are u64 as in WebAssembly 3.0, whose test suite expects an
    # out-of-range size to be invalid ("memory size"), not malformed. The
    # validator checks the ranges of 2.0.
    minimum, pos = read_u64(data, pos + 1)
    maximum = None
    if flags & 1:
        maximum, pos = read_u64(data, pos)
    return Limits(minimum, maximum), pos


def read_table_type(data: bytes, pos: int, notes: DecodeNotes) -> tuple[TableType, int]:
    elem_type, pos = read_reftype(data, pos)
    limits, pos = read_limits(data, pos, notes)
    return TableType(elem_type, limits), pos


def read_memory_type(
    data: bytes, pos: int, notes: DecodeNotes
) -> tuple[MemoryType, int]:
    limits, pos = read_limits(data, pos, notes)
    return MemoryType(limits), pos


def read_global_type(data: bytes, pos: int) -> tuple[GlobalType, int]:
    valtype, pos = read_valtype(data, pos)
    mutability = data[pos]
    if mutability > 1:
        raise DecodeError(f"malformed mutability (0x{mutability:02x})", pos)
    return GlobalType(valtype, mutability == 1), pos + 1
