"""Tests for the WAT lexer, numeric literals, module parser and WAST script parser."""

from __future__ import annotations

import shutil
import struct
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wasmtee import opcodes
from wasmtee.errors import UnsupportedFeature, WasmteeError, WatSyntaxError
from wasmtee.model import ExternKind, FuncType, SegmentMode, ValType
from wasmtee.opcodes import BY_NAME
from wasmtee.text import parse_wat, parse_wat_bytes
from wasmtee.text.numbers import F32, F64, int_literal_bits, parse_float_bits
from wasmtee.text.wast import parse_script

I32, I64, F32T, F64T = ValType.I32, ValType.I64, ValType.F32, ValType.F64


def ops(body):
    return [(opcodes.op_name(i.op), i.imm) for i in body]


# Numeric literals -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, bits, expected",
    [
        ("0", 32, 0),
        ("-1", 32, 0xFFFF_FFFF),
        ("0xffff_ffff", 32, 0xFFFF_FFFF),
        ("4294967295", 32, 0xFFFF_FFFF),
        ("-2147483648", 32, 0x8000_0000),
        ("+0x7fffffff", 32, 0x7FFF_FFFF),
        ("18446744073709551615", 64, 0xFFFF_FFFF_FFFF_FFFF),
        ("-0x8000_0000_0000_0000", 64, 1 << 63),
    ],
)
def test_int_literal_in_range(text, bits, expected):
    assert int_literal_bits(text, bits) == expected


@pytest.mark.parametrize(
    "text, bits",
    [
        ("4294967296", 32),
        ("-2147483649", 32),
        ("+2147483648", 32),
        ("1__0", 32),
        ("_1", 32),
        ("1_", 32),
        ("0x", 32),
        ("18446744073709551616", 64),
        ("1.0", 32),
    ],
)
def test_int_literal_rejected(text, bits):
    assert int_literal_bits(text, bits) is None


def f32_bits_by_struct(value: float) -> int:
    return struct.unpack("<I", struct.pack("<f", value))[0]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0.1", f32_bits_by_struct(0.1)),
        ("-0", 0x8000_0000),
        ("0x1p-149", 0x0000_0001),
        ("0x1p-150", 0x0000_0000),  # exactly half the smallest subnormal: ties to even
        ("0x1.000001p-150", 0x0000_0001),  # just above the tie
        ("0x1.fffffep127", 0x7F7F_FFFF),
        ("3.4028235e38", 0x7F7F_FFFF),
        ("inf", 0x7F80_0000),
        ("-inf", 0xFF80_0000),
        ("nan", 0x7FC0_0000),
        ("-nan:0x1", 0xFF80_0001),
        ("nan:0x7f_ffff", 0x7FFF_FFFF),
        ("1_000.000_1e-0_3", f32_bits_by_struct(1.0000001)),
        # The value 1 + 2**-24 + 2**-60 rounds to the tie 1 + 2**-24 as a double,
        # and that tie rounds to even (1.0). Exact rounding gives the next f32 up.
        ("0x1.000001000000001p0", 0x3F80_0001),
        ("1.00000005960464477539062500000001", 0x3F80_0001),
    ],
)
def test_f32_literal_bits(text, expected):
    assert parse_float_bits(text, F32) == expected


@pytest.mark.parametrize(
    "text",
    [
        "0x1.ffffffp127",
        "3.4028236e38",
        "1e39",
        "nan:0x0",
        "nan:0x80_0000",
        "1.e",
        "0x.1",
        "1__0.0",
        "infinity",
    ],
)
def test_f32_literal_rejected(text):
    assert parse_float_bits(text, F32) is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0.1", 0x3FB9_9999_9999_999A),
        ("0x1p-1074", 1),
        ("0x1.fffffffffffff8p1023", None),  # halfway to 2**1024 rounds to infinity
        ("1.7976931348623157e308", 0x7FEF_FFFF_FFFF_FFFF),
        ("-nan:0xf_ffff_ffff_ffff", 0xFFFF_FFFF_FFFF_FFFF),
        ("1e-400", 0),
        ("1e400", None),
        ("0x1P+3", 0x4020_0000_0000_0000),
    ],
)
def test_f64_literal_bits(text, expected):
    assert parse_float_bits(text, F64) == expected


