"""Argument types shared by the subcommands' parsers.

argparse reports a ValueError from a type function as "invalid <function
name> value", so every function here raises ArgumentTypeError with a plain
message instead. argparse puts the option name in front of it, as in
"argument --fuel: invalid value '²' (expected a whole number >= 0)".
Numbers are ASCII digits only: Python's int() also accepts other Unicode
digits, "_" separators and surrounding spaces.
"""

from __future__ import annotations

import argparse
import math
from typing import Callable

_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20,
               "mb": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}


def _is_ascii_number(text: str) -> bool:
    return text.isascii() and text.isdigit()


def non_negative_int(text: str) -> int:
    """Parse a whole number >= 0."""
    if not _is_ascii_number(text):
        raise argparse.ArgumentTypeError(f"invalid value {text!r} (expected a whole number >= 0)")
    return int(text)


def int_in_range(low: int, high: int) -> Callable[[str], int]:
    """Return a type function that parses a whole number in low..high."""

    def parse(text: str) -> int:
        digits = text[1:] if text.startswith("-") else text
        if not _is_ascii_number(digits) or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(
                f"invalid value {text!r} (expected a whole number in {low}..{high})")
        return int(text)

    parse.__name__ = f"integer in {low}..{high}"
    return parse


def positive_seconds(text: str) -> float:
    """Parse a number of seconds in (0, MAX_DEADLINE_SECONDS]."""
    from wasmtee.runtime.config import MAX_DEADLINE_SECONDS

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= MAX_DEADLINE_SECONDS:
        raise argparse.ArgumentTypeError(
            f"invalid number of seconds {text!r} (expected a number > 0 and at most "
            f"{MAX_DEADLINE_SECONDS:g})")
    return value


def byte_size(text: str) -> int:
    """Parse "65536", "64K", "16MiB" or "1G" as a byte count (units are powers of 1024)."""
    stripped = text.strip().lower()
    digits = stripped.rstrip("kmgib")
    unit = stripped[len(digits):]
    if not _is_ascii_number(digits) or unit not in _SIZE_UNITS:
        raise argparse.ArgumentTypeError(
            f"invalid size {text!r} (expected bytes with an optional K, M or G suffix)")
    return int(digits) * _SIZE_UNITS[unit]
