"""poll_oneoff: wait for clock timeouts and descriptor readiness."""

from __future__ import annotations

import os
import select
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wasmtee.errors import Trap, TrapCode
from wasmtee.wasi.constants import (
    EVENT_CLOCK, EVENT_FD_READ, EVENT_FD_WRITE, SUBCLOCK_ABSTIME, Errno, Filetype, Rights,
    WasiError,
)
from wasmtee.wasi.guest import GuestMemory

if TYPE_CHECKING:
    from wasmtee.wasi.preview1 import Preview1

EVENT_SIZE = 32
WAIT_SLICE = 0.05  # seconds between checks of the store's interrupt flag while waiting


@dataclass
class _Event:
    userdata: int
    error: int
    type: int
    nbytes: int = 0
    flags: int = 0


def _write_events(mem: GuestMemory, out_ptr: int, events: list[_Event], nevents_ptr: int) -> int:
    for i, event in enumerate(events):
        base = out_ptr + i * EVENT_SIZE
        mem.zero(base, EVENT_SIZE)
        mem.set_u64(base, event.userdata)
        mem.set_u16(base + 8, event.error)
        mem.set_u8(base + 10, event.type)
        mem.set_u64(base + 16, event.nbytes)
        mem.set_u16(base + 24, event.flags)
    mem.set_u32(nevents_ptr, len(events))
    return Errno.SUCCESS


def _clock_timeout(wasi: Preview1, clock_id: int, timeout: int, flags: int) -> float:
    """Seconds until the subscription fires; raises WasiError INVAL for a bad clock."""
    now, _host_id = wasi._clock(clock_id)
    if flags & SUBCLOCK_ABSTIME:
        return max(0.0, (timeout - now()) / 1e9)
    return timeout / 1e9


def _fd_ready_now(wasi: Preview1, fd: int, kind: int, userdata: int) -> tuple[_Event | None, int | None]:
    """Return an event that is ready without waiting, or the host fd to wait on."""
    try:
        entry = wasi.ctx.get(fd, Rights.POLL_FD_READWRITE)
    except WasiError as exc:
        return _Event(userdata, exc.errno, kind), None
    node = entry.node
    if entry.filetype == Filetype.REGULAR_FILE:
        nbytes = 0
        if kind == EVENT_FD_READ:
            try:
                nbytes = max(0, node.stat().size - node.seek(0, os.SEEK_CUR))
            except WasiError:
                nbytes = 0
        return _Event(userdata, Errno.SUCCESS, kind, nbytes), None
    host_fd = node.fileno() if hasattr(node, "fileno") else None
    if host_fd is None:
        return _Event(userdata, Errno.SUCCESS, kind, 0), None
    return None, host_fd


def _wait(wasi: Preview1, readers: dict[int, list[int]], writers: dict[int, list[int]],
          wait: float | None) -> list[_Event]:
    """Wait up to `wait` seconds (None: forever) for a host fd, in slices, so that
    an interrupt of the store (a --timeout deadline) stops the wait with a trap."""
    cell = wasi.ctx.interrupt_cell
    deadline = None if wait is None else time.monotonic() + wait
    while True:
        if cell is not None and cell[0]:
            raise Trap(TrapCode.INTERRUPTED, "while waiting in poll_oneoff")
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        slice_ = WAIT_SLICE if remaining is None else min(WAIT_SLICE, remaining)
        if readers or writers:
            try:
                r, w, _x = select.select(list(readers), list(writers), [], slice_)
            except (OSError, ValueError) as exc:
                raise WasiError(Errno.IO, f"select: {exc}") from None
            events = [_Event(u, Errno.SUCCESS, EVENT_FD_READ) for fd in r for u in readers[fd]]
            events += [_Event(u, Errno.SUCCESS, EVENT_FD_WRITE) for fd in w for u in writers[fd]]
            if events:
                return events
        elif slice_:
            time.sleep(slice_)
        if remaining is not None and remaining <= slice_:
            return []


def poll_oneoff(wasi: Preview1, mem: GuestMemory, in_ptr: int, out_ptr: int, count: int, nevents_ptr: int) -> int:
    if count == 0:
        raise WasiError(Errno.INVAL, "no subscriptions")
    size = wasi.layout.subscription_size
    mem.check(in_ptr, count * size)
    mem.check(out_ptr, count * EVENT_SIZE)
    mem.check(nevents_ptr, 4)
    ready: list[_Event] = []
    clocks: list[tuple[float, int]] = []
    readers: dict[int, list[int]] = {}
    writers: dict[int, list[int]] = {}
    for i in range(count):
        base = in_ptr + i * size
        userdata = mem.u64(base)
        tag = mem.u8(base + 8)
        if tag == EVENT_CLOCK:
            at = base + wasi.layout.clock_offset
            try:
                seconds = _clock_timeout(wasi, mem.u32(at), mem.u64(at + 8), mem.u16(at + 24))
            except WasiError as exc:
                ready.append(_Event(userdata, exc.errno, EVENT_CLOCK))
                continue
            clocks.append((seconds, userdata))
        elif tag in (EVENT_FD_READ, EVENT_FD_WRITE):
            event, host_fd = _fd_ready_now(wasi, mem.u32(base + 16), tag, userdata)
            if event is not None:
                ready.append(event)
            elif host_fd is not None:
                (readers if tag == EVENT_FD_READ else writers).setdefault(host_fd, []).append(userdata)
        else:
            raise WasiError(Errno.INVAL, f"unknown subscription type {tag}")
    start = time.monotonic()
    wait = 0.0 if ready else min((s for s, _ in clocks), default=None)
    ready += _wait(wasi, readers, writers, wait)
    elapsed = time.monotonic() - start
    if not ready or any(s <= elapsed for s, _ in clocks):
        ready += [_Event(u, Errno.SUCCESS, EVENT_CLOCK) for s, u in clocks if s <= elapsed + 1e-9]
    return _write_events(mem, out_ptr, ready[:count], nevents_ptr)
