"""Unit tests of wasmtee.pytier.numeric, with expected values from the spec tests.

The values come from i32.wast, i64.wast, f32.wast, f64.wast,
conversions.wast and float_exprs.wast in WebAssembly/testsuite.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wasmtee.errors import Trap, TrapCode
from wasmtee.pytier import numeric as n
from wasmtee.pytier.ops import TEMPLATES
from wasmtee.values import f32_from_bits, f32_to_bits, f64_from_bits, f64_to_bits

H = float.fromhex
M32 = 0xFFFF_FFFF
M64 = 0xFFFF_FFFF_FFFF_FFFF


def u32(value: int) -> int:
    return value & M32


def u64(value: int) -> int:
    return value & M64


def trap_code(func, *args) -> TrapCode:
    with pytest.raises(Trap) as info:
        func(*args)
    return info.value.code


# -- integer division (i32.wast, i64.wast) -----------------------------------------


@pytest.mark.parametrize(("a", "b", "expected"), [
    (1, 1, 1), (0, 1, 0), (-1, -1, 1), (0x40000000, -1, -0x40000000),
    (-7, 2, -3), (7, -2, -3), (-7, -2, 3), (-0x80000000, 2, -0x40000000),
    (-0x7fffffff - 1, 1000, -0x20c49b),
])
def test_div_s32_truncates_toward_zero(a: int, b: int, expected: int) -> None:
    assert n.div_s32(u32(a), u32(b)) == u32(expected)


def test_div_s32_traps() -> None:
    assert trap_code(n.div_s32, 1, 0) is TrapCode.INTEGER_DIVIDE_BY_ZERO
    assert trap_code(n.div_s32, 0x80000000, M32) is TrapCode.INTEGER_OVERFLOW
    assert trap_code(n.div_s64, 1 << 63, M64) is TrapCode.INTEGER_OVERFLOW
    assert trap_code(n.rem_s64, 5, 0) is TrapCode.INTEGER_DIVIDE_BY_ZERO


@pytest.mark.parametrize(("a", "b", "expected"), [
    (0x7fffffff, -1, 0), (-0x80000000, -1, 0), (-7, 2, -1), (7, -2, 1), (-7, -3, -1),
    (11, 5, 1), (-11, 5, -1), (-0x80000000, 2, 0),
])
def test_rem_s32_takes_the_dividend_sign(a: int, b: int, expected: int) -> None:
    assert n.rem_s32(u32(a), u32(b)) == u32(expected)


def test_64_bit_division() -> None:
    assert n.div_s64(u64(-0x8000000000000000), 2) == u64(-0x4000000000000000)
    assert n.rem_s64(u64(-0x8000000000000000), u64(-1)) == 0
    assert n.div_s64(u64(-7), 2) == u64(-3)


@pytest.mark.parametrize(("func", "a", "b", "expected"), [
    (n.rotl32, 0xfe00dc00, 4, 0xe00dc00f), (n.rotl32, 0xabcd9876, 1, 0x579b30ed),
    (n.rotl32, 0x00008000, 37, 0x00100000), (n.rotr32, 0xb0c1d2e3, 0x0005, 0x1d860e97),
    (n.rotr32, 0xff00cc00, 1, 0x7f806600), (n.rotr32, 1, 0, 1),
])
def test_rotations(func, a: int, b: int, expected: int) -> None:
    assert func(a, b) == expected


def test_64_bit_rotations() -> None:
    assert n.rotl64(0xabd1234ef567809c, 63) == 0x55e891a77ab3c04e
    assert n.rotr64(0xabcd1234ef567809, 0xfffffffffffffff5) == 0x6891a77ab3c04d5e
    assert n.rotr64(1, 1) == 0x8000000000000000


# -- float helpers (f32.wast, f64.wast, float_exprs.wast) ---------------------------


def bits64(value: float) -> int:
    return f64_to_bits(value)


def test_min_max_signed_zero_and_nan() -> None:
    assert bits64(n.fmin(-0.0, 0.0)) == bits64(-0.0)
    assert bits64(n.fmin(0.0, -0.0)) == bits64(-0.0)
    assert bits64(n.fmax(-0.0, 0.0)) == bits64(0.0)
    assert bits64(n.fmax(0.0, -0.0)) == bits64(0.0)
    assert math.isnan(n.fmin(math.nan, 1.0))
    assert math.isnan(n.fmax(1.0, math.nan))
    assert n.fmin(-math.inf, 5.0) == -math.inf
    assert n.fmax(-math.inf, 5.0) == 5.0


@pytest.mark.parametrize(("value", "expected"), [
    (0.5, 0.0), (-0.5, -0.0), (1.5, 2.0), (2.5, 2.0), (-3.5, -4.0), (4.5, 4.0),
    (H("0x1.fffffffffffffp+52"), H("0x1.fffffffffffffp+52")), (-H("0x1p-1074"), -0.0),
    (math.inf, math.inf), (-math.inf, -math.inf),
])
def test_nearest_rounds_half_to_even_and_keeps_sign(value: float, expected: float) -> None:
    assert bits64(n.fnearest(value)) == bits64(expected)


def test_ceil_floor_trunc_signs() -> None:
    assert bits64(n.fceil(-0.5)) == bits64(-0.0)
    assert bits64(n.ffloor(0.5)) == bits64(0.0)
    assert bits64(n.ftrunc(-0.9)) == bits64(-0.0)
    assert n.ffloor(-0.5) == -1.0
    assert n.fceil(H("0x1.fffffffffffffp+51")) == H("0x1p+52")


def test_division_by_zero_follows_ieee() -> None:
    assert n.fdiv(1.0, 0.0) == math.inf
    assert n.fdiv(1.0, -0.0) == -math.inf
    assert n.fdiv(-1.0, 0.0) == -math.inf
    assert math.isnan(n.fdiv(0.0, 0.0))
    assert math.isnan(n.fdiv(math.nan, 0.0))


def test_sqrt_of_negative_is_nan() -> None:
    assert math.isnan(n.fsqrt(-1.0))
    assert bits64(n.fsqrt(-0.0)) == bits64(-0.0)
    assert n.fsqrt(H("0x1p-1074")) == H("0x1p-537")


def test_f32_rounding() -> None:
    # f32.wast: add H("0x1p+0") and H("0x1p-24") rounds to even; overflow goes to infinity.
    assert n.f32r(1.0 + 2.0 ** -24) == 1.0
    assert n.f32r(1.0 + 3 * 2.0 ** -24) == 1.0 + 2.0 ** -22
    assert n.f32r(H("0x1.fffffep+127") * 2) == math.inf
    assert n.f32r(-H("0x1.fffffep+127") * 2) == -math.inf
    # float_exprs.wast: f32 arithmetic is not f64 arithmetic.
    assert n.f32r(n.f32r(1.1) * n.f32r(1.1)) != 1.1 * 1.1


def test_promote_quiets_nan_and_keeps_values() -> None:
    signalling = f32_from_bits(0x7fa00000)
    promoted = n.fpromote(signalling)
    assert bits64(promoted) & 0x0008_0000_0000_0000
    assert n.fpromote(H("0x1.fffffep+127")) == H("0x1.fffffep+127")


# -- conversions (conversions.wast) -------------------------------------------------


@pytest.mark.parametrize(("value", "bits", "expected"), [
    (-1.0, 32, M32), (-H("0x1.ccccccp-1"), 32, 0), (2147483520.0, 32, 2147483520),
    (-2147483648.0, 32, 0x80000000), (H("0x1.fffffffffffffp+62"), 64, 0x7ffffffffffffc00),
    (-9223372036854775808.0, 64, 1 << 63),
])
def test_trunc_s(value: float, bits: int, expected: int) -> None:
    assert n.trunc_s(value, bits) == expected


@pytest.mark.parametrize(("value", "bits"), [
    (2147483648.0, 32), (-2147483904.0, 32), (math.inf, 32), (9223372036854775808.0, 64),
])
def test_trunc_s_overflow(value: float, bits: int) -> None:
    assert trap_code(n.trunc_s, value, bits) is TrapCode.INTEGER_OVERFLOW


def test_trunc_nan_is_invalid_conversion() -> None:
    assert trap_code(n.trunc_s, math.nan, 32) is TrapCode.BAD_CONVERSION_TO_INTEGER
    assert trap_code(n.trunc_u, math.nan, 64) is TrapCode.BAD_CONVERSION_TO_INTEGER


def test_trunc_u() -> None:
    assert n.trunc_u(-H("0x1.ccccccp-1"), 32) == 0
    assert n.trunc_u(4294967040.0, 32) == 4294967040
    assert trap_code(n.trunc_u, -1.0, 32) is TrapCode.INTEGER_OVERFLOW
    assert trap_code(n.trunc_u, 4294967296.0, 32) is TrapCode.INTEGER_OVERFLOW
    assert n.trunc_u(18446744073709549568.0, 64) == 18446744073709549568


def test_trunc_sat() -> None:
    assert n.trunc_sat_s(math.nan, 32) == 0
    assert n.trunc_sat_s(2147483648.0, 32) == 0x7fffffff
    assert n.trunc_sat_s(-2147483904.0, 32) == 0x80000000
    assert n.trunc_sat_s(-math.inf, 64) == 1 << 63
    assert n.trunc_sat_u(-1.0, 32) == 0
    assert n.trunc_sat_u(math.inf, 64) == M64
    assert n.trunc_sat_u(4294967296.0, 32) == M32


@pytest.mark.parametrize(("value", "expected"), [
    (16777217, 16777216.0), (16777219, 16777220.0), (0x0020000020000001, H("0x1.000002p+53")),
    (0x7fffffbfffffffff, H("0x1.fffffep+62")), (0x8000008000000001, H("0x1.000002p+63")),
    (0xfffffe8000000001, H("0x1.fffffep+63")), (M64, 18446744073709551616.0),
])
def test_convert_u64_to_f32_rounds_once(value: int, expected: float) -> None:
    assert n.convert_u64_f32(value) == expected


def test_convert_s64_to_f32() -> None:
    assert n.convert_s64_f32(u64(-0x7fffff4000000001)) == -H("0x1.fffffep+62")
    assert n.convert_s64_f32(u64(-1)) == -1.0
    assert n.convert_s32_f32(u32(-16777217)) == -16777216.0


def test_reinterpretation_keeps_nan_payloads() -> None:
    for pattern in (0x7fa00001, 0xffc00000, 0x7f800001, 0x80000000):
        assert n.reinterpret_i32(n.reinterpret_f32(pattern)) == pattern
    for pattern in (0x7ff4000000000001, 0xfff8000000000000, 0x8000000000000000):
        assert n.reinterpret_i64(n.reinterpret_f64(pattern)) == pattern


@given(st.integers(min_value=0, max_value=M32))
def test_f32_memory_round_trip(pattern: int) -> None:
    buffer = bytearray(8)
    n.f32_store(buffer, 4, f32_from_bits(pattern))
    assert int.from_bytes(buffer[4:], "little") == pattern
    assert f32_to_bits(n.f32_load(buffer, 4)) == pattern


@given(st.integers(min_value=0, max_value=M64), st.integers(min_value=1, max_value=M64))
def test_signed_division_matches_definition(a: int, b: int) -> None:
    sa = a - (1 << 64) if a >> 63 else a
    sb = b - (1 << 64) if b >> 63 else b
    if sa == -(1 << 63) and sb == -1:
        return
    quotient = abs(sa) // abs(sb) * (1 if (sa < 0) == (sb < 0) else -1)
    assert n.div_s64(a, b) == u64(quotient)
    assert n.rem_s64(a, b) == u64(sa - quotient * sb)


def test_every_numeric_opcode_has_a_template() -> None:
    for name in ("i32.add", "i64.rotl", "f32.copysign", "f64.nearest", "i64.trunc_sat_f32_u",
                 "f32.demote_f64", "i64.extend32_s"):
        assert name in TEMPLATES


def test_bits_helpers_agree() -> None:
    assert f64_to_bits(f64_from_bits(0x7ff8000000000001)) == 0x7ff8000000000001
