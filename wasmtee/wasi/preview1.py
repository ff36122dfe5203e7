"""The `wasi_snapshot_preview1` and `wasi_unstable` host functions.

Each function takes a GuestMemory and the raw wasm arguments (i32 and i64
as unsigned ints) and returns an errno. Out-parameters are written to guest
memory. `wasi_unstable` (the 0.1 snapshot) differs in three layouts, which
`Layout` captures:
- fd_seek whence: unstable numbers CUR=0, END=1, SET=2; preview1 SET=0, CUR=1, END=2.
- filestat: unstable has a u32 nlink, so the record is 56 bytes (size at 24,
  times at 32/40/48); preview1 has a u64 nlink and 64 bytes (size at 32).
- subscription_clock: unstable carries an extra u64 clock identifier first,
  so the subscription is 56 bytes (clock id at 24, timeout at 32, flags at 48);
  preview1's is 48 bytes (clock id at 16, timeout at 24, flags at 40).
Unstable also lacks sock_accept.
"""

from __future__ import annotations

import os
import select
import socket
import time
from dataclasses import dataclass
from typing import Any

from wasmtee.errors import WasiExit
from wasmtee.wasi.constants import (
    CLOCK_MONOTONIC, CLOCK_PROCESS_CPUTIME, CLOCK_REALTIME, CLOCK_THREAD_CPUTIME,
    EVENT_CLOCK, EVENT_FD_READ, EVENT_FD_WRITE, EVENTRW_HANGUP, FDFLAG_APPEND,
    FDFLAG_DSYNC, FDFLAG_NONBLOCK, FDFLAG_RSYNC, FDFLAG_SYNC, FDFLAGS_ALL, FST_ATIM,
    FST_ATIM_NOW, FST_MTIM, FST_MTIM_NOW, LOOKUP_SYMLINK_FOLLOW, OFLAG_CREAT,
    OFLAG_DIRECTORY, OFLAG_EXCL, OFLAG_TRUNC, OFLAGS_ALL, RIFLAG_RECV_PEEK,
    RIFLAG_RECV_WAITALL, SHUT_RD, SHUT_WR, SUBCLOCK_ABSTIME, Errno, Filetype, Rights,
    WasiError,
)
from wasmtee.wasi.context import FdEntry, WasiContext, rights_for
from wasmtee.wasi.fs import NOW, HostDirectory, OpenFlags, Stat
from wasmtee.wasi.guest import GuestMemory
from wasmtee.wasi.streams import SocketNode

MAX_IO = 1 << 24  # bytes moved by one read or write call; larger requests are short


@dataclass(frozen=True)
class Layout:
    """The record layouts that differ between wasi_unstable and preview1."""

    whence: tuple[int, int, int]  # guest value of SET, CUR, END
    filestat_size: int
    nlink_u64: bool
    subscription_size: int
    clock_offset: int  # offset of the clock id in a subscription


PREVIEW1 = Layout((0, 1, 2), 64, True, 48, 16)
UNSTABLE = Layout((2, 0, 1), 56, False, 56, 24)


def write_filestat(mem: GuestMemory, address: int, stat: Stat, layout: Layout) -> None:
    mem.check(address, layout.filestat_size)
    mem.zero(address, layout.filestat_size)
    mem.set_u64(address, stat.dev)
    mem.set_u64(address + 8, stat.ino)
    mem.set_u8(address + 16, int(stat.filetype))
    if layout.nlink_u64:
        mem.set_u64(address + 24, stat.nlink)
        base = 32
    else:
        mem.set_u32(address + 20, stat.nlink)
        base = 24
    mem.set_u64(address + base, stat.size)
    mem.set_u64(address + base + 8, stat.atim)
    mem.set_u64(address + base + 16, stat.mtim)
    mem.set_u64(address + base + 24, stat.ctim)


def _times(atim: int, mtim: int, flags: int) -> tuple[Any, Any]:
    if flags & ~(FST_ATIM | FST_ATIM_NOW | FST_MTIM | FST_MTIM_NOW):
        raise WasiError(Errno.INVAL, f"unknown fstflags 0x{flags:x}")
    if flags & FST_ATIM and flags & FST_ATIM_NOW or flags & FST_MTIM and flags & FST_MTIM_NOW:
        raise WasiError(Errno.INVAL, "both a time and NOW requested")
    access: Any = None
    modify: Any = None
    if flags & FST_ATIM:
        access = atim
    elif flags & FST_ATIM_NOW:
        access = NOW
    if flags & FST_MTIM:
        modify = mtim
    elif flags & FST_MTIM_NOW:
        modify = NOW
    return access, modify


