"""Tests for the binary encoder, mostly as round trips through the decoder."""

from __future__ import annotations

import glob
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wasmtee.binary import decode_module
from wasmtee.binary.encode import encode_module, encode_s, encode_u
from wasmtee.binary.reader import read_s64, read_u64
from wasmtee.errors import InternalError, WasmteeError
from wasmtee.model import (
    ElemSegment,
    Function,
    FuncType,
    Instr,
    Module,
    NameSection,
    SegmentMode,
    ValType,
)
from wasmtee.opcodes import BY_NAME

EXT_WASTJSON = Path("/work/ext/wastjson")
needs_wasm_tools = pytest.mark.skipif(
    shutil.which("wasm-tools") is None, reason="the wasm-tools CLI is not installed"
)


def without_offsets(module: Module) -> Module:
    """Replace instruction lists by (op, imm) pairs and drop byte offsets, in place."""

    def strip(expr):
        return None if expr is None else [(instr.op, instr.imm) for instr in expr]

    for function in module.funcs:
        function.body = strip(function.body)
        function.offset = -1
    for global_ in module.globals:
        global_.init = strip(global_.init)
    for table in module.tables:
        table.init = strip(table.init)
    for segment in module.elems:
        segment.init = [strip(expr) for expr in segment.init]
        segment.offset = strip(segment.offset)
    for segment in module.datas:
        segment.offset = strip(segment.offset)
    return module


def assert_round_trip(data: bytes) -> bytes:
    encoded = encode_module(decode_module(data))
    assert without_offsets(decode_module(encoded)) == without_offsets(decode_module(data))
    return encoded


@given(st.integers(0, 2**64 - 1))
def test_unsigned_leb_round_trip(value):
    encoded = encode_u(value)
    assert read_u64(encoded, 0) == (value, len(encoded))


@given(st.integers(-(2**63), 2**63 - 1))
def test_signed_leb_round_trip(value):
    encoded = encode_s(value)
    assert read_s64(encoded, 0) == (value, len(encoded))


@pytest.mark.parametrize("value, encoded", [
    (0, b"\x00"), (63, b"\x3f"), (64, b"\xc0\x00"), (-1, b"\x7f"), (-64, b"\x40"),
    (-65, b"\xbf\x7f"), (127, b"\xff\x00"),
])
def test_signed_leb_minimal(value, encoded):
    assert encode_s(value) == encoded


@needs_wasm_tools
def test_wasm_tools_output_reencoded_exactly():
    text = """(module
      (type (func (param i32 i64) (result f32)))
      (import "env" "f" (func (type 0)))
      (import "env" "m" (memory 1 2))
      (table 4 funcref)
      (global (mut i32) (i32.const -5))
      (func (type 0) (local f64 f64 i32)
        block (result f32)
          local.get 0 if (result f32) f32.const nan:0x1 else f32.const -0 end
        end)
      (export "g" (global 0))
      (elem (i32.const 1) func 0 1)
      (elem funcref (ref.null func))
      (data (i32.const 0) "abc")
      (data "passive"))"""
    binary = subprocess.run(["wasm-tools", "parse", "-"], input=text.encode(),
                            capture_output=True, check=True).stdout
    assert encode_module(decode_module(binary)) == binary


def test_names_synthesized_without_custom_section():
    body = [Instr(BY_NAME["end"].code)]
    module = Module(types=[FuncType((ValType.I32,), ())],
                    funcs=[Function(0, [ValType.I64], body)],
                    names=NameSection("m", {0: "f"}, {0: {0: "p", 1: "x"}}))
    decoded = decode_module(encode_module(module))
    assert decoded.names == module.names
    assert decoded.funcs[0].locals == [ValType.I64]


