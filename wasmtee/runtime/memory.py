"""Linear memory: one anonymous mapping reserved at the largest size it may reach.

The mapping is created once with MAP_NORESERVE, so untouched pages cost
address space but no RAM, and its address never changes: native code may
keep the base pointer across `memory.grow`. Pages beyond `size` are mapped
but out of bounds; every access is checked against `size`, never `len(buf)`.

Tiers that cache a view or the base pointer register an `on_resize`
callback. Every change of the accessible region (a successful grow, and
`close()`, which sets `size` to 0) runs those callbacks through
`_resized`, so no cached view can outlive the region it describes.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import struct
import weakref
from collections.abc import Callable
from typing import Any

from wasmtee.errors import ResourceLimitExceeded, Trap, TrapCode, UsageError
from wasmtee.model import Limits, MemoryType

logger = logging.getLogger(__name__)

PAGE_SIZE = 65536
MAX_PAGES = 65536  # 4 GiB, the 32-bit address space

_MAP_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000)
_FLAGS = mmap.MAP_PRIVATE | getattr(mmap, "MAP_ANONYMOUS", 0x20) | _MAP_NORESERVE

_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


def _release(buf: mmap.mmap) -> None:
    """Unmap `buf`; when views still export it, drop its pages instead."""
    if buf.closed:
        return
    try:
        buf.close()
    except BufferError:
        # A memoryview still refers to the mapping; it is unmapped when the
        # last view dies. Give the pages back to the kernel meanwhile.
        try:
            buf.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError, AttributeError):
            pass


class MemoryInstance:
    """A linear memory.

    `buf` is the mmap, `size` the current length in bytes (a multiple of
    65536), `max_pages` the largest page count `grow` may reach, and
    `address` the base pointer for native code. `store` is the owning Store,
    or None for a memory created outside any store.

    Raises ResourceLimitExceeded when the minimum size exceeds the limit or
    the address space cannot hold the reservation.
    """

    __slots__ = (
        "__weakref__",
        "_address",
        "_closed",
        "_finalizer",
        "buf",
        "limit_pages",
        "max_pages",
        "on_resize",
        "size",
        "store",
        "type",
    )

    def __init__(self, mem_type: MemoryType, limit_pages: int | None = None) -> None:
        limits = mem_type.limits
        max_pages = MAX_PAGES
        if limits.max is not None:
            max_pages = min(max_pages, limits.max)
        if limit_pages is not None:
            max_pages = min(max_pages, max(limit_pages, 0))
        if limits.min > max_pages:
            raise ResourceLimitExceeded(
                f"memory size exceeds limit (minimum {limits.min} pages, "
                f"limit {max_pages} pages)"
            )
        self.type = mem_type
        self.store: Any = None
        self._closed = False
        self.max_pages = max_pages
        self.limit_pages = limit_pages
        self.size = limits.min * PAGE_SIZE
        # mmap refuses a zero length, so a memory that can never grow still maps one page.
        self.buf = self._reserve(limits.min)
        self._address: int | None = None
        self._finalizer = weakref.finalize(self, _release, self.buf)
        # Callbacks run with (memory, old_pages) after a successful grow and after close().
        self.on_resize: list[Callable[[MemoryInstance, int], None]] = []

    def _reserve(self, min_pages: int) -> mmap.mmap:
        """Map the reservation, shrinking `max_pages` when the address space is too small.

        Raises ResourceLimitExceeded when not even `min_pages` can be mapped.
        """
        pages = self.max_pages
        while True:
            # mmap rejects a zero length, so a memory that can never grow still maps one page.
            reserve = max(pages, 1) * PAGE_SIZE
            try:
                buf = mmap.mmap(-1, reserve, flags=_FLAGS)
            except OSError as exc:
                if pages <= min_pages:
                    raise ResourceLimitExceeded(
                        f"memory reservation failed ({reserve} bytes): {exc.strerror}"
                    ) from None
                # An address-space limit (ulimit -v) or strict overcommit: try half as much.
                pages = max(min_pages, pages // 2)
                continue
            if pages < self.max_pages:
                logger.warning(
                    "memory reservation failed at %d pages, so this memory can grow only to %d",
                    self.max_pages, pages,
                )
                self.max_pages = pages
            return buf

    @classmethod
    def from_limits(cls, min_pages: int, max_pages: int | None = None) -> MemoryInstance:
        return cls(MemoryType(Limits(min_pages, max_pages)))

    @property
    def pages(self) -> int:
        return self.size // PAGE_SIZE

    @property
    def closed(self) -> bool:
        """True after `close()`, even while a view keeps the mapping alive."""
        return self._closed

    @property
    def address(self) -> int:
        """The base address of the mapping; valid until `close()`.

        Raises UsageError after `close()`.
        """
        if self._address is None:
            if self._closed:
                raise UsageError("memory is closed, so it has no address")
            anchor = ctypes.c_char.from_buffer(self.buf)
            self._address = ctypes.addressof(anchor)
            del anchor  # release the buffer export so close() stays possible
        return self._address

    def grow(self, delta_pages: int) -> int:
        """Grow by `delta_pages` pages; return the old page count, or -1 when it cannot.

        -1 is the result of the wasm `memory.grow` instruction. API callers
        build their error message with `grow_failure`.
        """
        old = self.size // PAGE_SIZE
        if delta_pages < 0:
            return -1
        new = old + delta_pages
        if new > self.max_pages or self._closed:
            return -1
        self.size = new * PAGE_SIZE
        if delta_pages:
            self._resized(old)
        return old

    def grow_failure(self, delta_pages: int) -> str:
        """Describe why `grow(delta_pages)` returned -1."""
        old = self.size // PAGE_SIZE
        if self._closed:
            return "cannot grow memory: the memory is closed"
        new = old + delta_pages
        declared = self.type.limits.max
        if declared is not None and new > declared:
            reason = f"its declared maximum is {declared}"
        elif self.limit_pages is not None and new > self.limit_pages:
            reason = f"the store's memory limit is {self.limit_pages}"
        elif new > MAX_PAGES:
            reason = f"a 32-bit memory has at most {MAX_PAGES}"
        else:
            reason = f"only {self.max_pages} could be reserved in the address space"
        return f"cannot grow memory from {old} to {new} pages: {reason} pages"

    def _resized(self, old_pages: int) -> None:
        """Run the `on_resize` callbacks: the one path that refreshes cached views."""
        for callback in list(self.on_resize):
            callback(self, old_pages)

    def pin(self) -> memoryview | None:
        """Return a view that keeps the mapping in place until `unpin`; None once closed.

        mmap does not unmap while a view of it exists, so native code that
        holds the base pointer keeps mapped pages (zero-filled after `close`)
        even when another thread closes the memory meanwhile.
        """
        if self._closed:
            return None
        try:
            return memoryview(self.buf)
        except ValueError:
            # Another thread unmapped it since the check above.
            return None

    def unpin(self, view: memoryview) -> None:
        """Release a view from `pin`, and finish an unmap that the view delayed."""
        view.release()
        if self._closed:
            _release(self.buf)

    def close(self) -> None:
        """Release the mapping. Later accesses trap and `grow` returns -1.

        The `on_resize` callbacks run before the unmap, so that they drop their
        views. A view that is still alive keeps the mapping (see `_release`).
        Closing twice is allowed.
        """
        if self._closed:
            return
        old = self.size // PAGE_SIZE
        self.size = 0
        self.max_pages = 0
        self._address = None
        self._closed = True
        try:
            self._resized(old)
        finally:
            self._finalizer()

    # Host helpers. Tiers access `buf` directly; host functions use these.

    def _oob(self, address: int, length: int) -> Trap:
        state = ", the memory is closed" if self._closed else ""
        return Trap(
            TrapCode.MEMORY_OUT_OF_BOUNDS,
            f"address 0x{address:x}, length {length}, memory size 0x{self.size:x}{state}",
        )

    def check(self, address: int, length: int) -> None:
        """Raise Trap(MEMORY_OUT_OF_BOUNDS) unless [address, address+length) is in bounds.

        Every address is out of bounds of a closed memory.
        """
        if address < 0 or length < 0 or address + length > self.size or self._closed:
            raise self._oob(address, length)

    def read(self, address: int, length: int) -> bytes:
        """Return `length` bytes at `address`.

        Raises Trap(MEMORY_OUT_OF_BOUNDS) naming the address.
        """
        if address < 0 or length < 0 or address + length > self.size or self._closed:
            raise self._oob(address, length)
        return self.buf[address:address + length]

    def write(self, address: int, data: bytes | bytearray | memoryview) -> None:
        """Write `data` at `address`.

        Raises Trap(MEMORY_OUT_OF_BOUNDS) naming the address.
        """
        length = len(data)
        if address < 0 or address + length > self.size or self._closed:
            raise self._oob(address, length)
        self.buf[address:address + length] = data

    def view(self, address: int, length: int) -> memoryview:
        """Return a writable view of [address, address+length); release it before close()."""
        self.check(address, length)
        return memoryview(self.buf)[address:address + length]

    def read_cstring(self, address: int, max_length: int | None = None) -> bytes:
        """Return the bytes from `address` up to (not including) the next NUL byte.

        Raises Trap(MEMORY_OUT_OF_BOUNDS) when no NUL occurs before the end.
        """
        self.check(address, 0)
        end = self.size if max_length is None else min(self.size, address + max_length)
        stop = self.buf.find(b"\0", address, end)
        if stop < 0:
            raise self._oob(address, end - address + 1)
        return self.buf[address:stop]

    def _load(self, fmt: struct.Struct, address: int) -> int:
        if address < 0 or address + fmt.size > self.size:
            raise self._oob(address, fmt.size)
        return fmt.unpack_from(self.buf, address)[0]

    def _store(self, fmt: struct.Struct, address: int, value: int) -> None:
        if address < 0 or address + fmt.size > self.size:
            raise self._oob(address, fmt.size)
        fmt.pack_into(self.buf, address, value & ((1 << (8 * fmt.size)) - 1))

    def load_u8(self, address: int) -> int:
        return self._load(_U8, address)

    def load_u16(self, address: int) -> int:
        return self._load(_U16, address)

    def load_u32(self, address: int) -> int:
        return self._load(_U32, address)

    def load_u64(self, address: int) -> int:
        return self._load(_U64, address)

    def store_u8(self, address: int, value: int) -> None:
        self._store(_U8, address, value)

    def store_u16(self, address: int, value: int) -> None:
        self._store(_U16, address, value)

    def store_u32(self, address: int, value: int) -> None:
        self._store(_U32, address, value)

    def store_u64(self, address: int, value: int) -> None:
        self._store(_U64, address, value)

    def __repr__(self) -> str:
        return f"<MemoryInstance {self.pages} pages, max {self.max_pages}>"
