"""File-system backends for WASI: the interface and the host-directory backend.

WASI never touches the host file system itself. Each preopened directory is
a `Backend`, and every open file or directory is a `Node` that the backend
returned. Another backend (the in-memory tree in `memfs.MemoryTree`, or encrypted
protected files) plugs in by implementing these two classes; WASI does not
change.

Backend (one per preopen), all paths relative to an open directory `Node`:
    read_only                          bool; writes then fail with ROFS
    open_root() -> Node                the preopened directory itself
    open(dir, path, follow, flags: OpenFlags) -> Node
    stat(dir, path, follow) -> Stat
    set_times(dir, path, follow, atim, mtim)
    mkdir(dir, path) / rmdir(dir, path) / unlink(dir, path)
    rename(dir, old, new_dir, new)     new_dir is a Node of the same backend
    link(dir, old, new_dir, new, follow)
    symlink(target, dir, path)
    readlink(dir, path) -> str

Node (an open file or directory):
    filetype                           a constants.Filetype
    read(n) / write(data) / pread(n, offset) / pwrite(data, offset)
    seek(offset, whence) -> int        whence is os.SEEK_SET, SEEK_CUR or SEEK_END
    stat() -> Stat / set_size(n) / set_times(atim, mtim)
    sync() / datasync() / allocate(offset, length) / advise(offset, length, advice)
    set_append(flag) / readdir() -> list[DirEntry] (with "." and "..") / close()

Times are nanoseconds since the epoch; `None` leaves a time unchanged and
`NOW` sets it to the current time. Every method raises `WasiError` with the
WASI errno on failure, never OSError.

Confinement: paths are resolved one component at a time by `Walk`, which
keeps a stack of open directories. `..` pops the stack and fails with
NOTCAPABLE at the preopen root. Absolute paths and absolute symlink targets
fail with NOTCAPABLE. The host backend opens every intermediate directory
with O_NOFOLLOW relative to its parent's fd, so a symlink that appears or
changes during resolution is read with readlink and resolved by the same
walk instead of by the kernel.
"""

from __future__ import annotations

import errno as host_errno
import logging
import os
import stat as st
from dataclasses import dataclass
from typing import Any, Protocol

from wasmtee.wasi.constants import Errno, Filetype, WasiError, errno_from_os

logger = logging.getLogger(__name__)

NOW = object()
"""Sentinel for set_times: use the current time."""

MAX_SYMLINKS = 32  # Linux allows 40 in one lookup; WASI programs never need more.
MAX_NAME = 255  # bytes in one path component, as NAME_MAX on Linux
# Bytes in a whole path, as PATH_MAX on Linux (4096 with the terminating NUL).
# wasmtime 50 passes paths to the host whole, so a path of 4096 bytes or more
# gets NAMETOOLONG there even when its components are short.
PATH_MAX = 4096


@dataclass
class Stat:
    dev: int
    ino: int
    filetype: Filetype
    nlink: int
    size: int
    atim: int
    mtim: int
    ctim: int


@dataclass
class DirEntry:
    name: bytes
    ino: int
    filetype: Filetype


@dataclass
class OpenFlags:
    create: bool = False
    exclusive: bool = False
    truncate: bool = False
    directory: bool = False
    read: bool = True
    write: bool = False
    append: bool = False
    sync: str = ""  # "", "dsync" or "sync" (fdflags DSYNC, or RSYNC/SYNC)


class DirectoryOps(Protocol):
    """The lookups that `Walk` needs from a backend to resolve a path."""

    def enter(self, parent: Any, name: str) -> tuple[Any, str | None]:
        """Return (child directory handle, None), or (None, symlink target)."""

    def link_target(self, parent: Any, name: str) -> str | None:
        """Return the target when `name` is a symlink, else None."""

    def release(self, handle: Any) -> None: ...


def split_path(path: str) -> tuple[list[str], bool]:
    """Split a guest path into components and report a trailing slash.

    Raises WasiError NOENT for an empty path, NOTCAPABLE for an absolute one,
    INVAL for a NUL byte, and NAMETOOLONG for a path of PATH_MAX bytes or more
    or a component over MAX_NAME bytes.
    """
    if not path:
        raise WasiError(Errno.NOENT, "empty path")
    size = len(path.encode("utf-8", "surrogateescape"))
    if size >= PATH_MAX:
        raise WasiError(Errno.NAMETOOLONG, f"path of {size} bytes")
    if path.startswith("/"):
        raise WasiError(Errno.NOTCAPABLE, f"absolute path {path!r}")
    if "\0" in path:
        raise WasiError(Errno.INVAL, "NUL byte in path")
    trailing = path.endswith("/")
    parts = [p for p in path.split("/") if p]
    for part in parts:
        if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME:
            raise WasiError(Errno.NAMETOOLONG, f"path component of {len(part)} characters")
    return parts, trailing


