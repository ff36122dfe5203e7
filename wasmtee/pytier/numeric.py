"""Numeric helpers for the python tier: the operations too complex to inline.

Every function takes and returns raw values (see wasmtee.values): unsigned
ints for i32/i64, floats for f32/f64 with f32 values exactly representable
as f32. Generated code calls these by name, so their names are part of the
code generator's contract.
"""

from __future__ import annotations

import math
import struct

from wasmtee.errors import Trap, TrapCode
from wasmtee.values import f32_from_bits, f32_to_bits, f64_from_bits, f64_to_bits, round_f32

MASK32 = 0xFFFF_FFFF
MASK64 = 0xFFFF_FFFF_FFFF_FFFF
INF = math.inf
CANONICAL_NAN = f64_from_bits(0x7FF8_0000_0000_0000)
_F32 = struct.Struct("<f")
_U32 = struct.Struct("<I")


def overflow() -> Trap:
    return Trap(TrapCode.INTEGER_OVERFLOW)


# -- integer division: Python's // floors, wasm truncates toward zero ---------------


def div_s32(a: int, b: int) -> int:
    if b == 0:
        raise Trap(TrapCode.INTEGER_DIVIDE_BY_ZERO)
    a = (a ^ 0x8000_0000) - 0x8000_0000
    b = (b ^ 0x8000_0000) - 0x8000_0000
    if a == -0x8000_0000 and b == -1:
        raise overflow()
    q = abs(a) // abs(b)
    return (-q if (a < 0) != (b < 0) else q) & MASK32


def rem_s32(a: int, b: int) -> int:
    if b == 0:
        raise Trap(TrapCode.INTEGER_DIVIDE_BY_ZERO)
    a = (a ^ 0x8000_0000) - 0x8000_0000
    b = (b ^ 0x8000_0000) - 0x8000_0000
    r = abs(a) % abs(b)
    return (-r if a < 0 else r) & MASK32


def div_s64(a: int, b: int) -> int:
    if b == 0:
        raise Trap(TrapCode.INTEGER_DIVIDE_BY_ZERO)
    a = (a ^ 0x8000_0000_0000_0000) - 0x8000_0000_0000_0000
    b = (b ^ 0x8000_0000_0000_0000) - 0x8000_0000_0000_0000
    if a == -0x8000_0000_0000_0000 and b == -1:
        raise overflow()
    q = abs(a) // abs(b)
    return (-q if (a < 0) != (b < 0) else q) & MASK64


def rem_s64(a: int, b: int) -> int:
    if b == 0:
        raise Trap(TrapCode.INTEGER_DIVIDE_BY_ZERO)
    a = (a ^ 0x8000_0000_0000_0000) - 0x8000_0000_0000_0000
    b = (b ^ 0x8000_0000_0000_0000) - 0x8000_0000_0000_0000
    r = abs(a) % abs(b)
    return (-r if a < 0 else r) & MASK64


def rotl32(a: int, b: int) -> int:
    b &= 31
    return ((a << b) | (a >> (32 - b))) & MASK32


def rotr32(a: int, b: int) -> int:
    b &= 31
    return ((a >> b) | (a << (32 - b))) & MASK32


def rotl64(a: int, b: int) -> int:
    b &= 63
    return ((a << b) | (a >> (64 - b))) & MASK64


def rotr64(a: int, b: int) -> int:
    b &= 63
    return ((a >> b) | (a << (64 - b))) & MASK64


# -- floats -----------------------------------------------------------------------


def f32r(x: float) -> float:
    """Round a double to f32 (the result of every f32 arithmetic operation)."""
    try:
        return _F32.unpack(_F32.pack(x))[0]
    except OverflowError:
        return math.copysign(INF, x)


def fdiv(a: float, b: float) -> float:
    """Divide with IEEE semantics for a zero divisor (Python raises instead)."""
    if a != a or b != b:
        return a + b
    if a == 0.0:
        return CANONICAL_NAN
    return math.copysign(INF, a) * math.copysign(1.0, b)


def fmin(a: float, b: float) -> float:
    if a != a or b != b:
        return a + b  # a NaN operand gives a NaN result
    if a == b:
        # min(-0, +0) is -0: pick the operand with the sign bit set.
        return a if math.copysign(1.0, a) < 0 else b
    return a if a < b else b


