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
    Import,
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


# Numeric instructions with a fixed signature, by their parameter types.
BY_PARAMS: dict[tuple[ValType, ...], list[op.OpInfo]] = {}
for _info in op.OPS.values():
    if _info.params is not None and _info.imm is op.Imm.NONE:
        BY_PARAMS.setdefault(_info.params, []).append(_info)
LOCAL_TYPES = list(TYPES[0].params) + LOCALS
GLOBAL_TYPES = [I32, F64]
NOISE = sorted((info for info in op.OPS.values()
                if info.code not in op.BLOCK_STARTS and info.code not in (op.ELSE, op.END)),
               key=lambda info: info.code)
CONSTANTS = {I32: op.I32_CONST, I64: op.I64_CONST, F32: op.F32_CONST, F64: op.F64_CONST}


class _BodyBuilder:
    """Build a function body that mostly type-checks, with occasional random instructions.

    `frames` mirrors the validator's control stack: per open block its result
    types, the operand stack height at entry and whether it is a loop. After a branch the builder
    closes the block at once, so it never has to model the polymorphic stack.
    """

    def __init__(self, draw) -> None:
        self.draw = draw
        self.body: list[Instr] = []
        self.stack: list[ValType] = []
        self.frames: list[tuple[tuple[ValType, ...], int, bool]] = [(TYPES[0].results, 0, False)]

    def emit(self, name: str, imm=None, pops: int = 0, pushes: tuple[ValType, ...] = ()) -> None:
        self.body.append(Instr(op.BY_NAME[name].code, imm))
        del self.stack[len(self.stack) - pops:]
        self.stack.extend(pushes)

    def push_value(self, val_type: ValType) -> None:
        if val_type in CONSTANTS:
            self.body.append(Instr(CONSTANTS[val_type], 1))
        else:
            self.body.append(Instr(op.REF_NULL, val_type))
        self.stack.append(val_type)

    def close(self) -> None:
        """Make the stack match the innermost block's results, then end it."""
        results, height, _ = self.frames.pop()
        while len(self.stack) > height:
            self.emit("drop", pops=1)
        for val_type in results:
            self.push_value(val_type)
        self.body.append(Instr(op.END))
        del self.stack[height:]
        self.stack.extend(results)

    def step(self) -> None:
        draw = self.draw
        available = min(2, len(self.stack) - self.frames[-1][1])
        top = tuple(self.stack[len(self.stack) - available:]) if available > 0 else ()
        # Noise (choice 0) comes with probability 1/48 per step.
        choice = 1 + draw(st.integers(0, 44)) % 15 if draw(st.integers(0, 47)) else 0
        if choice == 0:
            # Noise: any instruction except those that open or close blocks.
            info = draw(st.sampled_from(NOISE))
            self.body.append(Instr(info.code, draw(_immediate(info))))
        elif choice <= 3:
            self.push_value(draw(st.sampled_from([I32, I64, F32, F64, FUNCREF, EXTERNREF])))
        elif choice == 4:
            index = draw(st.integers(0, len(LOCAL_TYPES) - 1))
            self.emit("local.get", index, pushes=(LOCAL_TYPES[index],))
        elif choice == 5 and self.stack and len(self.stack) > self.frames[-1][1]:
            kind = draw(st.sampled_from(["drop", "local.set", "local.tee", "ref.is_null"]))
            matching = [i for i, t in enumerate(LOCAL_TYPES) if t == self.stack[-1]]
            if kind == "drop" or (kind == "ref.is_null" and not self.stack[-1].is_ref):
                self.emit("drop", pops=1)
            elif kind == "ref.is_null":
                self.emit("ref.is_null", pops=1, pushes=(I32,))
            elif matching:
                index = draw(st.sampled_from(matching))
                pushes = (LOCAL_TYPES[index],) if kind == "local.tee" else ()
                self.emit(kind, index, pops=1, pushes=pushes)
        elif choice <= 8:
            for params in (top, top[-1:]):
                if params in BY_PARAMS:
                    info = draw(st.sampled_from(BY_PARAMS[params]))
                    self.emit(info.name, pops=len(params), pushes=info.results)  # type: ignore[arg-type]
                    break
        elif choice == 9 and len(self.frames) < 4:
            kind = draw(st.sampled_from(["block", "loop", "if"]))
            # An if without else has type [] -> [] here, so it has no result.
            result = None if kind == "if" else draw(st.sampled_from([None, I32, F64, EXTERNREF]))
            if kind == "if":
                self.emit("i32.const", 0)  # the condition, consumed by the if
            self.body.append(Instr(op.BY_NAME[kind].code, result))
            self.frames.append(((result,) if result else (), len(self.stack), kind == "loop"))
        elif choice == 10 and len(self.frames) > 1:
            self.close()
        elif choice == 11:
            depth = draw(st.integers(0, len(self.frames) - 1))
            results, _, is_loop = self.frames[-1 - depth]
            for val_type in () if is_loop else results:
                self.push_value(val_type)
            kind = draw(st.sampled_from(["br", "br_if", "br_table"]))
            if kind == "br":
                self.emit("br", depth)
            elif kind == "br_if":
                self.emit("i32.const", 1, pushes=(I32,))
                self.emit("br_if", depth, pops=1)
                return
            else:
                self.emit("i32.const", 0, pushes=(I32,))
                self.emit("br_table", ((depth,), depth), pops=1)
            if len(self.frames) > 1:
                del self.stack[self.frames[-1][1]:]
                self.close()
        elif choice == 12:
            self.emit("global.get", draw(st.integers(0, 1)), pushes=(GLOBAL_TYPES[0],))
            self.stack[-1] = GLOBAL_TYPES[self.body[-1].imm]
        elif choice == 13:
            three = tuple(self.stack[-3:])
            if len(self.stack) - 3 >= self.frames[-1][1] and len(three) == 3 \
                    and three[0] == three[1] and three[2] == I32:
                self.emit("select", None, pops=3, pushes=(three[0],))
        elif choice == 14 and top == (I32, I64):
            self.emit("call", 1, pops=2, pushes=(I64, I32))
        elif choice == 15:
            # Only function 1 is declared (by its export).
            declared = draw(st.integers(0, 19)) > 0
            self.emit("ref.func", 1 if declared else draw(st.sampled_from([0, 2])),
                      pushes=(FUNCREF,))

    def finish(self) -> list[Instr]:
        while len(self.frames) > 1:
            self.close()
        self.close()
        return self.body