def test_element_encodings_chosen():
    ref_func = [Instr(BY_NAME["ref.func"].code, 0), Instr(BY_NAME["end"].code)]
    ref_null = [Instr(BY_NAME["ref.null"].code, ValType.EXTERNREF), Instr(BY_NAME["end"].code)]
    offset = [Instr(BY_NAME["i32.const"].code, 0), Instr(BY_NAME["end"].code)]
    segments = [
        ElemSegment(ValType.FUNCREF, [ref_func], SegmentMode.ACTIVE, 0, offset),
        ElemSegment(ValType.FUNCREF, [ref_func], SegmentMode.ACTIVE, 1, offset),
        ElemSegment(ValType.EXTERNREF, [ref_null], SegmentMode.ACTIVE, 0, offset),
        ElemSegment(ValType.EXTERNREF, [ref_null], SegmentMode.PASSIVE),
        ElemSegment(ValType.FUNCREF, [ref_func], SegmentMode.DECLARATIVE),
    ]
    decoded = decode_module(encode_module(Module(elems=segments)))
    assert without_offsets(decoded).elems == without_offsets(Module(elems=segments)).elems


def test_unknown_opcode_rejected():
    module = Module(types=[FuncType((), ())],
                    funcs=[Function(0, [], [Instr(0xFD0C, None), Instr(0x0B)])])
    with pytest.raises(InternalError):
        encode_module(module)


def test_spec_suite_modules_round_trip():
    if not EXT_WASTJSON.is_dir():
        pytest.skip("the fetched spec test suite is absent (/work/ext)")
    checked = 0
    for path in sorted(glob.glob(str(EXT_WASTJSON / "*" / "*.wasm"))):
        data = Path(path).read_bytes()
        try:
            decode_module(data)
        except WasmteeError:
            continue
        assert_round_trip(data)
        checked += 1
    assert checked > 2000


SMITH_FLAGS = [
    "--exceptions-enabled", "false", "--gc-enabled", "false",
    "--compact-imports-enabled", "false", "--custom-descriptors-enabled", "false",
    "--custom-page-sizes-enabled", "false", "--memory64-enabled", "false",
    "--relaxed-simd-enabled", "false", "--shared-everything-threads-enabled", "false",
    "--simd-enabled", "false", "--tail-call-enabled", "false",
    "--threads-enabled", "false", "--wide-arithmetic-enabled", "false",
    "--max-memories", "1",
]


@needs_wasm_tools
@settings(max_examples=40, deadline=None)
@given(st.binary(min_size=64, max_size=4000))
def test_smith_modules_round_trip(seed):
    result = subprocess.run(["wasm-tools", "smith", *SMITH_FLAGS], input=seed,
                            capture_output=True, check=False)
    if result.returncode != 0:
        return  # smith could not build a module from this seed
    encoded = assert_round_trip(result.stdout)
    validated = subprocess.run(["wasm-tools", "validate", "--features", "wasm2,extended-const",
                                "-"], input=encoded, capture_output=True, check=False)
    assert validated.returncode == 0, validated.stderr.decode()


def test_text_modules_encode_like_wasm_tools():
    """Text modules of the 2.0 spec files, parsed by wasmtee and encoded, match
    the binaries that `wasm-tools json-from-wast` wrote for them.

    This checks the encoder against an independent one and the text parser and
    decoder against each other. Names and custom sections are not compared.
    """
    listing = EXT_WASTJSON.parent / "wasm2-files.txt"
    testsuite = EXT_WASTJSON.parent / "testsuite"
    if not listing.exists() or not testsuite.is_dir() or not EXT_WASTJSON.is_dir():
        pytest.skip("the fetched spec test suite or its JSON conversion is absent (/work/ext)")
    from wasmtee.text.wast import parse_script

    compared = 0
    mismatches = []
    for stem in (line.strip()[:-5] for line in listing.read_text().split()):
        commands = parse_script((testsuite / f"{stem}.wast").read_text())
        script = EXT_WASTJSON / stem / "x.json"
        by_line = {c["line"]: c for c in json.loads(script.read_text())["commands"]}
        for command in commands:
            script_module = command.module
            if script_module is None or script_module.kind != "text":
                continue
            reference = by_line.get(script_module.line, {}).get("filename", "")
            if not reference.endswith(".wasm"):
                continue
            try:
                expected = decode_module((script.parent / reference).read_bytes())
            except WasmteeError:
                continue  # a later proposal
            parsed = script_module.parse_text()
            actual = decode_module(encode_module(parsed))
            for module in (actual, expected):
                without_offsets(module)
                module.names = NameSection()
                module.customs = []
            if actual != expected:
                mismatches.append(f"{stem}.wast:{script_module.line}")
            compared += 1
    assert mismatches == []
    assert compared > 2000