# Module structure -----------------------------------------------------------------------


def test_folded_and_flat_bodies_match():
    folded = parse_wat("""(module (func (param i32) (result i32)
        (i32.add (local.get 0) (i32.const 1))))""")
    flat = parse_wat("""(module (func (param i32) (result i32)
        local.get 0 i32.const 1 i32.add))""")
    assert ops(folded.funcs[0].body) == ops(flat.funcs[0].body)
    assert ops(flat.funcs[0].body) == [
        ("local.get", 0),
        ("i32.const", 1),
        ("i32.add", None),
        ("end", None),
    ]


def test_labels_resolve_to_depths():
    module = parse_wat("""(module (func
        (block $outer (loop $inner (br $outer) (br $inner) (br 0)
          (block (br_table $inner $outer 0 1 2))))))""")
    assert ops(module.funcs[0].body) == [
        ("block", None),
        ("loop", None),
        ("br", 1),
        ("br", 0),
        ("br", 0),
        ("block", None),
        ("br_table", ((1, 2, 0, 1), 2)),
        ("end", None),
        ("end", None),
        ("end", None),
        ("end", None),
    ]


def test_label_shadowing_picks_innermost():
    module = parse_wat("(func (block $l (block $l (br $l))))")
    assert ops(module.funcs[0].body)[2] == ("br", 0)


def test_folded_if_then_else():
    module = parse_wat("""(func (result i32)
        (if (result i32) (i32.const 1) (then (i32.const 2)) (else (i32.const 3))))""")
    assert ops(module.funcs[0].body) == [
        ("i32.const", 1),
        ("if", I32),
        ("i32.const", 2),
        ("else", None),
        ("i32.const", 3),
        ("end", None),
        ("end", None),
    ]


def test_flat_if_with_matching_labels():
    module = parse_wat("(func i32.const 0 if $l else $l end $l)")
    assert ops(module.funcs[0].body) == [
        ("i32.const", 0),
        ("if", None),
        ("else", None),
        ("end", None),
        ("end", None),
    ]


def test_implicit_types_are_appended_after_explicit_ones():
    module = parse_wat("""(module
        (func $f (result f64) (f64.const 0))
        (func $g (param i32))
        (func $h (result f64) (f64.const 1))
        (type $t (func (param i32))))""")
    assert module.types == [FuncType((I32,), ()), FuncType((), (F64T,))]
    assert [f.type_index for f in module.funcs] == [1, 0, 1]


def test_block_type_forms():
    module = parse_wat("""(module (type $pair (func (param i32) (result i32 i32)))
        (func
          (block (result i64) (i64.const 0)) drop
          (block (type $pair) (param i32) (result i32 i32) (unreachable))
          (block (param i32 i32) (unreachable))))""")
    body = module.funcs[0].body
    block_types = [i.imm for i in body if i.op == opcodes.BLOCK]
    assert block_types[0] is I64
    assert block_types[1] == 0
    assert module.types[block_types[2]] == FuncType((I32, I32), ())


def test_inline_type_mismatch_rejected():
    with pytest.raises(WatSyntaxError, match="inline function type"):
        parse_wat("(type $t (func (param i32))) (func (type $t) (param i64))")


def test_params_locals_and_names():
    module = parse_wat("""(func (param $a i32) (param i64 f32) (local $b f64) (local i32 i32)
        (local.get $a) drop (local.get $b) drop (local.get 5) drop)""")
    func = module.funcs[0]
    assert func.locals == [F64T, I32, I32]
    gets = [i.imm for i in func.body if i.op == opcodes.LOCAL_GET]
    assert gets == [0, 3, 5]


