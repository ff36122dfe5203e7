"""CBOR decoding for untrusted input: plain data types only, no trailing bytes."""

from __future__ import annotations

import io
from typing import Any

import cbor2

# Types a decoded value may contain. Tags that cbor2 turns into other objects
# (dates, sets, decimals, regular expressions, ...) are rejected.
PLAIN_TYPES = (bool, int, float, str, bytes, type(None))


class StrictCborError(ValueError):
    """CBOR input that is malformed or uses a feature the protocol forbids."""


def loads_strict(data: bytes, max_depth: int = 16) -> Any:
    """Decode one CBOR item, rejecting trailing bytes, indefinite lengths,
    duplicate map keys, tags and nesting deeper than `max_depth`."""
    stream = io.BytesIO(data)
    decoder = cbor2.CBORDecoder(
        stream, max_depth=max_depth, allow_indefinite=False, allow_duplicate_keys=False
    )
    try:
        value = decoder.decode()
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError,
            LookupError) as exc:
        raise StrictCborError(f"invalid CBOR: {exc}") from None
    if stream.tell() != len(data):
        raise StrictCborError(
            f"{len(data) - stream.tell()} trailing bytes after the CBOR item"
        )
    _check_plain(value, 0, max_depth)
    return value


def _check_plain(value: Any, depth: int, max_depth: int) -> None:
    if depth > max_depth:
        raise StrictCborError(f"CBOR nesting deeper than {max_depth}")
    if isinstance(value, PLAIN_TYPES):
        return
    if isinstance(value, list):
        for item in value:
            _check_plain(item, depth + 1, max_depth)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            _check_plain(key, depth + 1, max_depth)
            _check_plain(item, depth + 1, max_depth)
        return
    raise StrictCborError(f"CBOR value of type {type(value).__name__} is not allowed")
