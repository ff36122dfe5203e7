"""Decoding of the `name` custom section (the spec's appendix "Custom Sections").

Custom sections do not affect the semantics and "may be ignored by an
implementation" (same appendix), so a malformed name section loses only the
names, never the module. `decode_name_section` raises
DecodeError for malformed content and the module decoder logs and ignores it.
"""

from __future__ import annotations

from wasmtee.binary.reader import read_len32, read_name, read_sized, read_u32
from wasmtee.errors import DecodeError
from wasmtee.model import NameSection

MODULE_NAME = 0
FUNCTION_NAMES = 1
LOCAL_NAMES = 2


def _read_name_map(data: bytes, pos: int) -> tuple[dict[int, str], int]:
    count, pos = read_len32(data, pos)
    names: dict[int, str] = {}
    for _ in range(count):
        start = pos
        index, pos = read_u32(data, pos)
        name, pos = read_name(data, pos)
        if index in names:
            raise DecodeError(f"duplicate index {index} in a name map", start)
        names[index] = name
    return names, pos


def decode_name_section(content: bytes) -> NameSection:
    """Decode the payload of a `name` section (after the section's own name).

    Subsections other than module, function and local names are skipped.
    Raises DecodeError or IndexError when the payload is malformed.
    """
    names = NameSection()
    pos = 0
    last_id = -1
    while pos < len(content):
        sub_id = content[pos]
        if sub_id <= last_id:
            raise DecodeError(f"name subsection {sub_id} out of order", pos)
        last_id = sub_id
        _, start, end = read_sized(content, pos + 1)
        pos = start
        if sub_id == MODULE_NAME:
            names.module_name, pos = read_name(content, pos)
        elif sub_id == FUNCTION_NAMES:
            names.func_names, pos = _read_name_map(content, pos)
        elif sub_id == LOCAL_NAMES:
            count, pos = read_len32(content, pos)
            for _ in range(count):
                func_start = pos
                func_index, pos = read_u32(content, pos)
                if func_index in names.local_names:
                    raise DecodeError(
                        f"duplicate function {func_index} in local names", func_start
                    )
                names.local_names[func_index], pos = _read_name_map(content, pos)
        else:
            pos = end
        if pos != end:
            raise DecodeError(f"name subsection {sub_id} size mismatch", start)
    return names