def test_inline_imports_and_exports():
    module = parse_wat("""(module
        (func $imp (import "m" "f") (param i32))
        (memory (export "mem") (import "m" "mem") 1 2)
        (global (import "m" "g") (mut i64))
        (table $t (export "t1") (export "t2") 3 funcref)
        (func (export "run") (call $imp (i32.const 1))))""")
    assert [(i.module, i.name, i.kind) for i in module.imports] == [
        ("m", "f", ExternKind.FUNC),
        ("m", "mem", ExternKind.MEMORY),
        ("m", "g", ExternKind.GLOBAL),
    ]
    assert module.imports[1].desc.limits.max == 2
    assert module.names.func_names == {0: "imp"}
    assert module.imports[2].desc.mutable is True
    exports = [(e.name, e.kind, e.index) for e in module.exports]
    assert exports == [
        ("mem", ExternKind.MEMORY, 0),
        ("t1", ExternKind.TABLE, 0),
        ("t2", ExternKind.TABLE, 0),
        ("run", ExternKind.FUNC, 1),
    ]


def test_import_after_definition_rejected():
    with pytest.raises(WatSyntaxError, match="import after function"):
        parse_wat('(func) (import "" "" (func))')
    with pytest.raises(WatSyntaxError, match="import after memory"):
        parse_wat('(memory 0) (global (import "" "") i32)')


def test_inline_table_elements_and_memory_data():
    module = parse_wat("""(module (func $f) (func $g)
        (table funcref (elem $f $g $f))
        (memory (data "ab" "\\01\\u{263A}")))""")
    assert module.tables[0].type.limits.min == 3
    assert module.tables[0].type.limits.max == 3
    segment = module.elems[0]
    assert segment.mode is SegmentMode.ACTIVE
    assert [ops(e) for e in segment.init] == [
        [("ref.func", f), ("end", None)] for f in (0, 1, 0)
    ]
    assert module.datas[0].init == b"ab\x01\xe2\x98\xba"
    assert module.mems[0].type.limits.min == 1


def test_element_segment_forms():
    module = parse_wat("""(module (table $t 4 funcref) (func $f)
        (elem (i32.const 0) $f)
        (elem (table $t) (offset (i32.const 1)) func $f)
        (elem funcref (ref.func $f) (item ref.null func))
        (elem declare func $f)
        (elem $e externref))""")
    modes = [e.mode for e in module.elems]
    assert modes == [
        SegmentMode.ACTIVE,
        SegmentMode.ACTIVE,
        SegmentMode.PASSIVE,
        SegmentMode.DECLARATIVE,
        SegmentMode.PASSIVE,
    ]
    assert ops(module.elems[1].offset) == [("i32.const", 1), ("end", None)]
    assert ops(module.elems[2].init[1]) == [
        ("ref.null", ValType.FUNCREF),
        ("end", None),
    ]
    assert module.elems[4].elem_type is ValType.EXTERNREF


def test_data_segments_and_bulk_memory():
    module = parse_wat("""(module (memory 1)
        (data $d "xyz") (data (memory 0) (i32.const 8) "a")
        (func (memory.init $d (i32.const 0) (i32.const 0) (i32.const 1)) (data.drop $d)
              (memory.copy (i32.const 0) (i32.const 1) (i32.const 2))))""")
    assert module.datas[0].mode is SegmentMode.PASSIVE
    assert module.datas[1].mode is SegmentMode.ACTIVE
    assert module.data_count == 2
    names = ops(module.funcs[0].body)
    assert ("memory.init", 0) in names
    assert ("data.drop", 0) in names
    assert ("memory.copy", (0, 0)) in names


def test_memarg_and_typed_select():
    module = parse_wat("""(module (memory 1) (func (result i32)
        (i64.load32_u offset=0x10 align=2 (i32.const 0)) drop
        (i32.load (i32.const 0)) drop
        (select (result i32) (i32.const 1) (i32.const 2) (i32.const 0))))""")
    body = ops(module.funcs[0].body)
    assert ("i64.load32_u", (1, 16)) in body
    assert ("i32.load", (2, 0)) in body
    assert ("select_t", (I32,)) in body


