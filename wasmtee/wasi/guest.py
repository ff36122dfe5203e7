"""Bounds-checked access to guest linear memory for WASI host functions.

Works on any object with `buf` (a writable buffer) and `size` (the current
length in bytes), so the runtime's MemoryInstance and a test's fake memory
both fit. Every access outside [0, size) raises Trap(MEMORY_OUT_OF_BOUNDS),
as in wasmtime and WAMR: a guest that hands WASI a bad pointer stops instead
of getting EFAULT back. Two sizes return NOMEM before any bounds check, as
wasmtime 50 does: a string longer than MAX_STRING_LENGTH and an iovec array
of MAX_IOVECS or more entries. docs/wasi.md states the whole rule.
"""

from __future__ import annotations

import struct
from typing import Any

from wasmtee.errors import Trap, TrapCode
from wasmtee.wasi.constants import Errno, WasiError

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_IOVEC = struct.Struct("<II")

# Sizes from which wasmtime 50 (PyPI wasmtime 50.0.1) returns NOMEM instead of
# trapping, measured with one-page memories. A path of 2^27 + 1 bytes gets
# NOMEM, and one of 2^27 bytes traps. fd_write with 2^24 - 1 iovecs gets
# NOMEM, and with 2^24 - 2 it does not.
MAX_STRING_LENGTH = 1 << 27
MAX_IOVECS = (1 << 24) - 1


class GuestMemory:
    """A view of one linear memory, taken at the start of a host call."""

    __slots__ = ("buf", "size")

    def __init__(self, memory: Any) -> None:
        if memory is None:
            raise Trap(TrapCode.MEMORY_OUT_OF_BOUNDS, "the module has no memory for WASI to use")
        if getattr(memory, "closed", False):
            # Even a zero-length access would reach the unmapped buffer.
            raise Trap(TrapCode.MEMORY_OUT_OF_BOUNDS, "the module's memory is closed")
        self.buf = memory.buf
        self.size = memory.size

    def check(self, address: int, length: int) -> None:
        if address < 0 or length < 0 or address + length > self.size:
            raise Trap(
                TrapCode.MEMORY_OUT_OF_BOUNDS,
                f"WASI argument at address 0x{address:x} + {length} > {self.size} bytes",
            )

    def u16(self, address: int) -> int:
        self.check(address, 2)
        return int(_U16.unpack_from(self.buf, address)[0])

    def u32(self, address: int) -> int:
        self.check(address, 4)
        return int(_U32.unpack_from(self.buf, address)[0])

    def u64(self, address: int) -> int:
        self.check(address, 8)
        return int(_U64.unpack_from(self.buf, address)[0])

    def u8(self, address: int) -> int:
        self.check(address, 1)
        return int(self.buf[address])

    def set_u8(self, address: int, value: int) -> None:
        self.check(address, 1)
        self.buf[address] = value & 0xFF

    def set_u16(self, address: int, value: int) -> None:
        self.check(address, 2)
        _U16.pack_into(self.buf, address, value & 0xFFFF)

    def set_u32(self, address: int, value: int) -> None:
        self.check(address, 4)
        _U32.pack_into(self.buf, address, value & 0xFFFFFFFF)

    def set_u64(self, address: int, value: int) -> None:
        self.check(address, 8)
        _U64.pack_into(self.buf, address, value & 0xFFFFFFFFFFFFFFFF)

    def read(self, address: int, length: int) -> bytes:
        self.check(address, length)
        return bytes(self.buf[address:address + length])

    def write(self, address: int, data: bytes) -> None:
        self.check(address, len(data))
        self.buf[address:address + len(data)] = data

    def zero(self, address: int, length: int) -> None:
        self.check(address, length)
        self.buf[address:address + length] = bytes(length)

    def string(self, address: int, length: int) -> str:
        """Read a UTF-8 path or name.

        Raises WasiError NOMEM for more than MAX_STRING_LENGTH bytes and
        ILSEQ for invalid UTF-8.
        """
        if length > MAX_STRING_LENGTH:
            raise WasiError(Errno.NOMEM, f"string of {length} bytes")
        raw = self.read(address, length)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise WasiError(Errno.ILSEQ, "path is not valid UTF-8") from None

    def iovecs(self, address: int, count: int) -> list[tuple[int, int]]:
        """Read `count` (buf, len) pairs and check that every buffer is in bounds.

        Raises WasiError NOMEM for MAX_IOVECS or more pairs.
        """
        if count >= MAX_IOVECS:
            raise WasiError(Errno.NOMEM, f"{count} iovecs")
        self.check(address, count * 8)
        vectors = []
        for i in range(count):
            buf, length = _IOVEC.unpack_from(self.buf, address + 8 * i)
            self.check(buf, length)
            vectors.append((buf, length))
        return vectors

    def gather(self, vectors: list[tuple[int, int]]) -> bytes:
        return b"".join(bytes(self.buf[a:a + n]) for a, n in vectors)

    def scatter(self, vectors: list[tuple[int, int]], data: bytes) -> int:
        """Copy `data` into the buffers in order; return the bytes copied."""
        done = 0
        for address, length in vectors:
            chunk = data[done:done + length]
            self.buf[address:address + len(chunk)] = chunk
            done += len(chunk)
            if done >= len(data):
                break
        return done
