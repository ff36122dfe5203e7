"""A cheap listing of a module's sections, for tools such as `wasmtee inspect`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from wasmtee.binary.module import (
    CUSTOM_SECTION,
    HEADER_SIZE,
    SECTION_NAMES,
    check_header,
)
from wasmtee.binary.reader import UNEXPECTED_END, read_name, read_sized
from wasmtee.errors import DecodeError


class SectionInfo(NamedTuple):
    """One section: its id, name, and where it and its content lie in the input.

    `name` is the custom section's own name for custom sections, otherwise the
    spec's name of the section ("type", "code", ...). `offset` is the byte
    offset of the section id, `content_offset` that of the content after the
    size, and `size` the content's size in bytes.
    """

    id: int
    name: str
    offset: int
    content_offset: int
    size: int


def iter_sections(data: bytes | bytearray | memoryview) -> Iterator[SectionInfo]:
    """Yield the sections of a module in order, without decoding their content.

    Only the header, the section ids and sizes are checked, and custom section
    names are decoded. Raises DecodeError when those are malformed.
    """
    data = bytes(data)
    check_header(data)
    pos = HEADER_SIZE
    while pos < len(data):
        section_id = data[pos]
        name = SECTION_NAMES.get(section_id)
        if name is None:
            raise DecodeError(f"malformed section id ({section_id})", pos)
        try:
            size, start, end = read_sized(data, pos + 1)
            if end > len(data):
                raise DecodeError(UNEXPECTED_END, len(data))
            if section_id == CUSTOM_SECTION:
                name, name_end = read_name(data, start)
                if name_end > end:
                    raise DecodeError(
                        f"{UNEXPECTED_END} (custom section name runs past the "
                        "section end)",
                        end,
                    )
        except IndexError:
            raise DecodeError(UNEXPECTED_END, len(data)) from None
        yield SectionInfo(section_id, name, pos, start, size)
        pos = end