def test_float_constants_are_raw_bits():
    module = parse_wat(
        "(func (f32.const -nan:0x200000) (f64.const 0x1p-1074) drop drop)"
    )
    consts = [i.imm for i in module.funcs[0].body if i.op in (0x43, 0x44)]
    assert consts == [0xFFA0_0000, 1]


def test_i32_const_stored_signed():
    module = parse_wat(
        "(func (i32.const 0xffffffff) (i64.const 0x8000000000000000) drop drop)"
    )
    consts = [i.imm for i in module.funcs[0].body if i.op in (0x41, 0x42)]
    assert consts == [-1, -(1 << 63)]


def test_comments_annotations_and_string_ids():
    module = parse_wat("""(module (; block (; nested ;) ;) ;; line
        (@custom "x" (bla) "(")
        (func $"my func" (export "f") (call $"my func")))""")
    assert module.funcs[0].body[0].imm == 0
    assert module.names.func_names[0] == "my func"


@pytest.mark.parametrize(
    "text, message",
    [
        ("(func (i32.const 0x1_0000_0000) drop)", "constant out of range"),
        ("(func (f32.const 1e39) drop)", "constant out of range"),
        ("(func (i32.foo))", "unknown operator"),
        ("(func (f64.const 1x) drop)", "unknown operator"),
        ("(func (i64.const 1__0) drop)", "unknown operator"),
        ("(func (br $nowhere))", "unknown label"),
        ("(func $f) (func $f)", "duplicate func"),
        ("(func (param $x i32) (local $x i32))", "duplicate local"),
        ("(func (local.get $y))", "unknown local"),
        ("(func (call $nope))", "unknown func"),
        ("(func block end $l)", "mismatching label"),
        ("(func end)", "unexpected token"),
        ("(func block)", "unexpected end"),
        ("(func (i32.const 0)", "unclosed"),
        ('(data "\\q")', "illegal escape"),
        ('(data "abc', "unclosed string"),
        ("(func) \x01", "illegal character"),
        ("(func $)", "unexpected token"),
        ("(@ x)", "empty annotation id"),
        ("(@x (y)", "unclosed annotation"),
        ("(start 0) (start 0) (func)", "multiple start sections"),
        ("(memory 1) (func (drop (i32.load align=3 (i32.const 0))))", "alignment"),
    ],
)
def test_malformed_text_rejected(text, message):
    with pytest.raises(WatSyntaxError, match=message) as info:
        parse_wat(text)
    assert info.value.line is not None


def test_line_comment_ends_at_carriage_return():
    module = parse_wat(
        "(func (result i32) (i32.const 1) ;; note\r (return (i32.const 2)))"
    )
    assert ops(module.funcs[0].body)[1:3] == [("i32.const", 2), ("return", None)]


def test_deeply_nested_folded_instructions():
    depth = 20_000
    blocks = parse_wat("(func " + "(block " * depth + ")" * depth + ")")
    assert len(blocks.funcs[0].body) == 2 * depth + 1
    sums = parse_wat(
        "(func (result i32) "
        + "(i32.add (i32.const 1) " * depth
        + "(i32.const 0)"
        + ")" * depth
        + ")"
    )
    body = ops(sums.funcs[0].body)
    assert body[:3] == [("i32.const", 1), ("i32.const", 1), ("i32.const", 1)]
    assert body[depth : depth + 2] == [("i32.const", 0), ("i32.add", None)]
    assert len(body) == 2 * depth + 2


def test_deeply_nested_flat_if_else():
    depth = 20_000
    module = parse_wat("(func (param i32) (result i32) "
                       + "local.get 0 if (result i32) " * depth + "i32.const 7 "
                       + "else i32.const 1 end " * depth + ")")
    body = ops(module.funcs[0].body)
    assert body.count(("else", None)) == depth
    assert body[2 * depth:2 * depth + 2] == [("i32.const", 7), ("else", None)]


