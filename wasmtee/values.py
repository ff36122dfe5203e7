"""The raw value representation shared by the runtime, both tiers and host code.

Raw values, as stored in globals, tables and passed between functions:
- i32 and i64: unsigned Python ints in [0, 2**32) and [0, 2**64).
- f64: a Python float with the exact IEEE bit pattern, NaN payloads included.
- f32: a Python float holding the exact f32 value widened to double. A NaN keeps
  its 23-bit payload in the top of the double's mantissa (shifted left by 29)
  and keeps its quiet bit, so `f32_to_bits(f32_from_bits(b)) == b` for every b.
  CPython 3.11's `struct` conversion to and from '<f' sets the quiet bit of a
  signalling NaN, which is why NaNs go through the double's bits here.
- funcref: None (null) or a function instance; externref: None (null) or any
  Python object.

The public API converts to and from the signed ints used by wasmtime-py.
"""

from __future__ import annotations

import math
import struct

from wasmtee.model import ValType

_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")

MASK32 = 0xFFFF_FFFF
MASK64 = 0xFFFF_FFFF_FFFF_FFFF


def f64_from_bits(bits: int) -> float:
    return _F64.unpack(_U64.pack(bits))[0]


def f64_to_bits(value: float) -> int:
    return _U64.unpack(_F64.pack(value))[0]


def f32_from_bits(bits: int) -> float:
    """Return the raw f32 value for a 32-bit pattern, keeping NaN payloads exact."""
    if bits & 0x7F80_0000 == 0x7F80_0000 and bits & 0x007F_FFFF:
        sign = (bits >> 31) << 63
        return f64_from_bits(sign | 0x7FF0_0000_0000_0000 | (bits & 0x007F_FFFF) << 29)
    return _F32.unpack(_U32.pack(bits))[0]


def f32_to_bits(value: float) -> int:
    """Return the 32-bit pattern of a raw f32 value (the inverse of f32_from_bits)."""
    if value != value:
        bits = f64_to_bits(value)
        payload = (bits >> 29) & 0x007F_FFFF
        return ((bits >> 63) << 31) | 0x7F80_0000 | (payload or 0x0040_0000)
    return _U32.unpack(_F32.pack(value))[0]


def round_f32(value: float) -> float:
    """Round a double to the nearest f32 value (ties to even), as f32 arithmetic does."""
    if value != value:
        return value
    try:
        return _F32.unpack(_F32.pack(value))[0]
    except OverflowError:
        # struct rejects finite doubles beyond the f32 range instead of rounding to inf.
        return math.copysign(math.inf, value)


def to_signed(value: int, bits: int) -> int:
    if value >= 1 << (bits - 1):
        return value - (1 << bits)
    return value


def raw_from_api(val_type: ValType, value: object) -> object:
    """Convert an API value (signed int, float, reference) to its raw form.

    Raises TypeError or ValueError naming the value when it does not fit the type.
    """
    if val_type is ValType.I32 or val_type is ValType.I64:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"expected an int for {val_type.text}, got {value!r}")
        width = 32 if val_type is ValType.I32 else 64
        if not -(1 << (width - 1)) <= value < (1 << width):
            raise ValueError(f"{value} does not fit in {val_type.text}")
        return value & ((1 << width) - 1)
    if val_type is ValType.F32 or val_type is ValType.F64:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"expected a float for {val_type.text}, got {value!r}")
        if val_type is ValType.F32:
            return round_f32(float(value))
        return float(value)
    if val_type is ValType.V128:
        raise TypeError("v128 values are not supported")
    return value


def api_from_raw(val_type: ValType, value: object) -> object:
    """Convert a raw value to the API form (signed ints, floats, references)."""
    if val_type is ValType.I32:
        return to_signed(value, 32)  # type: ignore[arg-type]
    if val_type is ValType.I64:
        return to_signed(value, 64)  # type: ignore[arg-type]
    return value


def default_value(val_type: ValType) -> object:
    """Return the zero value of a type, used for locals and uninitialized globals."""
    if val_type is ValType.I32 or val_type is ValType.I64:
        return 0
    if val_type is ValType.F32 or val_type is ValType.F64:
        return 0.0
    return None