def _same_file_system(src: FdEntry, dst: FdEntry) -> bool:
    """Return whether a rename or link may go from `src`'s backend to `dst`'s.

    Two host directories qualify even when they are different preopens, as in
    wasmtime; the kernel still returns XDEV when they are on different
    file systems. Other backends (in-memory, protected files) stay separate.
    """
    if src.backend is dst.backend:
        return True
    return isinstance(src.backend, HostDirectory) and isinstance(dst.backend, HostDirectory)


def _signed64(value: int) -> int:
    return value - (1 << 64) if value & (1 << 63) else value


class Preview1:
    """The WASI functions of one context, for one layout (preview1 or unstable)."""

    def __init__(self, ctx: WasiContext, layout: Layout = PREVIEW1) -> None:
        self.ctx = ctx
        self.layout = layout

    # -- arguments and environment ------------------------------------------------

    def _put_strings(self, mem: GuestMemory, items: list[bytes], ptrs: int, buf: int) -> int:
        mem.check(ptrs, 4 * len(items))
        mem.check(buf, sum(len(s) + 1 for s in items))
        for i, item in enumerate(items):
            mem.set_u32(ptrs + 4 * i, buf)
            mem.write(buf, item + b"\0")
            buf += len(item) + 1
        return Errno.SUCCESS

    def _put_sizes(self, mem: GuestMemory, items: list[bytes], count_ptr: int, size_ptr: int) -> int:
        mem.set_u32(count_ptr, len(items))
        mem.set_u32(size_ptr, sum(len(s) + 1 for s in items))
        return Errno.SUCCESS

    def args_get(self, mem: GuestMemory, argv: int, argv_buf: int) -> int:
        return self._put_strings(mem, self.ctx.args, argv, argv_buf)

    def args_sizes_get(self, mem: GuestMemory, count_ptr: int, size_ptr: int) -> int:
        return self._put_sizes(mem, self.ctx.args, count_ptr, size_ptr)

    def environ_get(self, mem: GuestMemory, environ: int, environ_buf: int) -> int:
        return self._put_strings(mem, self.ctx.environ, environ, environ_buf)

    def environ_sizes_get(self, mem: GuestMemory, count_ptr: int, size_ptr: int) -> int:
        return self._put_sizes(mem, self.ctx.environ, count_ptr, size_ptr)

    # -- clocks, randomness, scheduling, process ----------------------------------

    @staticmethod
    def _clock(clock_id: int) -> tuple[Any, int]:
        if clock_id == CLOCK_REALTIME:
            return time.time_ns, time.CLOCK_REALTIME
        if clock_id == CLOCK_MONOTONIC:
            return time.monotonic_ns, time.CLOCK_MONOTONIC
        if clock_id == CLOCK_PROCESS_CPUTIME:
            return time.process_time_ns, time.CLOCK_PROCESS_CPUTIME_ID
        if clock_id == CLOCK_THREAD_CPUTIME:
            return time.thread_time_ns, time.CLOCK_THREAD_CPUTIME_ID
        raise WasiError(Errno.INVAL, f"unknown clock id {clock_id}")

    def clock_res_get(self, mem: GuestMemory, clock_id: int, res_ptr: int) -> int:
        _now, host_id = self._clock(clock_id)
        mem.set_u64(res_ptr, max(1, round(time.clock_getres(host_id) * 1e9)))
        return Errno.SUCCESS

    def clock_time_get(self, mem: GuestMemory, clock_id: int, precision: int, time_ptr: int) -> int:
        now, _host_id = self._clock(clock_id)
        mem.set_u64(time_ptr, now())
        return Errno.SUCCESS

    def random_get(self, mem: GuestMemory, buf: int, length: int) -> int:
        mem.check(buf, length)  # before os.urandom, so a huge length cannot exhaust host memory
        mem.write(buf, os.urandom(length))
        return Errno.SUCCESS

    def sched_yield(self, mem: GuestMemory) -> int:
        os.sched_yield()
        return Errno.SUCCESS

    def proc_exit(self, mem: GuestMemory, code: int) -> None:
        raise WasiExit(code)

    def proc_raise(self, mem: GuestMemory, signal: int) -> int:
        # Preview1 has no signal delivery model, and wasi-libc's raise() never
        # calls this. wasmtime 50 returns NOTSUP, and so does wasmtee.
        return Errno.NOTSUP

    # -- descriptors -------------------------------------------------------------

    def _mutable(self, fd: int, rights: int, action: str) -> FdEntry:
        """Return the entry of `fd` for a call that changes the file system.

        Raises PERM, as wasmtime does, when `fd` belongs to a read-only
        preopen, before the rights check, so the error names the real cause.
        """
        entry = self.ctx.get(fd)
        if getattr(entry.backend, "read_only", False):
            raise WasiError(Errno.PERM, f"{action} in a read-only preopen (fd {fd})")
        return self.ctx.get(fd, rights)

    def _mutable_dir(self, fd: int, rights: int, action: str) -> FdEntry:
        self._mutable(fd, 0, action)
        return self._dir(fd, rights)

    def fd_advise(self, mem: GuestMemory, fd: int, offset: int, length: int, advice: int) -> int:
        entry = self.ctx.get(fd, Rights.FD_ADVISE)
        if advice > 5:
            raise WasiError(Errno.INVAL, f"unknown advice {advice}")
        if entry.filetype == Filetype.DIRECTORY:
            raise WasiError(Errno.BADF, f"fd {fd} is a directory")
        # witx advice numbering matches POSIX_FADV_* on Linux (NORMAL=0 ... NOREUSE=5).
        entry.node.advise(offset, length, advice)
        return Errno.SUCCESS

    def fd_allocate(self, mem: GuestMemory, fd: int, offset: int, length: int) -> int:
        if self.ctx.get(fd).filetype == Filetype.DIRECTORY:
            raise WasiError(Errno.BADF, f"fd {fd} is a directory")
        entry = self._mutable(fd, Rights.FD_ALLOCATE, "fd_allocate")
        entry.node.allocate(offset, length)
        return Errno.SUCCESS

    def fd_close(self, mem: GuestMemory, fd: int) -> int:
        entry = self.ctx.get(fd)
        del self.ctx.fds[fd]
        entry.node.close()
        return Errno.SUCCESS

    def fd_datasync(self, mem: GuestMemory, fd: int) -> int:
        self.ctx.get(fd, Rights.FD_DATASYNC).node.datasync()
        return Errno.SUCCESS

    def fd_sync(self, mem: GuestMemory, fd: int) -> int:
        self.ctx.get(fd, Rights.FD_SYNC).node.sync()
        return Errno.SUCCESS

    def fd_fdstat_get(self, mem: GuestMemory, fd: int, ptr: int) -> int:
        entry = self.ctx.get(fd)
        mem.check(ptr, 24)
        mem.zero(ptr, 24)
        mem.set_u8(ptr, int(entry.filetype))
        mem.set_u16(ptr + 2, entry.flags)
        mem.set_u64(ptr + 8, entry.rights_base)
        mem.set_u64(ptr + 16, entry.rights_inheriting)
        return Errno.SUCCESS

    def fd_fdstat_set_flags(self, mem: GuestMemory, fd: int, flags: int) -> int:
        entry = self.ctx.get(fd, Rights.FD_FDSTAT_SET_FLAGS)
        if flags & ~FDFLAGS_ALL:
            raise WasiError(Errno.INVAL, f"unknown fdflags 0x{flags:x}")
        if (flags ^ entry.flags) & (FDFLAG_DSYNC | FDFLAG_RSYNC | FDFLAG_SYNC):
            raise WasiError(Errno.NOTSUP, "sync flags can be set only by path_open")
        entry.node.set_append(bool(flags & FDFLAG_APPEND))
        if isinstance(entry.node, SocketNode):
            entry.node.set_nonblocking(bool(flags & FDFLAG_NONBLOCK))
        entry.flags = flags
        return Errno.SUCCESS

    def fd_fdstat_set_rights(self, mem: GuestMemory, fd: int, base: int, inheriting: int) -> int:
        entry = self.ctx.get(fd)
        if base & ~entry.rights_base or inheriting & ~entry.rights_inheriting:
            raise WasiError(Errno.NOTCAPABLE, "rights can only be dropped")
        entry.rights_base = base
        entry.rights_inheriting = inheriting
        return Errno.SUCCESS

    def fd_filestat_get(self, mem: GuestMemory, fd: int, ptr: int) -> int:
        entry = self.ctx.get(fd, Rights.FD_FILESTAT_GET)
        write_filestat(mem, ptr, entry.node.stat(), self.layout)
        return Errno.SUCCESS

    def fd_filestat_set_size(self, mem: GuestMemory, fd: int, size: int) -> int:
        if self.ctx.get(fd).filetype == Filetype.DIRECTORY:
            raise WasiError(Errno.BADF, f"fd {fd} is a directory")
        entry = self._mutable(fd, Rights.FD_FILESTAT_SET_SIZE, "fd_filestat_set_size")
        if size >= 1 << 63:
            raise WasiError(Errno.FBIG, f"size {size}")
        entry.node.set_size(size)
        return Errno.SUCCESS

    def fd_filestat_set_times(self, mem: GuestMemory, fd: int, atim: int, mtim: int, flags: int) -> int:
        entry = self._mutable(fd, Rights.FD_FILESTAT_SET_TIMES, "fd_filestat_set_times")
        entry.node.set_times(*_times(atim, mtim, flags))
        return Errno.SUCCESS

    def _read_into(self, mem: GuestMemory, vectors: list[tuple[int, int]], data: bytes, out: int) -> int:
        mem.set_u32(out, mem.scatter(vectors, data))
        return Errno.SUCCESS

    def _data_fd(self, fd: int, rights: int) -> FdEntry:
        """Return the entry of `fd` for reading or writing data.

        Raises BADF, as wasmtime does, for a directory and for a stream used
        in a direction it lacks (reading stdout, writing stdin).
        """
        entry = self.ctx.get(fd)
        if entry.filetype == Filetype.DIRECTORY:
            raise WasiError(Errno.BADF, f"fd {fd} is a directory")
        if entry.backend is None and rights & ~entry.rights_base:
            raise WasiError(Errno.BADF, f"fd {fd} is a stream without {Rights(rights & ~entry.rights_base)!r}")
        return self.ctx.get(fd, rights)

    def fd_read(self, mem: GuestMemory, fd: int, iovs: int, count: int, nread: int) -> int:
        # wasmtime reads the iovecs before it looks up the descriptor.
        vectors = mem.iovecs(iovs, count)
        entry = self._data_fd(fd, Rights.FD_READ)
        want = min(sum(n for _, n in vectors), MAX_IO)
        data = entry.node.read(want) if want else b""
        return self._read_into(mem, vectors, data, nread)

    def fd_pread(self, mem: GuestMemory, fd: int, iovs: int, count: int, offset: int, nread: int) -> int:
        vectors = mem.iovecs(iovs, count)
        entry = self._data_fd(fd, Rights.FD_READ | Rights.FD_SEEK)
        if offset >= 1 << 63:
            raise WasiError(Errno.INVAL, f"offset {_signed64(offset)}")
        want = min(sum(n for _, n in vectors), MAX_IO)
        data = entry.node.pread(want, offset) if want else b""
        return self._read_into(mem, vectors, data, nread)

    def fd_write(self, mem: GuestMemory, fd: int, iovs: int, count: int, nwritten: int) -> int:
        vectors = mem.iovecs(iovs, count)
        entry = self._data_fd(fd, Rights.FD_WRITE)
        data = mem.gather(vectors)
        mem.set_u32(nwritten, entry.node.write(data) if data else 0)
        return Errno.SUCCESS

    def fd_pwrite(self, mem: GuestMemory, fd: int, iovs: int, count: int, offset: int, nwritten: int) -> int:
        vectors = mem.iovecs(iovs, count)
        entry = self._data_fd(fd, Rights.FD_WRITE | Rights.FD_SEEK)
        data = mem.gather(vectors)
        if offset >= 1 << 63:
            raise WasiError(Errno.INVAL, f"offset {_signed64(offset)}")
        mem.set_u32(nwritten, entry.node.pwrite(data, offset) if data else 0)
        return Errno.SUCCESS

    def fd_prestat_get(self, mem: GuestMemory, fd: int, ptr: int) -> int:
        entry = self.ctx.get(fd)
        if entry.preopen_name is None:
            raise WasiError(Errno.BADF, f"fd {fd} is not a preopen")
        mem.check(ptr, 8)
        mem.zero(ptr, 8)
        mem.set_u32(ptr + 4, len(entry.preopen_name))
        return Errno.SUCCESS

    def fd_prestat_dir_name(self, mem: GuestMemory, fd: int, path: int, length: int) -> int:
        entry = self.ctx.get(fd)
        if entry.preopen_name is None:
            raise WasiError(Errno.BADF, f"fd {fd} is not a preopen")
        if length < len(entry.preopen_name):
            raise WasiError(Errno.NAMETOOLONG, f"buffer of {length} bytes")
        mem.write(path, entry.preopen_name)
        return Errno.SUCCESS

    def fd_readdir(self, mem: GuestMemory, fd: int, buf: int, length: int, cookie: int, used_ptr: int) -> int:
        entry = self.ctx.get(fd, Rights.FD_READDIR)
        # The listing is taken when a scan starts (cookie 0); a cookie is the
        # index of the next entry in that listing.
        if cookie == 0 or entry.dir_entries is None:
            entry.dir_entries = entry.node.readdir()
        out = bytearray()
        for index in range(cookie, len(entry.dir_entries)):
            if len(out) >= length:
                break
            item = entry.dir_entries[index]
            header = (index + 1).to_bytes(8, "little") + item.ino.to_bytes(8, "little")
            header += len(item.name).to_bytes(4, "little") + bytes([int(item.filetype)]) + bytes(3)
            out += header + item.name
        out = out[:length]
        mem.write(buf, bytes(out))
        mem.set_u32(used_ptr, len(out))
        return Errno.SUCCESS

    def fd_renumber(self, mem: GuestMemory, fd: int, to: int) -> int:
        entry = self.ctx.get(fd)
        target = self.ctx.get(to)
        if fd != to:
            target.node.close()
            self.ctx.fds[to] = entry
            del self.ctx.fds[fd]
        return Errno.SUCCESS

    def fd_seek(self, mem: GuestMemory, fd: int, offset: int, whence: int, result: int) -> int:
        offset = _signed64(offset)
        needed = Rights.FD_TELL if offset == 0 and whence == self.layout.whence[1] else Rights.FD_SEEK
        self._seekable(fd)
        entry = self.ctx.get(fd, needed)
        if whence not in self.layout.whence:
            raise WasiError(Errno.INVAL, f"unknown whence {whence}")
        host_whence = (os.SEEK_SET, os.SEEK_CUR, os.SEEK_END)[self.layout.whence.index(whence)]
        mem.set_u64(result, entry.node.seek(offset, host_whence))
        return Errno.SUCCESS

    def _seekable(self, fd: int) -> None:
        """Raise BADF for a directory and SPIPE for a stream (stdio, socket), as wasmtime does."""
        entry = self.ctx.get(fd)
        if entry.filetype == Filetype.DIRECTORY:
            raise WasiError(Errno.BADF, f"fd {fd} is a directory")
        if entry.backend is None:
            raise WasiError(Errno.SPIPE, f"fd {fd} is a stream")

    def fd_tell(self, mem: GuestMemory, fd: int, result: int) -> int:
        self._seekable(fd)
        entry = self.ctx.get(fd, Rights.FD_TELL)
        mem.set_u64(result, entry.node.seek(0, os.SEEK_CUR))
        return Errno.SUCCESS

    # -- paths ------------------------------------------------------------------

    def _dir(self, fd: int, rights: int) -> FdEntry:
        return self.ctx.get_dir(fd, rights)

    def path_create_directory(self, mem: GuestMemory, fd: int, path: int, length: int) -> int:
        entry = self._mutable_dir(fd, Rights.PATH_CREATE_DIRECTORY, "path_create_directory")
        entry.backend.mkdir(entry.node, mem.string(path, length))
        return Errno.SUCCESS

    def path_filestat_get(self, mem: GuestMemory, fd: int, flags: int, path: int, length: int, ptr: int) -> int:
        entry = self._dir(fd, Rights.PATH_FILESTAT_GET)
        stat = entry.backend.stat(entry.node, mem.string(path, length), bool(flags & LOOKUP_SYMLINK_FOLLOW))
        write_filestat(mem, ptr, stat, self.layout)
        return Errno.SUCCESS

    def path_filestat_set_times(
        self, mem: GuestMemory, fd: int, flags: int, path: int, length: int,
        atim: int, mtim: int, fst_flags: int,
    ) -> int:
        entry = self._mutable_dir(fd, Rights.PATH_FILESTAT_SET_TIMES, "path_filestat_set_times")
        times = _times(atim, mtim, fst_flags)
        follow = bool(flags & LOOKUP_SYMLINK_FOLLOW)
        entry.backend.set_times(entry.node, mem.string(path, length), follow, *times)
        return Errno.SUCCESS

    def path_link(
        self, mem: GuestMemory, old_fd: int, old_flags: int, old_path: int, old_len: int,
        new_fd: int, new_path: int, new_len: int,
    ) -> int:
        src = self._mutable_dir(old_fd, Rights.PATH_LINK_SOURCE, "path_link")
        dst = self._mutable_dir(new_fd, Rights.PATH_LINK_TARGET, "path_link")
        if not _same_file_system(src, dst):
            raise WasiError(Errno.XDEV, "link across preopens of different backends")
        follow = bool(old_flags & LOOKUP_SYMLINK_FOLLOW)
        src.backend.link(src.node, mem.string(old_path, old_len), dst.node,
                         mem.string(new_path, new_len), follow)
        return Errno.SUCCESS

    def path_open(
        self, mem: GuestMemory, fd: int, dirflags: int, path: int, length: int, oflags: int,
        rights_base: int, rights_inheriting: int, fdflags: int, fd_ptr: int,
    ) -> int:
        entry = self._dir(fd, Rights.PATH_OPEN)
        name = mem.string(path, length)
        if oflags & ~OFLAGS_ALL:
            raise WasiError(Errno.INVAL, f"unknown oflags 0x{oflags:x}")
        if fdflags & ~FDFLAGS_ALL:
            raise WasiError(Errno.INVAL, f"unknown fdflags 0x{fdflags:x}")
        read_only = bool(getattr(entry.backend, "read_only", False))
        if read_only and (oflags & (OFLAG_CREAT | OFLAG_TRUNC) or rights_base & Rights.FD_WRITE):
            # wasmtime 50 takes only FD_WRITE, CREAT and TRUNC as a request to write.
            raise WasiError(Errno.PERM, f"open {name!r} for writing in a read-only preopen")
        needed = Rights.PATH_OPEN
        if oflags & OFLAG_CREAT:
            needed |= Rights.PATH_CREATE_FILE
        if oflags & OFLAG_TRUNC:
            needed |= Rights.PATH_FILESTAT_SET_SIZE
        self.ctx.get(fd, needed)
        # Rights a new descriptor may hold are bounded by the directory's inheriting set.
        base = rights_base & entry.rights_inheriting
        inheriting = rights_inheriting & entry.rights_inheriting
        # The rights that wasi-libc requests only for O_WRONLY and O_RDWR.
        write_rights = (Rights.FD_WRITE | Rights.FD_DATASYNC | Rights.FD_ALLOCATE
                        | Rights.FD_FILESTAT_SET_SIZE)
        directory = bool(oflags & OFLAG_DIRECTORY)
        # A directory opened with write rights fails with ISDIR, as in wasmtime.
        flags = OpenFlags(
            create=bool(oflags & OFLAG_CREAT), exclusive=bool(oflags & OFLAG_EXCL),
            truncate=bool(oflags & OFLAG_TRUNC), directory=directory,
            read=bool(base & (Rights.FD_READ | Rights.FD_READDIR)) or not base & write_rights,
            write=bool(base & write_rights) and not read_only,
            append=bool(fdflags & FDFLAG_APPEND),
            sync="sync" if fdflags & (FDFLAG_RSYNC | FDFLAG_SYNC) else (
                "dsync" if fdflags & FDFLAG_DSYNC else ""),
        )
        if flags.truncate and not flags.write:
            flags.write = True
        follow = bool(dirflags & LOOKUP_SYMLINK_FOLLOW)
        node = entry.backend.open(entry.node, name, follow, flags)
        filetype = Filetype(node.filetype)
        new = FdEntry(node, base & rights_for(filetype), inheriting,
                      fdflags & (FDFLAG_APPEND | FDFLAG_NONBLOCK | FDFLAG_DSYNC | FDFLAG_RSYNC | FDFLAG_SYNC),
                      entry.backend)
        try:
            new_fd = self.ctx.insert(new)
        except WasiError:
            node.close()
            raise
        mem.set_u32(fd_ptr, new_fd)
        return Errno.SUCCESS

    def path_readlink(
        self, mem: GuestMemory, fd: int, path: int, length: int, buf: int, buf_len: int, used_ptr: int,
    ) -> int:
        entry = self._dir(fd, Rights.PATH_READLINK)
        name = mem.string(path, length)
        text = entry.backend.readlink(entry.node, name)
        if text.startswith("/"):
            # An absolute target names a host path, and it can never resolve
            # inside the preopen, so it is not shown (wasmtime returns PERM).
            raise WasiError(Errno.NOTCAPABLE, f"symlink {name!r} has an absolute target")
        target = text.encode("utf-8", "surrogateescape")
        data = target[:buf_len]
        mem.write(buf, data)
        mem.set_u32(used_ptr, len(data))
        return Errno.SUCCESS

    def path_remove_directory(self, mem: GuestMemory, fd: int, path: int, length: int) -> int:
        entry = self._mutable_dir(fd, Rights.PATH_REMOVE_DIRECTORY, "path_remove_directory")
        entry.backend.rmdir(entry.node, mem.string(path, length))
        return Errno.SUCCESS

    def path_rename(
        self, mem: GuestMemory, fd: int, old_path: int, old_len: int, new_fd: int, new_path: int, new_len: int,
    ) -> int:
        src = self._mutable_dir(fd, Rights.PATH_RENAME_SOURCE, "path_rename")
        dst = self._mutable_dir(new_fd, Rights.PATH_RENAME_TARGET, "path_rename")
        if not _same_file_system(src, dst):
            raise WasiError(Errno.XDEV, "rename across preopens of different backends")
        src.backend.rename(src.node, mem.string(old_path, old_len), dst.node, mem.string(new_path, new_len))
        return Errno.SUCCESS

    def path_symlink(self, mem: GuestMemory, old_path: int, old_len: int, fd: int, new_path: int, new_len: int) -> int:
        entry = self._mutable_dir(fd, Rights.PATH_SYMLINK, "path_symlink")
        target = mem.string(old_path, old_len)
        entry.backend.symlink(target, entry.node, mem.string(new_path, new_len))
        return Errno.SUCCESS

    def path_unlink_file(self, mem: GuestMemory, fd: int, path: int, length: int) -> int:
        entry = self._mutable_dir(fd, Rights.PATH_UNLINK_FILE, "path_unlink_file")
        entry.backend.unlink(entry.node, mem.string(path, length))
        return Errno.SUCCESS

    # -- poll and sockets ----------------------------------------------------------

    def poll_oneoff(self, mem: GuestMemory, in_ptr: int, out_ptr: int, count: int, nevents_ptr: int) -> int:
        from wasmtee.wasi.poll import poll_oneoff

        return poll_oneoff(self, mem, in_ptr, out_ptr, count, nevents_ptr)

    def _socket(self, fd: int, rights: int) -> SocketNode:
        if not isinstance(self.ctx.get(fd).node, SocketNode):
            raise WasiError(Errno.NOTSOCK, f"fd {fd} is not a socket")
        return self.ctx.get(fd, rights).node

    def sock_accept(self, mem: GuestMemory, fd: int, flags: int, fd_ptr: int) -> int:
        node = self._socket(fd, Rights.SOCK_ACCEPT)
        if flags & ~FDFLAG_NONBLOCK:
            raise WasiError(Errno.INVAL, f"unsupported accept flags 0x{flags:x}")
        conn = node.accept(bool(flags & FDFLAG_NONBLOCK))
        rights = int(Rights.FD_READ | Rights.FD_WRITE | Rights.FD_FDSTAT_SET_FLAGS
                     | Rights.FD_FILESTAT_GET | Rights.POLL_FD_READWRITE | Rights.SOCK_SHUTDOWN)
        try:
            mem.set_u32(fd_ptr, self.ctx.insert(FdEntry(conn, rights, 0, flags)))
        except WasiError:
            conn.close()
            raise
        return Errno.SUCCESS

    def sock_recv(
        self, mem: GuestMemory, fd: int, ri_data: int, ri_len: int, ri_flags: int,
        ro_datalen: int, ro_flags: int,
    ) -> int:
        node = self._socket(fd, Rights.FD_READ)
        vectors = mem.iovecs(ri_data, ri_len)
        if ri_flags & ~(RIFLAG_RECV_PEEK | RIFLAG_RECV_WAITALL):
            raise WasiError(Errno.INVAL, f"unknown riflags 0x{ri_flags:x}")
        host_flags = (socket.MSG_PEEK if ri_flags & RIFLAG_RECV_PEEK else 0) | (
            socket.MSG_WAITALL if ri_flags & RIFLAG_RECV_WAITALL else 0)
        want = min(sum(n for _, n in vectors), MAX_IO)
        data = node.recv(want, host_flags) if want else b""
        mem.set_u32(ro_datalen, mem.scatter(vectors, data))
        mem.set_u16(ro_flags, 0)
        return Errno.SUCCESS

    def sock_send(self, mem: GuestMemory, fd: int, si_data: int, si_len: int, si_flags: int, so_datalen: int) -> int:
        node = self._socket(fd, Rights.FD_WRITE)
        data = mem.gather(mem.iovecs(si_data, si_len))
        if si_flags:
            raise WasiError(Errno.INVAL, f"unknown siflags 0x{si_flags:x}")
        mem.set_u32(so_datalen, node.send(data) if data else 0)
        return Errno.SUCCESS

    def sock_shutdown(self, mem: GuestMemory, fd: int, how: int) -> int:
        node = self._socket(fd, Rights.SOCK_SHUTDOWN)
        modes = {SHUT_RD: socket.SHUT_RD, SHUT_WR: socket.SHUT_WR, SHUT_RD | SHUT_WR: socket.SHUT_RDWR}
        if how not in modes:
            raise WasiError(Errno.INVAL, f"unknown sdflags {how}")
        node.shutdown(modes[how])
        return Errno.SUCCESS


