"""Fuzz tests of the validator with hypothesis.

Three sources of modules:
- byte mutations of valid modules, through `decode_module`: only WasmteeError
  may come out;
- generated function bodies over a fixed module context, encoded with
  `encode_module`: the validator must accept exactly the bodies that wasmtime
  (the PyPI package, used here as a reference only) accepts;
- `wasm-tools smith` modules restricted to WebAssembly 2.0 features: every
  module that `wasm-tools validate --features wasm2` accepts must validate.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wasmtee import opcodes as op
from wasmtee.binary import decode_module, encode_module
from wasmtee.errors import UnsupportedFeature, ValidationError, WasmteeError
from wasmtee.model import (
    DataSegment,
    ElemSegment,
    Export,
    ExternKind,
    Function,
    FuncType,
    Global,
    GlobalType,
    Instr,
    Limits,
    Memory,
    MemoryType,
    Module,
    SegmentMode,
    Table,
    TableType,
    ValType,
)
from wasmtee.valid import validate_module

wasmtime = pytest.importorskip("wasmtime")

I32, I64, F32, F64 = ValType.I32, ValType.I64, ValType.F32, ValType.F64
FUNCREF, EXTERNREF = ValType.FUNCREF, ValType.EXTERNREF
WASM_TOOLS = shutil.which("wasm-tools")

SEED_WAT = """(module
  (type $pair (func (param i32 i64) (result i64 i32)))
  (import "env" "f" (func $imported (param i32) (result i32)))
  (import "env" "g" (global $g i32))
  (table 2 funcref)
  (memory 1 2)
  (global $m (mut i64) (i64.const 5))
  (global i32 (i32.add (global.get $g) (i32.const 1)))
  (elem (i32.const 0) func $imported $body)
  (elem declare func $body)
  (data (i32.const 8) "hello")
  (data "passive")
  (func $body (export "body") (param i32) (result i32) (local f64 externref)
    (block $out (result i32)
      (loop $top
        (br_if $out (local.get 0) (i32.eqz (local.get 0)))
        (local.set 0 (i32.sub (local.get 0) (i32.const 1)))
        (br_table $top $top (i32.const 0)))
      (i32.const 0))
    (drop)
    (drop (ref.func $body))
    (if (result i32) (local.get 0) (then (i32.load offset=4 (i32.const 0))) (else (i32.const 7)))
    (drop)
    (i32.const 2) (i64.const 1)
    (block (type $pair) (param i32 i64) (result i64 i32) (drop) (drop) (i64.const 3) (i32.const 4))
    (drop) (drop)
    (memory.init 1 (i32.const 0) (i32.const 0) (i32.const 1))
    (select (i32.const 1) (call_indirect (param i32) (result i32) (i32.const 3) (i32.const 0))
            (local.get 0))
    (i32.add (global.get $g)))
  (start 2)
  (func))