@pytest.mark.parametrize("body", [
    "i32.const 0 if else else end",
    "block else end",
    "i32.const 0 if block else end end",
    "(if (i32.const 0) (then else))",
])
def test_misplaced_else_rejected(body):
    with pytest.raises(WatSyntaxError, match='unexpected token "else"'):
        parse_wat(f"(func {body})")


def test_else_after_folded_if_in_then_arm():
    module = parse_wat("(func i32.const 0 if (if (i32.const 1) (then)) else end)")
    assert ops(module.funcs[0].body).count(("else", None)) == 1


def test_error_reports_line_and_column():
    with pytest.raises(WatSyntaxError) as info:
        parse_wat("(module\n  (func\n    (i32.bogus)))")
    assert (info.value.line, info.value.column) == (3, 6)


def test_malformed_utf8_in_bytes_and_names():
    with pytest.raises(WatSyntaxError, match="malformed UTF-8"):
        parse_wat_bytes(b'(module (func (export "\xff")))')
    with pytest.raises(WatSyntaxError, match="malformed UTF-8"):
        parse_wat('(module (func (export "\\ff")))')


def test_later_proposals_raise_unsupported_feature():
    with pytest.raises(UnsupportedFeature) as info:
        parse_wat("(func (drop (v128.const i32x4 0 0 0 0)))")
    assert info.value.feature == "simd"
    with pytest.raises(UnsupportedFeature) as info:
        parse_wat("(memory i64 1)")
    assert info.value.feature == "memory64"


def test_every_opcode_name_parses():
    skip = {"block", "loop", "if", "else", "end", "select_t"}
    for name, info in BY_NAME.items():
        if name in skip:
            continue
        imm = {
            opcodes.Imm.NONE: "",
            opcodes.Imm.LABEL: "0",
            opcodes.Imm.BR_TABLE: "0",
            opcodes.Imm.FUNC: "0",
            opcodes.Imm.CALL_INDIRECT: "(type 0)",
            opcodes.Imm.LOCAL: "0",
            opcodes.Imm.GLOBAL: "0",
            opcodes.Imm.TABLE: "0",
            opcodes.Imm.MEMARG: "",
            opcodes.Imm.MEMORY: "",
            opcodes.Imm.I32: "1",
            opcodes.Imm.I64: "1",
            opcodes.Imm.F32: "1",
            opcodes.Imm.F64: "1",
            opcodes.Imm.REF_TYPE: "func",
            opcodes.Imm.DATA: "0",
            opcodes.Imm.ELEM: "0",
            opcodes.Imm.MEMORY_INIT: "0",
            opcodes.Imm.MEMORY_COPY: "",
            opcodes.Imm.TABLE_INIT: "0",
            opcodes.Imm.TABLE_COPY: "",
        }[info.imm]
        module = parse_wat(f"(func {name} {imm})")
        assert module.funcs[0].body[0].op == info.code, name


# Differential check against wasm-tools -------------------------------------------------

_ROUND_TRIP_MODULES = [
    """(module
      (type $t (func (param i32) (result i32)))
      (import "env" "f" (func $imp (type $t)))
      (table $tab 2 funcref)
      (memory $mem 1 3)
      (global $g (mut i64) (i64.const -5))
      (func $add (export "add") (param $a i32) (param $b i32) (result i32)
        (local $tmp i32)
        (local.set $tmp (i32.add (local.get $a) (local.get $b)))
        (block $done (result i32)
          (loop $again
            (br_if $done (local.get $tmp) (i32.eqz (local.get $tmp)))
            (local.set $tmp (i32.sub (local.get $tmp) (i32.const 1)))
            (br $again))
          (unreachable)))
      (func (param f32 f64) (result f64 f32)
        (f64.const 0x1.8p+1) (f32.const -0.1)
        (call_indirect $tab (type $t) (i32.const 1) (i32.const 0)) drop)
      (elem (table $tab) (i32.const 0) func $add $imp)
      (data (memory $mem) (i32.const 16) "\\00\\01hello")
      (start $imp2)
      (func $imp2))""",
    """(module (memory 1) (func (export "m") (param i32) (result i32)
        (i32.store8 offset=3 (local.get 0) (i32.const 7))
        (memory.fill (i32.const 0) (i32.const 1) (i32.const 2))
        (i64.store align=4 (i32.const 0) (i64.const 0xffff_ffff_ffff))
        (memory.grow (memory.size))
        (if (result i32) (local.get 0) (then (i32.const 1)) (else (i32.const 2)))
        i32.add))""",
]