@st.composite
def bodies(draw) -> list[Instr]:
    builder = _BodyBuilder(draw)
    for _ in range(draw(st.integers(0, 30))):
        builder.step()
    return builder.finish()


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
    "--compact-imports-enabled", "false",
]


@pytest.mark.skipif(WASM_TOOLS is None, reason="wasm-tools CLI not found")
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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
    except WasmteeError as error:  # any other exception fails the test
        ours = error
    if check.returncode == 0:
        assert ours is None, str(ours)


# -- generated module-level structure, compared with wasmtime -------------------------

CONST_TYPES = [I32, I64, F64, FUNCREF, EXTERNREF]


@st.composite
def const_exprs(draw, global_count: int, func_count: int) -> list[Instr]:
    """A constant expression that is usually, but not always, valid."""
    kind = draw(st.sampled_from(["const", "const", "global", "ref", "arith", "bad"]))
    if kind == "const":
        val_type = draw(st.sampled_from([I32, I64, F64]))
        expr = [Instr(CONSTANTS[val_type], draw(st.integers(0, 9)))]
    elif kind == "global":
        expr = [Instr(op.GLOBAL_GET, draw(st.integers(0, global_count + 1)))]
    elif kind == "ref":
        expr = [draw(st.sampled_from([
            Instr(op.REF_NULL, FUNCREF), Instr(op.REF_NULL, EXTERNREF),
            Instr(op.REF_FUNC, draw(st.integers(0, func_count))),
        ]))]
    elif kind == "arith":
        name = draw(st.sampled_from(["i32.add", "i32.mul", "i64.sub", "i64.add"]))
        left = draw(st.sampled_from([I32, I64]))
        expr = [Instr(CONSTANTS[left], 1), Instr(CONSTANTS[I32 if name[:3] == "i32" else I64], 2),
                Instr(op.BY_NAME[name].code)]
    else:
        expr = [Instr(op.I32_CONST, 1), Instr(op.BY_NAME["i32.clz"].code)]
    return expr + [Instr(op.END)]