"""


def _seed() -> bytes | None:
    if WASM_TOOLS is None:
        return None
    result = subprocess.run([WASM_TOOLS, "parse", "-", "-o", "/dev/stdout"],
                            input=SEED_WAT.encode(), capture_output=True, check=False)
    return result.stdout if result.returncode == 0 else None


SEED = _seed()


def test_seed_module_validates():
    if SEED is None:
        pytest.skip("wasm-tools CLI not found")
    info = validate_module(decode_module(SEED))
    assert len(info.functions) == 2


# -- byte mutations ------------------------------------------------------------------

mutation = st.tuples(
    st.sampled_from(["replace", "insert", "delete"]),
    st.integers(min_value=8, max_value=10_000),
    st.integers(min_value=0, max_value=255),
)


@pytest.mark.skipif(SEED is None, reason="wasm-tools CLI not found")
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutation, min_size=1, max_size=4))
def test_mutated_module_raises_only_wasmtee_errors(mutations):
    data = bytearray(SEED)  # type: ignore[arg-type]
    for kind, position, value in mutations:
        position %= len(data)
        if kind == "replace":
            data[position] = value
        elif kind == "insert":
            data.insert(position, value)
        elif len(data) > 9:
            del data[position]
    try:
        validate_module(decode_module(bytes(data)))
    except WasmteeError:
        pass


# -- generated bodies, compared with wasmtime ----------------------------------------

# The module context every generated body runs in: function 0 is the body,
# function 1 has type [i32 i64] -> [i64 i32], function 2 is undeclared.
TYPES = [
    FuncType((I32, F64), (I32,)),
    FuncType((I32, I64), (I64, I32)),
    FuncType((), ()),
]
LOCALS = [I64, FUNCREF, F32]
LOCAL_COUNT = len(TYPES[0].params) + len(LOCALS)


def _context_module(body: list[Instr]) -> Module:
    return Module(
        types=list(TYPES),
        funcs=[
            Function(0, list(LOCALS), body),
            Function(1, [], [Instr(op.UNREACHABLE), Instr(op.END)]),
            Function(2, [], [Instr(op.END)]),
        ],
        tables=[Table(TableType(FUNCREF, Limits(1))), Table(TableType(EXTERNREF, Limits(1)))],
        mems=[Memory(MemoryType(Limits(1)))],
        globals=[
            Global(GlobalType(I32, False), [Instr(op.I32_CONST, 1), Instr(op.END)]),
            Global(GlobalType(F64, True), [Instr(op.F64_CONST, 0), Instr(op.END)]),
        ],
        exports=[Export("one", ExternKind.FUNC, 1)],
        elems=[ElemSegment(FUNCREF, [[Instr(op.REF_NULL, FUNCREF), Instr(op.END)]],
                           SegmentMode.PASSIVE)],
        datas=[DataSegment(b"abc", SegmentMode.PASSIVE)],
        data_count=1,
    )


small_index = st.integers(min_value=0, max_value=6)
block_type = st.sampled_from([None, I32, I64, F64, FUNCREF, 0, 1, 2])
value_type = st.sampled_from([I32, I64, F32, F64, FUNCREF, EXTERNREF])


def _immediate(info: op.OpInfo) -> st.SearchStrategy:
    imm = info.imm
    if imm is op.Imm.NONE:
        return st.none()
    if imm is op.Imm.BLOCK_TYPE:
        return block_type
    if imm is op.Imm.BR_TABLE:
        return st.tuples(st.lists(st.integers(0, 3), max_size=3).map(tuple), st.integers(0, 3))
    if imm is op.Imm.LABEL:
        return st.integers(0, 3)
    if imm is op.Imm.CALL_INDIRECT:
        return st.tuples(st.integers(0, 3), st.integers(0, 2))
    if imm is op.Imm.MEMARG:
        return st.tuples(st.integers(0, 4), st.integers(0, 100))
    if imm in (op.Imm.I32, op.Imm.I64):
        return st.integers(-5, 5)
    if imm in (op.Imm.F32, op.Imm.F64):
        return st.integers(0, 1 << 20)
    if imm is op.Imm.REF_TYPE:
        return st.sampled_from([FUNCREF, EXTERNREF])
    if imm is op.Imm.SELECT_TYPES:
        return st.lists(value_type, min_size=1, max_size=1).map(tuple)
    if imm in (op.Imm.MEMORY_COPY, op.Imm.TABLE_INIT, op.Imm.TABLE_COPY):
        return st.tuples(st.integers(0, 2), st.integers(0, 2))
    if imm is op.Imm.MEMORY:
        return st.just(0)
    return small_index


# Common instructions are listed several times so bodies often type-check.
COMMON = ["i32.const", "i64.const", "local.get", "local.get", "i32.add", "i64.add", "drop",
          "select", "block", "loop", "if", "else", "end", "br", "br_if", "i32.eqz", "call"]
NAMES = sorted(name for name in op.BY_NAME if name not in ("end", "else")) + COMMON * 4


@st.composite
def bodies(draw) -> list[Instr]:
    body: list[Instr] = []
    open_blocks: list[bool] = []  # one entry per open block: True once it has an else
    for name in draw(st.lists(st.sampled_from(NAMES), max_size=24)):
        info = op.BY_NAME[name]
        if name == "end":
            if not open_blocks:
                continue
            open_blocks.pop()
        elif name == "else":
            if not open_blocks or open_blocks[-1]:
                continue
            open_blocks[-1] = True
        elif info.code in op.BLOCK_STARTS:
            open_blocks.append(info.code != op.IF)
        body.append(Instr(info.code, draw(_immediate(info))))
    body.extend(Instr(op.END) for _ in range(len(open_blocks) + 1))
    return body


ENGINE = wasmtime.Engine()


def _wasmtime_accepts(data: bytes) -> bool:
    try:
        wasmtime.Module.validate(ENGINE, data)
    except wasmtime.WasmtimeError:
        return False
    return True


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies())
def test_generated_bodies_match_wasmtime(body):
    module = _context_module(body)
    try:
        validate_module(module)
        ours = None
    except ValidationError as error:
        assert not isinstance(error, UnsupportedFeature), str(error)
        ours = error
    expected = _wasmtime_accepts(encode_module(module))
    assert (ours is None) == expected, f"wasmtee: {ours}, wasmtime accepts: {expected}"


# -- wasm-tools smith ------------------------------------------------------------------

SMITH_FLAGS = [
    "--simd-enabled", "false", "--relaxed-simd-enabled", "false",
    "--exceptions-enabled", "false", "--gc-enabled", "false",
    "--tail-call-enabled", "false", "--threads-enabled", "false",
    "--memory64-enabled", "false", "--custom-page-sizes-enabled", "false",
    "--max-memories", "1", "--wide-arithmetic-enabled", "false",
]


@pytest.mark.skipif(WASM_TOOLS is None, reason="wasm-tools CLI not found")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=64, max_size=2048))
def test_smith_modules_validate(seed):
    smith = subprocess.run([WASM_TOOLS, "smith", *SMITH_FLAGS], input=seed,
                           capture_output=True, check=False)
    if smith.returncode != 0:
        return  # smith rejects some flag combinations for some seeds
    data = smith.stdout
    check = subprocess.run([WASM_TOOLS, "validate", "--features", "wasm2", "-"], input=data,
                           capture_output=True, check=False)
    try:
        validate_module(decode_module(data))
        ours = None
    except WasmteeError as error:
        ours = error
    if check.returncode == 0:
        assert ours is None, str(ours)
    else:
        assert ours is None or isinstance(ours, WasmteeError)