@pytest.mark.skipif(
    shutil.which("wasm-tools") is None, reason="wasm-tools is not installed"
)
@pytest.mark.parametrize("source", _ROUND_TRIP_MODULES)
def test_matches_wasm_tools_canonical_form(source, tmp_path):
    wat = tmp_path / "m.wat"
    wat.write_text(source)
    binary = tmp_path / "m.wasm"
    subprocess.run(["wasm-tools", "parse", str(wat), "-o", str(binary)], check=True)
    printed = subprocess.run(
        ["wasm-tools", "print", str(binary)], check=True, capture_output=True, text=True
    ).stdout
    mine, canonical = parse_wat(source), parse_wat(printed)
    assert mine.types == canonical.types
    assert mine.imports == canonical.imports
    assert mine.exports == canonical.exports
    assert [ops(f.body) for f in mine.funcs] == [ops(f.body) for f in canonical.funcs]
    assert [f.locals for f in mine.funcs] == [f.locals for f in canonical.funcs]
    assert mine.start == canonical.start
    assert [d.init for d in mine.datas] == [d.init for d in canonical.datas]
    assert [[ops(e) for e in s.init] for s in mine.elems] == [
        [ops(e) for e in s.init] for s in canonical.elems
    ]


# WAST scripts ---------------------------------------------------------------------------


def test_script_commands():
    commands = parse_script("""
      (module $m (func (export "f") (param i32) (result i32) (local.get 0)))
      (module binary "\\00asm" "\\01\\00\\00\\00")
      (module quote "(func)")
      (register "m" $m)
      (assert_return (invoke $m "f" (i32.const -1)) (i32.const 0xffffffff))
      (assert_return (invoke "g") (f32.const nan:canonical) (either (i32.const 1) (i32.const 2)))
      (assert_return (invoke "h" (ref.null extern) (ref.extern 7)) (ref.extern 7) (ref.func))
      (assert_trap (invoke "t") "unreachable")
      (assert_exhaustion (invoke "r") "call stack exhausted")
      (assert_malformed (module quote "(func") "unclosed")
      (assert_invalid (module (func (result i32))) "type mismatch")
      (assert_unlinkable (module (import "x" "y" (func))) "unknown import")
      (assert_uninstantiable (module (func unreachable) (start 0)) "unreachable")
      (assert_return (invoke "v" (v128.const i32x4 0 0 0 0)))
      (get "glob")
      (module definition $d (func))
    """)
    kinds = [c.kind for c in commands]
    assert kinds == [
        "module",
        "module",
        "module",
        "register",
        "assert_return",
        "assert_return",
        "assert_return",
        "assert_trap",
        "assert_exhaustion",
        "assert_malformed",
        "assert_invalid",
        "assert_unlinkable",
        "assert_uninstantiable",
        "skip",
        "action",
        "module",
    ]
    assert commands[0].module.name == "$m"
    assert commands[1].module.data == b"\x00asm\x01\x00\x00\x00"
    assert commands[2].module.parse_text().funcs
    assert commands[3].register_as == "m"
    assert commands[4].action.args[0].bits == 0xFFFF_FFFF
    assert commands[5].expected[0].kind == "nan:canonical"
    assert [e.bits for e in commands[5].expected[1].alternatives] == [1, 2]
    assert commands[6].action.args[1].bits == 7
    assert commands[6].expected[1].kind == "ref.func"
    assert commands[13].reason == "unsupported feature: simd"
    assert commands[14].line == 16
    assert commands[15].module.definition
    assert commands[15].module.name == "$d"