limits = st.builds(Limits, st.integers(0, 3), st.none() | st.sampled_from([0, 3, 4, 5]))


@st.composite
def modules(draw) -> Module:
    func_count = draw(st.integers(0, 2))
    imports = []
    for index in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(list(ExternKind)))
        if kind is ExternKind.FUNC:
            desc = draw(st.integers(0, 2))
        elif kind is ExternKind.TABLE:
            desc = TableType(draw(st.sampled_from([FUNCREF, EXTERNREF])), draw(limits))
        elif kind is ExternKind.MEMORY:
            desc = MemoryType(draw(limits))
        else:
            desc = GlobalType(draw(st.sampled_from(CONST_TYPES)), draw(st.booleans()))
        imports.append(Import("m", str(index), kind, desc))

    total_funcs = func_count + sum(imp.kind is ExternKind.FUNC for imp in imports)
    global_count = draw(st.integers(0, 3))
    imported_globals = sum(imp.kind is ExternKind.GLOBAL for imp in imports)
    globals_ = [
        Global(GlobalType(draw(st.sampled_from(CONST_TYPES)), draw(st.booleans())),
               draw(const_exprs(imported_globals + index, total_funcs)))
        for index in range(global_count)
    ]

    tables = [Table(TableType(draw(st.sampled_from([FUNCREF, EXTERNREF])), draw(limits)))
              for _ in range(draw(st.integers(0, 2)))]
    memory_limits = st.builds(Limits, st.sampled_from([0, 1, 1, 65536, 65537]),
                              st.none() | st.sampled_from([0, 2, 2, 65536, 65537]))
    mems = [Memory(MemoryType(draw(memory_limits))) for _ in range(draw(st.integers(0, 1)))]
    all_globals = global_count + imported_globals

    elems = []
    for _ in range(draw(st.integers(0, 2))):
        mode = draw(st.sampled_from(list(SegmentMode)))
        elem_type = draw(st.sampled_from([FUNCREF, EXTERNREF]))
        init = draw(st.lists(const_exprs(all_globals, total_funcs), max_size=2))
        offset = draw(const_exprs(all_globals, total_funcs)) if mode is SegmentMode.ACTIVE else None
        elems.append(ElemSegment(elem_type, init, mode, draw(st.integers(0, 2)), offset))

    datas = []
    for _ in range(draw(st.integers(0, 2))):
        active = draw(st.booleans())
        offset = draw(const_exprs(all_globals, total_funcs)) if active else None
        mode = SegmentMode.ACTIVE if active else SegmentMode.PASSIVE
        datas.append(DataSegment(b"x", mode, 0, offset))

    exports = [
        Export(draw(st.sampled_from(["a", "b", "c"])), draw(st.sampled_from(list(ExternKind))),
               draw(st.integers(0, 2)))
        for _ in range(draw(st.integers(0, 3)))
    ]

    body = [Instr(op.END)]
    if draw(st.booleans()) and total_funcs:
        body = [Instr(op.REF_FUNC, draw(st.integers(0, total_funcs - 1))), Instr(op.DROP), *body]
    return Module(
        types=list(TYPES), imports=imports,
        funcs=[Function(2, [], list(body)) for _ in range(func_count)],
        tables=tables, mems=mems, globals=globals_, exports=exports,
        start=draw(st.none() | st.integers(0, 3)), elems=elems, datas=datas,
        data_count=len(datas),
    )


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(modules())
def test_generated_modules_match_wasmtime(module):
    try:
        validate_module(module)
        ours = None
    except ValidationError as error:
        ours = error
    expected = _wasmtime_accepts(encode_module(module))
    if isinstance(ours, UnsupportedFeature):
        assert ours.feature == "multi-memory"
        return  # wasmtime implements multi-memory
    assert (ours is None) == expected, f"wasmtee: {ours}, wasmtime accepts: {expected}"
