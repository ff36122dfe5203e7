"""Numeric literals of the text format (spec 6.3.1-6.3.2).

Integers parse to Python ints, floats to raw IEEE bit patterns. Decimal and
hexadecimal float literals are rounded exactly once, from their exact rational
value, with ties to even, so f32 literals do not suffer the double rounding of
going through f64 first.
"""

from __future__ import annotations

import re

_DEC = r"[0-9](?:_?[0-9])*"
_HEX = r"[0-9a-fA-F](?:_?[0-9a-fA-F])*"
_INT_RE = re.compile(rf"([+-]?)(?:0x({_HEX})|({_DEC}))")
_DEC_FLOAT_RE = re.compile(rf"({_DEC})(?:\.({_DEC})?)?(?:[eE]([+-]?{_DEC}))?")
_HEX_FLOAT_RE = re.compile(rf"0x({_HEX})(?:\.({_HEX})?)?(?:[pP]([+-]?{_DEC}))?")
_NAN_PAYLOAD_RE = re.compile(rf"nan:0x({_HEX})")


class FloatFormat:
    """An IEEE 754 binary format: significand bits (without the hidden bit) and exponent bits."""

    __slots__ = ("bias", "exponent_bits", "inf_bits", "mantissa_bits", "sign_bit")

    def __init__(self, mantissa_bits: int, exponent_bits: int) -> None:
        self.mantissa_bits = mantissa_bits
        self.exponent_bits = exponent_bits
        self.bias = (1 << (exponent_bits - 1)) - 1
        self.inf_bits = ((1 << exponent_bits) - 1) << mantissa_bits
        self.sign_bit = 1 << (mantissa_bits + exponent_bits)


F32 = FloatFormat(23, 8)
F64 = FloatFormat(52, 11)


def parse_int(text: str) -> int | None:
    """Return the value of an integer literal (sign allowed), or None if malformed."""
    match = _INT_RE.fullmatch(text)
    if match is None:
        return None
    sign, hex_digits, dec_digits = match.groups()
    if hex_digits is not None:
        value = int(hex_digits.replace("_", ""), 16)
    else:
        value = int(dec_digits.replace("_", ""))
    return -value if sign == "-" else value


def parse_uint(text: str) -> int | None:
    """Return the value of an unsigned integer literal (no sign), or None."""
    if text[:1] in ("+", "-"):
        return None
    return parse_int(text)


def int_literal_bits(text: str, bits: int) -> int | None:
    """Return an iN literal as an unsigned N-bit value, or None if malformed or out of range.

    Signed literals must lie in [-2**(N-1), 2**(N-1)), unsigned ones in [0, 2**N).
    """
    value = parse_int(text)
    if value is None:
        return None
    if text[0] in "+-":
        if not -(1 << (bits - 1)) <= value < (1 << (bits - 1)):
            return None
    elif value >= 1 << bits:
        return None
    return value & ((1 << bits) - 1)


def _round_to_bits(num: int, den: int, fmt: FloatFormat) -> int | None:
    """Round the positive rational num/den to the nearest float bits, ties to even.

    Returns None when the value rounds to infinity.
    """
    mbits = fmt.mantissa_bits
    # Find e with 2**e <= num/den < 2**(e+1).
    e = num.bit_length() - den.bit_length()
    if (num << max(0, -e)) < (den << max(0, e)):
        e -= 1
    emin = 1 - fmt.bias
    shift = mbits - max(e, emin)
    if shift >= 0:
        scaled_num, scaled_den = num << shift, den
    else:
        scaled_num, scaled_den = num, den << -shift
    quotient, remainder = divmod(scaled_num, scaled_den)
    twice = remainder * 2
    if twice > scaled_den or (twice == scaled_den and quotient & 1):
        quotient += 1
    if e < emin:
        # Subnormal: the quotient is the mantissa field; reaching 2**mbits
        # yields the smallest normal's encoding naturally.
        return quotient
    if quotient == 1 << (mbits + 1):
        quotient >>= 1
        e += 1
    if e > fmt.bias:
        return None
    return ((e + fmt.bias) << mbits) | (quotient - (1 << mbits))


def parse_float_bits(text: str, fmt: FloatFormat) -> int | None:
    """Return the bit pattern of a float literal, or None if malformed or out of range."""
    negative = text[:1] == "-"
    body = text[1:] if text[:1] in "+-" else text
    sign = fmt.sign_bit if negative else 0
    if body == "inf":
        return sign | fmt.inf_bits
    if body == "nan":
        return sign | fmt.inf_bits | (1 << (fmt.mantissa_bits - 1))
    if body.startswith("nan:"):
        match = _NAN_PAYLOAD_RE.fullmatch(body)
        if match is None:
            return None
        payload = int(match.group(1).replace("_", ""), 16)
        if not 0 < payload < (1 << fmt.mantissa_bits):
            return None
        return sign | fmt.inf_bits | payload
    magnitude = _parse_magnitude(body)
    if magnitude is None:
        return None
    num, den = magnitude
    if num == 0:
        return sign
    bits = _round_to_bits(num, den, fmt)
    if bits is None:
        return None
    return sign | bits


def _parse_magnitude(body: str) -> tuple[int, int] | None:
    """Return an unsigned float literal's exact value as (numerator, denominator)."""
    if body.startswith("0x"):
        match = _HEX_FLOAT_RE.fullmatch(body)
        if match is None:
            return None
        whole, frac, exp = match.groups()
        frac = (frac or "").replace("_", "")
        mantissa = int(whole.replace("_", "") + frac, 16)
        exponent = int(exp.replace("_", "")) if exp else 0
        exponent -= 4 * len(frac)
        base = 2
    else:
        match = _DEC_FLOAT_RE.fullmatch(body)
        if match is None:
            return None
        whole, frac, exp = match.groups()
        frac = (frac or "").replace("_", "")
        mantissa = int(whole.replace("_", "") + frac)
        exponent = int(exp.replace("_", "")) if exp else 0
        exponent -= len(frac)
        base = 10
    if mantissa == 0:
        return 0, 1
    # Huge exponents would build enormous ints: clamp to values that are
    # certainly zero or infinite in both formats.
    if base == 10:
        digits = len(str(mantissa))
        if exponent + digits > 400:
            return 1 << 2000, 1
        if exponent + digits < -400:
            return 1, 1 << 2000
        if exponent >= 0:
            return mantissa * 10**exponent, 1
        return mantissa, 10**-exponent
    bits = mantissa.bit_length()
    if exponent + bits > 1100:
        return 1 << 2000, 1
    if exponent + bits < -1200:
        return 1, 1 << 2000
    if exponent >= 0:
        return mantissa << exponent, 1
    return mantissa, 1 << -exponent


def is_well_formed_literal(text: str, is_float: bool) -> bool:
    """Tell whether `text` has the syntax of a literal, whatever its range."""
    if not is_float:
        return _INT_RE.fullmatch(text) is not None
    body = text[1:] if text[:1] in ("+", "-") else text
    if body in ("inf", "nan"):
        return True
    if body.startswith("nan:"):
        return _NAN_PAYLOAD_RE.fullmatch(body) is not None
    if body.startswith("0x"):
        return _HEX_FLOAT_RE.fullmatch(body) is not None
    return _DEC_FLOAT_RE.fullmatch(body) is not None
