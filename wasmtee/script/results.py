"""Bit-exact comparison of raw results against a WAST script's expectations."""

from __future__ import annotations

from dataclasses import dataclass

from wasmtee.model import ValType
from wasmtee.text.wast import Expected, Value
from wasmtee.values import f32_from_bits, f32_to_bits, f64_from_bits, f64_to_bits


@dataclass(frozen=True)
class ExternRef:
    """The host reference `(ref.extern N)` of a script; equal when the numbers are equal."""

    number: int


def raw_argument(value: Value) -> object:
    """Convert a script constant to the raw value representation of `wasmtee.values`."""
    if value.type is ValType.I32 or value.type is ValType.I64:
        return value.bits
    if value.type is ValType.F32:
        return f32_from_bits(value.bits)  # type: ignore[arg-type]
    if value.type is ValType.F64:
        return f64_from_bits(value.bits)  # type: ignore[arg-type]
    if value.bits is None:
        return None
    return ExternRef(value.bits)  # type: ignore[arg-type]


def float_bits(val_type: ValType, raw: object) -> int | None:
    if not isinstance(raw, float):
        return None
    return f32_to_bits(raw) if val_type is ValType.F32 else f64_to_bits(raw)


def describe_raw(val_type: ValType | None, raw: object) -> str:
    """Format a raw result for a failure message, with float bit patterns."""
    if isinstance(raw, bool) or val_type is None:
        return repr(raw)
    if val_type in (ValType.F32, ValType.F64) and isinstance(raw, float):
        width = 8 if val_type is ValType.F32 else 16
        return f"{val_type.text}:{raw!r} (0x{float_bits(val_type, raw):0{width}x})"
    if val_type in (ValType.I32, ValType.I64) and isinstance(raw, int):
        return f"{val_type.text}:{raw} (0x{raw:x})"
    if raw is None:
        return "ref.null"
    if isinstance(raw, ExternRef):
        return f"ref.extern {raw.number}"
    return f"ref {raw!r}"


def describe_expected(expected: Expected) -> str:
    if expected.kind == "value":
        if expected.type in (ValType.F32, ValType.F64):
            width = 8 if expected.type is ValType.F32 else 16
            return f"{expected.type.text}:0x{expected.bits:0{width}x}"
        return f"{expected.type.text}:{expected.bits} (0x{expected.bits:x})"  # type: ignore[union-attr]
    if expected.kind in ("nan:canonical", "nan:arithmetic"):
        return f"{expected.type.text}:{expected.kind}"  # type: ignore[union-attr]
    if expected.kind == "either":
        return (
            "either("
            + ", ".join(describe_expected(e) for e in expected.alternatives)
            + ")"
        )
    if expected.kind == "ref.extern" and expected.bits is not None:
        return f"ref.extern {expected.bits}"
    return expected.kind


def matches(expected: Expected, val_type: ValType | None, raw: object) -> bool:
    """Tell whether one raw result satisfies one expectation, comparing floats by bits."""
    kind = expected.kind
    if kind == "either":
        return any(matches(alt, val_type, raw) for alt in expected.alternatives)
    if kind == "value":
        if expected.type in (ValType.I32, ValType.I64):
            return (
                isinstance(raw, int)
                and not isinstance(raw, bool)
                and raw == expected.bits
            )
        return float_bits(expected.type, raw) == expected.bits  # type: ignore[arg-type]
    if kind in ("nan:canonical", "nan:arithmetic"):
        bits = float_bits(expected.type, raw)  # type: ignore[arg-type]
        if bits is None:
            return False
        if expected.type is ValType.F32:
            exponent_and_quiet, payload_mask = 0x7FC0_0000, 0x003F_FFFF
        else:
            exponent_and_quiet, payload_mask = (
                0x7FF8_0000_0000_0000,
                0x0007_FFFF_FFFF_FFFF,
            )
        if bits & exponent_and_quiet != exponent_and_quiet:
            return False
        return kind == "nan:arithmetic" or bits & payload_mask == 0
    if kind == "ref.null":
        return raw is None
    if kind == "ref.extern":
        if expected.bits is None:
            return raw is not None and val_type is ValType.EXTERNREF
        return isinstance(raw, ExternRef) and raw.number == expected.bits
    if kind == "ref.func":
        return raw is not None and not isinstance(raw, ExternRef)
    return False