class Walk:
    """Resolve a path below a root directory handle without leaving it.

    Use as a context manager: `with Walk(ops, root, path) as w: name = w.run(follow)`,
    then operate on (`w.parent`, name). Leaving the block releases the
    directories opened on the way.
    """

    def __init__(self, ops: DirectoryOps, root: Any, path: str) -> None:
        self.ops = ops
        self.stack = [root]
        self.comps, self.trailing_slash = split_path(path)
        self.links = 0

    def __enter__(self) -> Walk:
        return self

    def __exit__(self, *exc: object) -> None:
        while len(self.stack) > 1:
            self.ops.release(self.stack.pop())

    @property
    def parent(self) -> Any:
        return self.stack[-1]

    def follow(self, target: str) -> None:
        """Continue the walk at a symlink's target, relative to the current directory."""
        self.links += 1
        if self.links > MAX_SYMLINKS:
            raise WasiError(Errno.LOOP, "too many levels of symbolic links")
        parts, trailing = split_path(target)
        if trailing and not self.comps:
            self.trailing_slash = True
        self.comps = parts + self.comps if parts else ["."] + self.comps

    def run(self, follow_last: bool) -> str:
        """Walk to the last component and return its name ("." for the directory itself)."""
        while self.comps:
            comp = self.comps.pop(0)
            last = not self.comps
            if comp == ".":
                continue
            if comp == "..":
                if len(self.stack) == 1:
                    raise WasiError(Errno.NOTCAPABLE, "path leaves the preopened directory")
                self.ops.release(self.stack.pop())
                continue
            if last:
                target = self.ops.link_target(self.parent, comp) if follow_last else None
                if target is None:
                    return comp
                self.follow(target)
                continue
            child, target = self.ops.enter(self.parent, comp)
            if target is not None:
                self.follow(target)
            else:
                self.stack.append(child)
        return "."


def _wasi_error(exc: OSError, what: str) -> WasiError:
    return WasiError(errno_from_os(exc), f"{what}: {exc.strerror}")


def filetype_of_mode(mode: int) -> Filetype:
    if st.S_ISREG(mode):
        return Filetype.REGULAR_FILE
    if st.S_ISDIR(mode):
        return Filetype.DIRECTORY
    if st.S_ISLNK(mode):
        return Filetype.SYMBOLIC_LINK
    if st.S_ISCHR(mode):
        return Filetype.CHARACTER_DEVICE
    if st.S_ISBLK(mode):
        return Filetype.BLOCK_DEVICE
    if st.S_ISSOCK(mode):
        return Filetype.SOCKET_STREAM
    return Filetype.UNKNOWN


def stat_from_host(result: os.stat_result) -> Stat:
    return Stat(
        result.st_dev, result.st_ino, filetype_of_mode(result.st_mode), result.st_nlink,
        result.st_size, result.st_atime_ns, result.st_mtime_ns, result.st_ctime_ns,
    )


def _utime_arg(value: Any, current: int) -> int:
    if value is None:
        return current
    if value is NOW:
        import time

        return time.time_ns()
    return int(value)