# name -> parameter types ("i" = i32, "I" = i64); every function returns an i32
# errno except proc_exit, which returns nothing.
SIGNATURES: dict[str, str] = {
    "args_get": "ii", "args_sizes_get": "ii", "environ_get": "ii", "environ_sizes_get": "ii",
    "clock_res_get": "ii", "clock_time_get": "iIi", "fd_advise": "iIIi", "fd_allocate": "iII",
    "fd_close": "i", "fd_datasync": "i", "fd_fdstat_get": "ii", "fd_fdstat_set_flags": "ii",
    "fd_fdstat_set_rights": "iII", "fd_filestat_get": "ii", "fd_filestat_set_size": "iI",
    "fd_filestat_set_times": "iIIi", "fd_pread": "iiiIi", "fd_prestat_get": "ii",
    "fd_prestat_dir_name": "iii", "fd_pwrite": "iiiIi", "fd_read": "iiii",
    "fd_readdir": "iiiIi", "fd_renumber": "ii", "fd_seek": "iIii", "fd_sync": "i",
    "fd_tell": "ii", "fd_write": "iiii", "path_create_directory": "iii",
    "path_filestat_get": "iiiii", "path_filestat_set_times": "iiiiIIi",
    "path_link": "iiiiiii", "path_open": "iiiiiIIii", "path_readlink": "iiiiii",
    "path_remove_directory": "iii", "path_rename": "iiiiii", "path_symlink": "iiiii",
    "path_unlink_file": "iii", "poll_oneoff": "iiii", "proc_exit": "i", "proc_raise": "i",
    "sched_yield": "", "random_get": "ii", "sock_accept": "iii", "sock_recv": "iiiiii",
    "sock_send": "iiiii", "sock_shutdown": "ii",
}