def test_script_text_module_parses_lazily():
    commands = parse_script(
        '(assert_malformed (module (func (i32.const 1 2))) "unexpected")'
    )
    with pytest.raises(WatSyntaxError):
        commands[0].module.parse_text()


def structure(module):
    """Return the parts of a module that the text and binary forms must agree on."""

    def instrs(body):
        return [(i.op, i.imm) for i in body]

    return {
        "types": module.types,
        "imports": module.imports,
        "funcs": [(f.type_index, f.locals, instrs(f.body)) for f in module.funcs],
        "tables": module.tables,
        "mems": module.mems,
        "globals": [(g.type, instrs(g.init)) for g in module.globals],
        "exports": module.exports,
        "start": module.start,
        "elems": [
            (
                e.elem_type,
                [instrs(x) for x in e.init],
                e.mode,
                e.table_index,
                instrs(e.offset or []),
            )
            for e in module.elems
        ],
        "datas": [
            (d.init, d.mode, d.memory_index, instrs(d.offset or []))
            for d in module.datas
        ],
        "data_count": module.data_count,
    }


@pytest.mark.skipif(
    shutil.which("wasm-tools") is None, reason="wasm-tools is not installed"
)
@pytest.mark.parametrize(
    "source",
    _ROUND_TRIP_MODULES
    + [
        """(module (memory 1) (data $d "abc")
        (table 3 funcref) (elem $e funcref (ref.func 0) (ref.null func))
        (func (memory.init $d (i32.const 0) (i32.const 0) (i32.const 1)) (data.drop $d)
              (table.init $e (i32.const 0) (i32.const 0) (i32.const 1)) (elem.drop $e)))""",
    ],
)
def test_matches_decoded_wasm_tools_binary(source, tmp_path):
    from wasmtee.binary import decode_module

    wat = tmp_path / "m.wat"
    wat.write_text(source)
    binary = tmp_path / "m.wasm"
    subprocess.run(["wasm-tools", "parse", str(wat), "-o", str(binary)], check=True)
    decoded = decode_module(binary.read_bytes())
    mine = structure(parse_wat(source))
    reference = structure(decoded)
    for key in reference:
        assert mine[key] == reference[key], key


# Robustness ------------------------------------------------------------------------------

_FUZZ_SEED = """(module
  (type $t (func (param i32) (result i32)))
  (import "m" "f" (func $imp (param i32)))
  (memory 1) (table 2 funcref)
  (global $g (mut f64) (f64.const -0x1.8p3))
  (func $f (export "f") (type $t) (local i64)
    (block $b (result i32)
      (br_if $b (i32.const 1) (local.get 0))
      (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 2)) (else (i32.const 3)))
      (i32.load offset=4 align=2))
    (call_indirect (type $t) (i32.const 0)))
  (elem (i32.const 0) $f)
  (data (i32.const 8) "\\01\\u{41}")
  (start $g2) (func $g2))"""

_FUZZ_TOKENS = [
    "(",
    ")",
    "$f",
    "$nope",
    "0",
    "-1",
    "0x",
    "nan:0x1",
    '"s"',
    "block",
    "end",
    "else",
    "then",
    "(then",
    "(param",
    "(result",
    "i32",
    "funcref",
    "offset=1",
    "align=3",
    "(type",
    "(elem",
    "(data",
    "(@a",
    ";;",
    "(;",
    ";)",
    "\\",
    "\x00",
]


@given(
    st.lists(
        st.tuples(
            st.integers(0, 10_000), st.integers(0, len(_FUZZ_TOKENS) - 1), st.booleans()
        ),
        min_size=1,
        max_size=4,
    )
)
@settings(max_examples=300, deadline=None)
def test_mutated_text_raises_only_project_errors(edits):
    text = _FUZZ_SEED
    for position, token, replace in edits:
        at = position % (len(text) + 1)
        end = text.find(" ", at)
        end = len(text) if end < 0 or not replace else end
        text = text[:at] + " " + _FUZZ_TOKENS[token] + " " + text[end:]
    try:
        parse_wat(text)
    except WasmteeError:
        pass