class HostNode:
    """An open host file or directory, owning one OS file descriptor."""

    def __init__(self, fd: int, filetype: Filetype, backend: HostDirectory) -> None:
        self.fd = fd
        self.filetype = filetype
        self.backend = backend

    def _writable(self) -> None:
        if self.backend.read_only:
            raise WasiError(Errno.ROFS, "read-only preopen")

    def read(self, n: int) -> bytes:
        try:
            return os.read(self.fd, n)
        except OSError as exc:
            raise _wasi_error(exc, "read") from None

    def write(self, data: bytes) -> int:
        self._writable()
        try:
            return os.write(self.fd, data)
        except OSError as exc:
            raise _wasi_error(exc, "write") from None

    def pread(self, n: int, offset: int) -> bytes:
        try:
            return os.pread(self.fd, n, offset)
        except OSError as exc:
            raise _wasi_error(exc, "pread") from None

    def pwrite(self, data: bytes, offset: int) -> int:
        self._writable()
        try:
            return os.pwrite(self.fd, data, offset)
        except OSError as exc:
            raise _wasi_error(exc, "pwrite") from None

    def seek(self, offset: int, whence: int) -> int:
        try:
            return os.lseek(self.fd, offset, whence)
        except OSError as exc:
            raise _wasi_error(exc, "seek") from None

    def stat(self) -> Stat:
        try:
            return stat_from_host(os.fstat(self.fd))
        except OSError as exc:
            raise _wasi_error(exc, "fstat") from None

    def set_size(self, size: int) -> None:
        self._writable()
        try:
            os.ftruncate(self.fd, size)
        except OSError as exc:
            raise _wasi_error(exc, "ftruncate") from None

    def set_times(self, atim: Any, mtim: Any) -> None:
        self._writable()
        try:
            now = os.fstat(self.fd)
            times = (_utime_arg(atim, now.st_atime_ns), _utime_arg(mtim, now.st_mtime_ns))
            os.utime(self.fd, ns=times)
        except OSError as exc:
            raise _wasi_error(exc, "futimens") from None

    def sync(self) -> None:
        try:
            os.fsync(self.fd)
        except OSError as exc:
            raise _wasi_error(exc, "fsync") from None

    def datasync(self) -> None:
        try:
            os.fdatasync(self.fd)
        except OSError as exc:
            raise _wasi_error(exc, "fdatasync") from None

    def allocate(self, offset: int, length: int) -> None:
        self._writable()
        try:
            os.posix_fallocate(self.fd, offset, length)
        except OSError as exc:
            raise _wasi_error(exc, "fallocate") from None

    def advise(self, offset: int, length: int, advice: int) -> None:
        try:
            os.posix_fadvise(self.fd, offset, length, advice)
        except OSError as exc:
            raise _wasi_error(exc, "fadvise") from None

    def set_append(self, flag: bool) -> None:
        import fcntl

        try:
            flags = fcntl.fcntl(self.fd, fcntl.F_GETFL)
            flags = flags | os.O_APPEND if flag else flags & ~os.O_APPEND
            fcntl.fcntl(self.fd, fcntl.F_SETFL, flags)
        except OSError as exc:
            raise _wasi_error(exc, "fcntl") from None

    def readdir(self) -> list[DirEntry]:
        if self.filetype != Filetype.DIRECTORY:
            raise WasiError(Errno.NOTDIR, "readdir on a non-directory")
        try:
            entries = [
                DirEntry(b".", os.fstat(self.fd).st_ino, Filetype.DIRECTORY),
                DirEntry(b"..", os.stat("..", dir_fd=self.fd).st_ino, Filetype.DIRECTORY),
            ]
            for name in sorted(os.listdir(self.fd)):
                info = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
                entries.append(DirEntry(
                    os.fsencode(name), info.st_ino, filetype_of_mode(info.st_mode)
                ))
        except OSError as exc:
            raise _wasi_error(exc, "readdir") from None
        return entries

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class HostDirectory:
    """A preopened host directory. With `read_only`, every write fails with ROFS."""

    def __init__(self, host_path: str, read_only: bool = False) -> None:
        self.host_path = host_path
        self.read_only = read_only

    # DirectoryOps, over raw fds; the root fd belongs to the caller's Node.
    def enter(self, parent: int, name: str) -> tuple[Any, str | None]:
        flags = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            return os.open(name, flags, dir_fd=parent), None
        except OSError as exc:
            if exc.errno in (host_errno.ELOOP, host_errno.ENOTDIR):
                target = self.link_target(parent, name)
                if target is not None:
                    return None, target
            raise _wasi_error(exc, f"open directory {name!r}") from None

    def link_target(self, parent: int, name: str) -> str | None:
        try:
            info = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if not st.S_ISLNK(info.st_mode):
                return None
            return os.fsdecode(os.readlink(name, dir_fd=parent))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _wasi_error(exc, f"lstat {name!r}") from None

    def release(self, handle: int) -> None:
        os.close(handle)

    def _root_fd(self, node: HostNode) -> int:
        if not isinstance(node, HostNode) or node.backend is not self:
            raise WasiError(Errno.XDEV, "node belongs to another backend")
        return node.fd

    def _writable(self) -> None:
        if self.read_only:
            raise WasiError(Errno.ROFS, f"read-only preopen {self.host_path}")

    def _target_root_fd(self, node: HostNode) -> int:
        """Return the root fd for the new name of a rename or link.

        The node may belong to another host preopen, as in wasmtime: the walk
        below it still stays inside that preopen, and the kernel reports
        EXDEV (XDEV) when the two preopens are on different file systems.
        Raises XDEV for a node of another kind of backend.
        """
        if not isinstance(node, HostNode) or not isinstance(node.backend, HostDirectory):
            raise WasiError(Errno.XDEV, "node belongs to another backend")
        node.backend._writable()
        return node.fd

    def open_root(self) -> HostNode:
        try:
            fd = os.open(self.host_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise _wasi_error(exc, f"open preopen {self.host_path!r}") from None
        return HostNode(fd, Filetype.DIRECTORY, self)

    def open(self, dir: HostNode, path: str, follow: bool, flags: OpenFlags) -> HostNode:
        if (flags.write or flags.create or flags.truncate) and self.read_only:
            self._writable()
        mode = os.O_RDWR if flags.read and flags.write else (
            os.O_WRONLY if flags.write else os.O_RDONLY)
        extra = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY
        extra |= os.O_CREAT if flags.create else 0
        extra |= os.O_EXCL if flags.exclusive else 0
        extra |= os.O_TRUNC if flags.truncate else 0
        extra |= os.O_DIRECTORY if flags.directory else 0
        extra |= os.O_APPEND if flags.append else 0
        extra |= {"": 0, "dsync": os.O_DSYNC, "sync": os.O_SYNC}[flags.sync]
        with Walk(self, self._root_fd(dir), path) as walk:
            if walk.trailing_slash:
                extra |= os.O_DIRECTORY
            while True:
                name = walk.run(follow_last=False)
                try:
                    fd = os.open(name, mode | extra, 0o666, dir_fd=walk.parent)
                except OSError as exc:
                    if follow and exc.errno in (host_errno.ELOOP, host_errno.ENOTDIR, host_errno.EISDIR):
                        target = self.link_target(walk.parent, name)
                        if target is not None:
                            walk.follow(target)
                            continue
                    if exc.errno == host_errno.EISDIR and flags.write:
                        raise WasiError(Errno.ISDIR, f"open {path!r} for writing") from None
                    if (not follow and exc.errno == host_errno.ENOTDIR
                            and self.link_target(walk.parent, name) is not None):
                        # O_DIRECTORY on a symlink: Linux checks the type before
                        # O_NOFOLLOW, but wasmtime reports the symlink (LOOP).
                        raise WasiError(Errno.LOOP, f"open {path!r}: a symlink") from None
                    raise _wasi_error(exc, f"open {path!r}") from None
                try:
                    filetype = filetype_of_mode(os.fstat(fd).st_mode)
                except OSError as exc:
                    os.close(fd)
                    raise _wasi_error(exc, f"fstat {path!r}") from None
                return HostNode(fd, filetype, self)

    def stat(self, dir: HostNode, path: str, follow: bool) -> Stat:
        with Walk(self, self._root_fd(dir), path) as walk:
            name = walk.run(follow)
            try:
                info = os.stat(name, dir_fd=walk.parent, follow_symlinks=False)
            except OSError as exc:
                raise _wasi_error(exc, f"stat {path!r}") from None
            if walk.trailing_slash and not st.S_ISDIR(info.st_mode):
                raise WasiError(Errno.NOTDIR, f"stat {path!r}")
            return stat_from_host(info)

    def set_times(self, dir: HostNode, path: str, follow: bool, atim: Any, mtim: Any) -> None:
        self._writable()
        with Walk(self, self._root_fd(dir), path) as walk:
            name = walk.run(follow)
            try:
                now = os.stat(name, dir_fd=walk.parent, follow_symlinks=False)
                times = (_utime_arg(atim, now.st_atime_ns), _utime_arg(mtim, now.st_mtime_ns))
                os.utime(name, ns=times, dir_fd=walk.parent, follow_symlinks=False)
            except OSError as exc:
                raise _wasi_error(exc, f"utimensat {path!r}") from None

    def mkdir(self, dir: HostNode, path: str) -> None:
        self._writable()
        with Walk(self, self._root_fd(dir), path) as walk:
            name = walk.run(False)
            try:
                os.mkdir(name, 0o777, dir_fd=walk.parent)
            except OSError as exc:
                raise _wasi_error(exc, f"mkdir {path!r}") from None

    def rmdir(self, dir: HostNode, path: str) -> None:
        self._writable()
        with Walk(self, self._root_fd(dir), path) as walk:
            name = walk.run(False)
            if name == ".":
                raise WasiError(Errno.INVAL, f"rmdir {path!r}")
            try:
                os.rmdir(name, dir_fd=walk.parent)
            except OSError as exc:
                raise _wasi_error(exc, f"rmdir {path!r}") from None

    def unlink(self, dir: HostNode, path: str) -> None:
        self._writable()
        with Walk(self, self._root_fd(dir), path) as walk:
            name = walk.run(False)
            try:
                info = os.stat(name, dir_fd=walk.parent, follow_symlinks=False)
                if st.S_ISDIR(info.st_mode):
                    raise WasiError(Errno.ISDIR, f"unlink {path!r}")
                if walk.trailing_slash:
                    raise WasiError(self._trailing_slash_errno(dir, path, info),
                                    f"unlink {path!r}")
                os.unlink(name, dir_fd=walk.parent)
            except OSError as exc:
                raise _wasi_error(exc, f"unlink {path!r}") from None

    def _trailing_slash_errno(self, dir: HostNode, path: str, info: os.stat_result) -> Errno:
        """Return the errno for "name/" naming a non-directory `info`.

        A trailing slash resolves a symlink, as in wasmtime: a link to a
        directory gives ISDIR, and a link that fails to resolve (dangling,
        or leaving the sandbox) gives that failure. The link is resolved
        inside the sandbox.
        """
        if st.S_ISLNK(info.st_mode):
            try:
                target = self.stat(dir, path, True)
            except WasiError as exc:
                return exc.errno
            if target.filetype == Filetype.DIRECTORY:
                return Errno.ISDIR
        return Errno.NOTDIR

    def rename(self, dir: HostNode, old: str, new_dir: HostNode, new: str) -> None:
        self._writable()
        new_root = self._target_root_fd(new_dir)
        with Walk(self, self._root_fd(dir), old) as src, Walk(self, new_root, new) as dst:
            old_name = src.run(False)
            new_name = dst.run(False)
            try:
                info = os.stat(old_name, dir_fd=src.parent, follow_symlinks=False)
                if (src.trailing_slash or dst.trailing_slash) and not st.S_ISDIR(info.st_mode):
                    raise WasiError(Errno.NOTDIR, f"rename {old!r}")
                os.rename(old_name, new_name, src_dir_fd=src.parent, dst_dir_fd=dst.parent)
            except OSError as exc:
                raise _wasi_error(exc, f"rename {old!r} to {new!r}") from None

    def link(self, dir: HostNode, old: str, new_dir: HostNode, new: str, follow: bool) -> None:
        self._writable()
        new_root = self._target_root_fd(new_dir)
        with Walk(self, self._root_fd(dir), old) as src, Walk(self, new_root, new) as dst:
            old_name = src.run(follow)
            new_name = dst.run(False)
            if src.trailing_slash:
                raise WasiError(Errno.NOTDIR, f"link {old!r}")
            if dst.trailing_slash:
                # Linux: a new name with a trailing slash must be an existing directory.
                raise WasiError(Errno.NOENT, f"link to {new!r}")
            try:
                os.link(old_name, new_name, src_dir_fd=src.parent, dst_dir_fd=dst.parent,
                        follow_symlinks=False)
            except OSError as exc:
                raise _wasi_error(exc, f"link {old!r} to {new!r}") from None

    def symlink(self, target: str, dir: HostNode, path: str) -> None:
        self._writable()
        if "\0" in target:
            raise WasiError(Errno.INVAL, "NUL byte in symlink target")
        if target.startswith("/"):
            # Such a link could never resolve inside the sandbox; wasmtime rejects it too.
            raise WasiError(Errno.PERM, f"absolute symlink target {target!r}")
        with Walk(self, self._root_fd(dir), path) as walk:
            name = walk.run(False)
            if walk.trailing_slash:
                raise WasiError(Errno.NOENT if name != "." else Errno.EXIST, f"symlink {path!r}")
            try:
                os.symlink(target, name, dir_fd=walk.parent)
            except OSError as exc:
                raise _wasi_error(exc, f"symlink {path!r}") from None

    def readlink(self, dir: HostNode, path: str) -> str:
        with Walk(self, self._root_fd(dir), path) as walk:
            name = walk.run(False)
            try:
                return os.fsdecode(os.readlink(name, dir_fd=walk.parent))
            except OSError as exc:
                raise _wasi_error(exc, f"readlink {path!r}") from None
