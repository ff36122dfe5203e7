"""Readers for the primitive values of the binary format (spec section "Values").

Every reader is a free function `read_x(data, pos) -> (value, new_pos)` over
the whole module as `bytes`, in the style of the spec interpreter's
`decode.ml`. As there, readers do not stop at the end of a section or a
function body: the caller checks the declared size afterwards ("section size
mismatch"). Reading past the end of `data` raises `IndexError`, which
`decode_module` turns into "unexpected end of section or function".

LEB128 limits follow the spec: an N-bit integer takes at most ceil(N/7)
bytes ("integer representation too long"), and the unused bits of the last
byte must be zero, or for signed integers copies of the sign bit ("integer
too large").
"""

from __future__ import annotations

import struct

from wasmtee.errors import DecodeError

_F32_BITS = struct.Struct("<I")
_F64_BITS = struct.Struct("<Q")

UNEXPECTED_END = "unexpected end of section or function"


def read_byte(data: bytes, pos: int) -> tuple[int, int]:
    return data[pos], pos + 1


def read_unsigned(data: bytes, pos: int, bits: int) -> tuple[int, int]:
    """Read an unsigned LEB128 integer of at most `bits` bits."""
    result = 0
    shift = 0
    remaining = bits
    while True:
        if remaining <= 0:
            raise DecodeError("integer representation too long", pos)
        byte = data[pos]
        pos += 1
        if remaining < 7 and (byte & 0x7F) >= 1 << remaining:
            raise DecodeError(f"integer too large (u{bits} byte 0x{byte:02x})", pos - 1)
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        remaining -= 7


def read_signed(data: bytes, pos: int, bits: int) -> tuple[int, int]:
    """Read a signed LEB128 integer of at most `bits` bits."""
    result = 0
    shift = 0
    remaining = bits
    while True:
        if remaining <= 0:
            raise DecodeError("integer representation too long", pos)
        byte = data[pos]
        pos += 1
        if remaining < 7:
            # The unused bits, together with the sign bit, must all be equal.
            mask = (-1 << (remaining - 1)) & 0x7F
            if byte & mask not in (0, mask):
                raise DecodeError(
                    f"integer too large (s{bits} byte 0x{byte:02x})", pos - 1
                )
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            if byte & 0x40:
                result -= 1 << shift
            return result, pos
        remaining -= 7


def read_u32(data: bytes, pos: int) -> tuple[int, int]:
    byte = data[pos]
    if byte < 0x80:
        return byte, pos + 1
    return read_unsigned(data, pos, 32)


def read_u64(data: bytes, pos: int) -> tuple[int, int]:
    byte = data[pos]
    if byte < 0x80:
        return byte, pos + 1
    return read_unsigned(data, pos, 64)


def read_s32(data: bytes, pos: int) -> tuple[int, int]:
    byte = data[pos]
    if byte < 0x80:
        return (byte - 0x80 if byte & 0x40 else byte), pos + 1
    return read_signed(data, pos, 32)


def read_s33(data: bytes, pos: int) -> tuple[int, int]:
    return read_signed(data, pos, 33)


def read_s64(data: bytes, pos: int) -> tuple[int, int]:
    byte = data[pos]
    if byte < 0x80:
        return (byte - 0x80 if byte & 0x40 else byte), pos + 1
    return read_signed(data, pos, 64)


def read_f32_bits(data: bytes, pos: int) -> tuple[int, int]:
    end = pos + 4
    if end > len(data):
        raise DecodeError(UNEXPECTED_END, len(data))
    return _F32_BITS.unpack_from(data, pos)[0], end


def read_f64_bits(data: bytes, pos: int) -> tuple[int, int]:
    end = pos + 8
    if end > len(data):
        raise DecodeError(UNEXPECTED_END, len(data))
    return _F64_BITS.unpack_from(data, pos)[0], end


def read_len32(data: bytes, pos: int) -> tuple[int, int]:
    """Read a u32 length or count that must not exceed the remaining bytes.

    The spec interpreter checks every vector length this way, which also
    bounds the work for a hostile count: each element takes at least one
    byte, so no loop runs longer than the input.
    """
    start = pos
    length, pos = read_u32(data, pos)
    # As in the spec interpreter, the remaining bytes are counted from the
    # start of the length itself.
    if length > len(data) - start:
        raise DecodeError(
            f"length out of bounds ({length} > {len(data) - start} remaining bytes)",
            start,
        )
    return length, pos


def read_bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    """Read a byte vector: a u32 length, then that many bytes."""
    length, pos = read_len32(data, pos)
    end = pos + length
    if end > len(data):
        raise DecodeError(UNEXPECTED_END, len(data))
    return data[pos:end], end


def read_name(data: bytes, pos: int) -> tuple[str, int]:
    """Read a name: a byte vector that must be valid UTF-8."""
    start = pos
    raw, pos = read_bytes(data, pos)
    try:
        return raw.decode("utf-8"), pos
    except UnicodeDecodeError as exc:
        raise DecodeError(
            f"malformed UTF-8 encoding (byte {exc.start} of the name)", start
        ) from None


def read_sized(data: bytes, pos: int) -> tuple[int, int, int]:
    """Read a section or code entry size; return (size, content start, content end)."""
    size, pos = read_len32(data, pos)
    return size, pos, pos + size


def check_size(pos: int, start: int, end: int) -> None:
    """Raise "section size mismatch" unless a sized item ends at its declared end."""
    if pos != end:
        raise DecodeError(
            f"section size mismatch (declared {end - start} bytes, read {pos - start})",
            start,
        )