def fmax(a: float, b: float) -> float:
    if a != a or b != b:
        return a + b
    if a == b:
        return b if math.copysign(1.0, a) < 0 else a
    return a if a > b else b


def fsqrt(x: float) -> float:
    if x != x:
        return x + x
    if x < 0.0:
        return CANONICAL_NAN
    return math.sqrt(x)


def _integral(x: float, rounded: int) -> float:
    result = float(rounded)
    if result == 0.0:
        return math.copysign(0.0, x)
    return result


def fceil(x: float) -> float:
    if x != x:
        return x + x
    if x in (INF, -INF):
        return x
    return _integral(x, math.ceil(x))


def ffloor(x: float) -> float:
    if x != x:
        return x + x
    if x in (INF, -INF):
        return x
    return _integral(x, math.floor(x))


def ftrunc(x: float) -> float:
    if x != x:
        return x + x
    if x in (INF, -INF):
        return x
    return _integral(x, math.trunc(x))


def fnearest(x: float) -> float:
    if x != x:
        return x + x
    if x in (INF, -INF):
        return x
    return _integral(x, round(x))  # round() rounds halves to even


def fpromote(x: float) -> float:
    """f64.promote_f32: exact, but a NaN result must be quiet."""
    if x != x:
        return f64_from_bits(f64_to_bits(x) | 0x0008_0000_0000_0000)
    return x


def fneg32(x: float) -> float:
    return -x


def f32_load(view: memoryview, address: int) -> float:
    return f32_from_bits(_U32.unpack_from(view, address)[0])


def f32_store(view: memoryview, address: int, value: float) -> None:
    _U32.pack_into(view, address, f32_to_bits(value))


def reinterpret_f32(bits: int) -> float:
    return f32_from_bits(bits)


def reinterpret_i32(value: float) -> int:
    return f32_to_bits(value)


def reinterpret_f64(bits: int) -> float:
    return f64_from_bits(bits)


def reinterpret_i64(value: float) -> int:
    return f64_to_bits(value)


# -- conversions -------------------------------------------------------------------


def trunc_s(x: float, bits: int) -> int:
    if x != x:
        raise Trap(TrapCode.BAD_CONVERSION_TO_INTEGER)
    if x in (INF, -INF):
        raise overflow()
    value = math.trunc(x)
    if not -(1 << (bits - 1)) <= value < (1 << (bits - 1)):
        raise overflow()
    return value & ((1 << bits) - 1)


def trunc_u(x: float, bits: int) -> int:
    if x != x:
        raise Trap(TrapCode.BAD_CONVERSION_TO_INTEGER)
    if x in (INF, -INF):
        raise overflow()
    value = math.trunc(x)
    if not 0 <= value < (1 << bits):
        raise overflow()
    return value


def trunc_sat_s(x: float, bits: int) -> int:
    if x != x:
        return 0
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if x == INF:
        return high
    if x == -INF:
        return low & ((1 << bits) - 1)
    value = max(low, min(high, math.trunc(x)))
    return value & ((1 << bits) - 1)


def trunc_sat_u(x: float, bits: int) -> int:
    if x != x or x <= 0.0:
        return 0
    if x == INF:
        return (1 << bits) - 1
    return min((1 << bits) - 1, math.trunc(x))


def int_to_f32(value: int) -> float:
    """Convert an int to the nearest f32, rounding once (ties to even).

    float(value) then f32 rounding would round twice, which is wrong for some
    64-bit values, so large values are rounded in integer arithmetic first.
    """
    magnitude = abs(value)
    if magnitude < (1 << 53):
        return round_f32(float(value))
    shift = magnitude.bit_length() - 24
    mantissa = magnitude >> shift
    remainder = magnitude - (mantissa << shift)
    half = 1 << (shift - 1)
    if remainder > half or (remainder == half and mantissa & 1):
        mantissa += 1
    result = round_f32(float(mantissa << shift))
    return -result if value < 0 else result


def convert_s32_f32(a: int) -> float:
    return round_f32(float((a ^ 0x8000_0000) - 0x8000_0000))


def convert_u64_f32(a: int) -> float:
    return int_to_f32(a)


def convert_s64_f32(a: int) -> float:
    return int_to_f32((a ^ 0x8000_0000_0000_0000) - 0x8000_0000_0000_0000)
