"""The opcode table: every instruction of WebAssembly 2.0, registered once.

The decoder, the validator, the text parser and both execution tiers read this
table instead of keeping their own lists. Each entry records the opcode, the
text mnemonic, the kind of immediate, and for instructions with a fixed stack
signature the operand and result types. Opcodes for prefixed instructions are
`prefix << 8 | subopcode` (see `wasmtee.model`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from wasmtee.model import ValType

I32, I64, F32, F64 = ValType.I32, ValType.I64, ValType.F32, ValType.F64


class Imm(enum.Enum):
    """The kind of immediate an instruction carries."""

    NONE = "none"
    BLOCK_TYPE = "block_type"
    LABEL = "label"
    BR_TABLE = "br_table"
    FUNC = "func"
    CALL_INDIRECT = "call_indirect"
    LOCAL = "local"
    GLOBAL = "global"
    TABLE = "table"
    MEMARG = "memarg"
    MEMORY = "memory"
    I32 = "i32"
    I64 = "i64"
    F32 = "f32"
    F64 = "f64"
    REF_TYPE = "ref_type"
    SELECT_TYPES = "select_types"
    DATA = "data"
    ELEM = "elem"
    MEMORY_INIT = "memory_init"
    MEMORY_COPY = "memory_copy"
    TABLE_INIT = "table_init"
    TABLE_COPY = "table_copy"


class Family(enum.Enum):
    """Groups of instructions that the tiers handle with one rule each."""

    CONTROL = "control"
    PARAMETRIC = "parametric"
    VARIABLE = "variable"
    TABLE = "table"
    LOAD = "load"
    STORE = "store"
    MEMORY = "memory"
    CONST = "const"
    TEST = "test"  # one operand, i32 result (eqz)
    COMPARE = "compare"  # two operands, i32 result
    UNARY = "unary"
    BINARY = "binary"
    CONVERT = "convert"
    REFERENCE = "reference"


@dataclass(frozen=True)
class OpInfo:
    """One opcode's entry.

    `params` and `results` are None for instructions whose typing the
    validator handles by hand (control, variables, select, calls, references).
    `mem_bytes` is the access width of loads and stores; the natural alignment
    exponent is its base-2 logarithm.
    """

    code: int
    name: str
    imm: Imm
    family: Family
    params: tuple[ValType, ...] | None = None
    results: tuple[ValType, ...] | None = None
    mem_bytes: int = 0

    @property
    def natural_align(self) -> int:
        return self.mem_bytes.bit_length() - 1


OPS: dict[int, OpInfo] = {}
BY_NAME: dict[str, OpInfo] = {}

# The 0xFC prefix for saturating truncation and bulk memory/table instructions.
PREFIX_FC = 0xFC
# The 0xFD prefix (SIMD) and 0xFE prefix (threads) are recognized only to be rejected.
UNSUPPORTED_PREFIXES = {0xFD: "simd", 0xFE: "threads"}


def _def(
    code: int,
    name: str,
    family: Family,
    imm: Imm = Imm.NONE,
    params: tuple[ValType, ...] | None = None,
    results: tuple[ValType, ...] | None = None,
    mem_bytes: int = 0,
) -> None:
    info = OpInfo(code, name, imm, family, params, results, mem_bytes)
    assert code not in OPS and name not in BY_NAME, name
    OPS[code] = info
    BY_NAME[name] = info


# Control instructions (spec 5.4.1).
_def(0x00, "unreachable", Family.CONTROL)
_def(0x01, "nop", Family.CONTROL)
_def(0x02, "block", Family.CONTROL, Imm.BLOCK_TYPE)
_def(0x03, "loop", Family.CONTROL, Imm.BLOCK_TYPE)
_def(0x04, "if", Family.CONTROL, Imm.BLOCK_TYPE)
_def(0x05, "else", Family.CONTROL)
_def(0x0B, "end", Family.CONTROL)
_def(0x0C, "br", Family.CONTROL, Imm.LABEL)
_def(0x0D, "br_if", Family.CONTROL, Imm.LABEL)
_def(0x0E, "br_table", Family.CONTROL, Imm.BR_TABLE)
_def(0x0F, "return", Family.CONTROL)
_def(0x10, "call", Family.CONTROL, Imm.FUNC)
_def(0x11, "call_indirect", Family.CONTROL, Imm.CALL_INDIRECT)

# Reference instructions (spec 5.4.2).
_def(0xD0, "ref.null", Family.REFERENCE, Imm.REF_TYPE)
_def(0xD1, "ref.is_null", Family.REFERENCE)
_def(0xD2, "ref.func", Family.REFERENCE, Imm.FUNC)

# Parametric instructions (spec 5.4.3).
_def(0x1A, "drop", Family.PARAMETRIC)
_def(0x1B, "select", Family.PARAMETRIC)
_def(0x1C, "select_t", Family.PARAMETRIC, Imm.SELECT_TYPES)  # text: "select (result t)"

# Variable instructions (spec 5.4.4).
_def(0x20, "local.get", Family.VARIABLE, Imm.LOCAL)
_def(0x21, "local.set", Family.VARIABLE, Imm.LOCAL)
_def(0x22, "local.tee", Family.VARIABLE, Imm.LOCAL)
_def(0x23, "global.get", Family.VARIABLE, Imm.GLOBAL)
_def(0x24, "global.set", Family.VARIABLE, Imm.GLOBAL)

# Table instructions (spec 5.4.5).
_def(0x25, "table.get", Family.TABLE, Imm.TABLE)
_def(0x26, "table.set", Family.TABLE, Imm.TABLE)
_def(0xFC0C, "table.init", Family.TABLE, Imm.TABLE_INIT)
_def(0xFC0D, "elem.drop", Family.TABLE, Imm.ELEM)
_def(0xFC0E, "table.copy", Family.TABLE, Imm.TABLE_COPY)
_def(0xFC0F, "table.grow", Family.TABLE, Imm.TABLE)
_def(0xFC10, "table.size", Family.TABLE, Imm.TABLE)
_def(0xFC11, "table.fill", Family.TABLE, Imm.TABLE)

# Memory instructions (spec 5.4.6).
_LOADS = [
    (0x28, "i32.load", I32, 4),
    (0x29, "i64.load", I64, 8),
    (0x2A, "f32.load", F32, 4),
    (0x2B, "f64.load", F64, 8),
    (0x2C, "i32.load8_s", I32, 1),
    (0x2D, "i32.load8_u", I32, 1),
    (0x2E, "i32.load16_s", I32, 2),
    (0x2F, "i32.load16_u", I32, 2),
    (0x30, "i64.load8_s", I64, 1),
    (0x31, "i64.load8_u", I64, 1),
    (0x32, "i64.load16_s", I64, 2),
    (0x33, "i64.load16_u", I64, 2),
    (0x34, "i64.load32_s", I64, 4),
    (0x35, "i64.load32_u", I64, 4),
]
for _code, _name, _type, _width in _LOADS:
    _def(_code, _name, Family.LOAD, Imm.MEMARG, (I32,), (_type,), _width)

_STORES = [
    (0x36, "i32.store", I32, 4),
    (0x37, "i64.store", I64, 8),
    (0x38, "f32.store", F32, 4),
    (0x39, "f64.store", F64, 8),
    (0x3A, "i32.store8", I32, 1),
    (0x3B, "i32.store16", I32, 2),
    (0x3C, "i64.store8", I64, 1),
    (0x3D, "i64.store16", I64, 2),
    (0x3E, "i64.store32", I64, 4),
]
for _code, _name, _type, _width in _STORES:
    _def(_code, _name, Family.STORE, Imm.MEMARG, (I32, _type), (), _width)

_def(0x3F, "memory.size", Family.MEMORY, Imm.MEMORY, (), (I32,))
_def(0x40, "memory.grow", Family.MEMORY, Imm.MEMORY, (I32,), (I32,))
_def(0xFC08, "memory.init", Family.MEMORY, Imm.MEMORY_INIT, (I32, I32, I32), ())
_def(0xFC09, "data.drop", Family.MEMORY, Imm.DATA, (), ())
_def(0xFC0A, "memory.copy", Family.MEMORY, Imm.MEMORY_COPY, (I32, I32, I32), ())
_def(0xFC0B, "memory.fill", Family.MEMORY, Imm.MEMORY, (I32, I32, I32), ())

# Numeric instructions (spec 5.4.7).
_def(0x41, "i32.const", Family.CONST, Imm.I32, (), (I32,))
_def(0x42, "i64.const", Family.CONST, Imm.I64, (), (I64,))
_def(0x43, "f32.const", Family.CONST, Imm.F32, (), (F32,))
_def(0x44, "f64.const", Family.CONST, Imm.F64, (), (F64,))

_INT_COMPARES = ["eq", "ne", "lt_s", "lt_u", "gt_s", "gt_u", "le_s", "le_u", "ge_s", "ge_u"]
_FLOAT_COMPARES = ["eq", "ne", "lt", "gt", "le", "ge"]
_INT_UNARY = ["clz", "ctz", "popcnt"]
_INT_BINARY = [
    "add", "sub", "mul", "div_s", "div_u", "rem_s", "rem_u",
    "and", "or", "xor", "shl", "shr_s", "shr_u", "rotl", "rotr",
]
_FLOAT_UNARY = ["abs", "neg", "ceil", "floor", "trunc", "nearest", "sqrt"]
_FLOAT_BINARY = ["add", "sub", "mul", "div", "min", "max", "copysign"]


def _def_series(start: int, prefix: str, names: list[str], family: Family,
                params: tuple[ValType, ...], results: tuple[ValType, ...]) -> int:
    for offset, name in enumerate(names):
        _def(start + offset, f"{prefix}.{name}", family, Imm.NONE, params, results)
    return start + len(names)


_def(0x45, "i32.eqz", Family.TEST, Imm.NONE, (I32,), (I32,))
_def_series(0x46, "i32", _INT_COMPARES, Family.COMPARE, (I32, I32), (I32,))
_def(0x50, "i64.eqz", Family.TEST, Imm.NONE, (I64,), (I32,))
_def_series(0x51, "i64", _INT_COMPARES, Family.COMPARE, (I64, I64), (I32,))
_def_series(0x5B, "f32", _FLOAT_COMPARES, Family.COMPARE, (F32, F32), (I32,))
_def_series(0x61, "f64", _FLOAT_COMPARES, Family.COMPARE, (F64, F64), (I32,))
_def_series(0x67, "i32", _INT_UNARY, Family.UNARY, (I32,), (I32,))
_def_series(0x6A, "i32", _INT_BINARY, Family.BINARY, (I32, I32), (I32,))
_def_series(0x79, "i64", _INT_UNARY, Family.UNARY, (I64,), (I64,))
_def_series(0x7C, "i64", _INT_BINARY, Family.BINARY, (I64, I64), (I64,))
_def_series(0x8B, "f32", _FLOAT_UNARY, Family.UNARY, (F32,), (F32,))
_def_series(0x92, "f32", _FLOAT_BINARY, Family.BINARY, (F32, F32), (F32,))
_def_series(0x99, "f64", _FLOAT_UNARY, Family.UNARY, (F64,), (F64,))
_def_series(0xA0, "f64", _FLOAT_BINARY, Family.BINARY, (F64, F64), (F64,))

_CONVERSIONS = [
    (0xA7, "i32.wrap_i64", I64, I32),
    (0xA8, "i32.trunc_f32_s", F32, I32),
    (0xA9, "i32.trunc_f32_u", F32, I32),
    (0xAA, "i32.trunc_f64_s", F64, I32),
    (0xAB, "i32.trunc_f64_u", F64, I32),
    (0xAC, "i64.extend_i32_s", I32, I64),
    (0xAD, "i64.extend_i32_u", I32, I64),
    (0xAE, "i64.trunc_f32_s", F32, I64),
    (0xAF, "i64.trunc_f32_u", F32, I64),
    (0xB0, "i64.trunc_f64_s", F64, I64),
    (0xB1, "i64.trunc_f64_u", F64, I64),
    (0xB2, "f32.convert_i32_s", I32, F32),
    (0xB3, "f32.convert_i32_u", I32, F32),
    (0xB4, "f32.convert_i64_s", I64, F32),
    (0xB5, "f32.convert_i64_u", I64, F32),
    (0xB6, "f32.demote_f64", F64, F32),
    (0xB7, "f64.convert_i32_s", I32, F64),
    (0xB8, "f64.convert_i32_u", I32, F64),
    (0xB9, "f64.convert_i64_s", I64, F64),
    (0xBA, "f64.convert_i64_u", I64, F64),
    (0xBB, "f64.promote_f32", F32, F64),
    (0xBC, "i32.reinterpret_f32", F32, I32),
    (0xBD, "i64.reinterpret_f64", F64, I64),
    (0xBE, "f32.reinterpret_i32", I32, F32),
    (0xBF, "f64.reinterpret_i64", I64, F64),
    # Sign-extension operators.
    (0xC0, "i32.extend8_s", I32, I32),
    (0xC1, "i32.extend16_s", I32, I32),
    (0xC2, "i64.extend8_s", I64, I64),
    (0xC3, "i64.extend16_s", I64, I64),
    (0xC4, "i64.extend32_s", I64, I64),
    # Non-trapping float-to-int conversions.
    (0xFC00, "i32.trunc_sat_f32_s", F32, I32),
    (0xFC01, "i32.trunc_sat_f32_u", F32, I32),
    (0xFC02, "i32.trunc_sat_f64_s", F64, I32),
    (0xFC03, "i32.trunc_sat_f64_u", F64, I32),
    (0xFC04, "i64.trunc_sat_f32_s", F32, I64),
    (0xFC05, "i64.trunc_sat_f32_u", F32, I64),
    (0xFC06, "i64.trunc_sat_f64_s", F64, I64),
    (0xFC07, "i64.trunc_sat_f64_u", F64, I64),
]
for _code, _name, _from, _to in _CONVERSIONS:
    _def(_code, _name, Family.CONVERT, Imm.NONE, (_from,), (_to,))

# Opcodes by name for the instructions every tier treats specially.
UNREACHABLE = 0x00
NOP = 0x01
BLOCK = 0x02
LOOP = 0x03
IF = 0x04
ELSE = 0x05
END = 0x0B
BR = 0x0C
BR_IF = 0x0D
BR_TABLE = 0x0E
RETURN = 0x0F
CALL = 0x10
CALL_INDIRECT = 0x11
DROP = 0x1A
SELECT = 0x1B
SELECT_T = 0x1C
LOCAL_GET = 0x20
LOCAL_SET = 0x21
LOCAL_TEE = 0x22
GLOBAL_GET = 0x23
GLOBAL_SET = 0x24
I32_CONST = 0x41
I64_CONST = 0x42
F32_CONST = 0x43
F64_CONST = 0x44
REF_NULL = 0xD0
REF_IS_NULL = 0xD1
REF_FUNC = 0xD2

# Instructions allowed in constant expressions (2.0 plus extended-const).
CONST_EXPR_OPS = frozenset(
    {I32_CONST, I64_CONST, F32_CONST, F64_CONST, REF_NULL, REF_FUNC, GLOBAL_GET, END,
     BY_NAME["i32.add"].code, BY_NAME["i32.sub"].code, BY_NAME["i32.mul"].code,
     BY_NAME["i64.add"].code, BY_NAME["i64.sub"].code, BY_NAME["i64.mul"].code}
)
BLOCK_STARTS = frozenset({BLOCK, LOOP, IF})


def op_name(code: int) -> str:
    """Return the mnemonic of an opcode, or a hex form for unknown ones."""
    info = OPS.get(code)
    if info is not None:
        return info.name
    return f"<opcode 0x{code:x}>"
