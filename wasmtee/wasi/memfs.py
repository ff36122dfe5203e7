"""An in-memory file-system backend: a tree of inodes that never touches the host.

Implements the Backend and Node interfaces documented in fs.py, with the
same errno choices as the host backend on Linux, so a guest cannot tell the
two apart except by speed and persistence. Useful for tests, for guests that
need scratch space, and as a model for other backends.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

from wasmtee.wasi.constants import Errno, Filetype, WasiError
from wasmtee.wasi.fs import NOW, DirEntry, OpenFlags, Stat, Walk

DEVICE = 0x6D656D  # st_dev of every inode in a tree ("mem")


class Inode:
    """A file, directory or symlink. `children` maps names to inodes in directories."""

    def __init__(self, filetype: Filetype, ino: int, parent: Inode | None = None) -> None:
        self.filetype = filetype
        self.ino = ino
        self.data = bytearray()
        self.children: dict[str, Inode] = {}
        self.target = ""
        self.parent = parent
        self.nlink = 2 if filetype == Filetype.DIRECTORY else 1
        self.atim = self.mtim = self.ctim = time.time_ns()

    def stat(self) -> Stat:
        size = len(self.data) if self.filetype == Filetype.REGULAR_FILE else (
            len(self.target.encode()) if self.filetype == Filetype.SYMBOLIC_LINK else 4096)
        return Stat(DEVICE, self.ino, self.filetype, self.nlink, size, self.atim, self.mtim,
                    self.ctim)

    def set_times(self, atim: Any, mtim: Any) -> None:
        now = time.time_ns()
        if atim is not None:
            self.atim = now if atim is NOW else int(atim)
        if mtim is not None:
            self.mtim = now if mtim is NOW else int(mtim)
        self.ctim = now


class MemoryNode:
    """An open inode with its own position, like an open file description."""

    def __init__(self, inode: Inode, tree: MemoryTree, flags: OpenFlags) -> None:
        self.inode = inode
        self.tree = tree
        self.position = 0
        self.readable = flags.read
        self.writable = flags.write
        self.append = flags.append

    @property
    def filetype(self) -> Filetype:
        return self.inode.filetype

    def _file(self) -> bytearray:
        if self.inode.filetype == Filetype.DIRECTORY:
            raise WasiError(Errno.ISDIR, "read or write on a directory")
        return self.inode.data

    def read(self, n: int) -> bytes:
        chunk = self.pread(n, self.position)
        self.position += len(chunk)
        return chunk

    def pread(self, n: int, offset: int) -> bytes:
        data = self._file()
        if not self.readable:
            raise WasiError(Errno.BADF, "file not open for reading")
        return bytes(data[offset:offset + n])

    def write(self, data: bytes) -> int:
        if self.append:
            self.position = len(self._file())
        written = self.pwrite(data, self.position)
        self.position += written
        return written

    def pwrite(self, data: bytes, offset: int) -> int:
        content = self._file()
        if not self.writable:
            raise WasiError(Errno.BADF, "file not open for writing")
        self.tree.check_size(offset + len(data))
        if offset > len(content):
            content.extend(bytes(offset - len(content)))
        content[offset:offset + len(data)] = data
        self.inode.mtim = self.inode.ctim = time.time_ns()
        return len(data)

    def seek(self, offset: int, whence: int) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.position, os.SEEK_END: len(self._file())}
        target = base[whence] + offset
        if target < 0:
            raise WasiError(Errno.INVAL, f"seek to {target}")
        self.position = target
        return target

    def stat(self) -> Stat:
        return self.inode.stat()

    def set_size(self, size: int) -> None:
        content = self._file()
        if not self.writable:
            raise WasiError(Errno.INVAL, "file not open for writing")
        self.tree.check_size(size)
        del content[size:]
        content.extend(bytes(size - len(content)))
        self.inode.mtim = self.inode.ctim = time.time_ns()

    def set_times(self, atim: Any, mtim: Any) -> None:
        self.tree.writable()
        self.inode.set_times(atim, mtim)

    def sync(self) -> None:
        pass

    def datasync(self) -> None:
        pass

    def allocate(self, offset: int, length: int) -> None:
        content = self._file()
        if not self.writable:
            raise WasiError(Errno.BADF, "file not open for writing")
        if offset + length > len(content):
            self.tree.check_size(offset + length)
            content.extend(bytes(offset + length - len(content)))

    def advise(self, offset: int, length: int, advice: int) -> None:
        pass

    def set_append(self, flag: bool) -> None:
        self.append = flag

    def readdir(self) -> list[DirEntry]:
        inode = self.inode
        if inode.filetype != Filetype.DIRECTORY:
            raise WasiError(Errno.NOTDIR, "readdir on a non-directory")
        parent = inode.parent or inode
        entries = [DirEntry(b".", inode.ino, Filetype.DIRECTORY),
                   DirEntry(b"..", parent.ino, Filetype.DIRECTORY)]
        for name in sorted(inode.children):
            child = inode.children[name]
            entries.append(DirEntry(name.encode("utf-8", "surrogateescape"), child.ino,
                                    child.filetype))
        return entries

    def close(self) -> None:
        pass


class MemoryTree:
    """A backend whose files live in Python memory.

    `max_file_size` bounds each file (bytes); growing past it fails with FBIG.
    """

    def __init__(self, read_only: bool = False, max_file_size: int = 1 << 30) -> None:
        self.read_only = read_only
        self.max_file_size = max_file_size
        self._inos = itertools.count(1)
        self.root = Inode(Filetype.DIRECTORY, next(self._inos))

    # -- helpers for embedders and tests ------------------------------------

    def add_file(self, path: str, data: bytes) -> None:
        """Create or replace the file at `path` (parents must exist)."""
        parent, name = self._parent_of(path)
        inode = parent.children.get(name) or self._new(Filetype.REGULAR_FILE, parent, name)
        inode.data[:] = data

    def read_file(self, path: str) -> bytes:
        parent, name = self._parent_of(path)
        return bytes(self._child(parent, name).data)

    def _parent_of(self, path: str) -> tuple[Inode, str]:
        with Walk(self, self.root, path) as walk:
            name = walk.run(False)
            return walk.parent, name

    # -- DirectoryOps -----------------------------------------------------

    def enter(self, parent: Inode, name: str) -> tuple[Any, str | None]:
        child = self._child(parent, name)
        if child.filetype == Filetype.SYMBOLIC_LINK:
            return None, child.target
        if child.filetype != Filetype.DIRECTORY:
            raise WasiError(Errno.NOTDIR, f"{name!r} is not a directory")
        return child, None

    def link_target(self, parent: Inode, name: str) -> str | None:
        child = parent.children.get(name)
        if child is not None and child.filetype == Filetype.SYMBOLIC_LINK:
            return child.target
        return None

    def release(self, handle: Any) -> None:
        pass

    # -- internals ------------------------------------------------------------

    def writable(self) -> None:
        if self.read_only:
            raise WasiError(Errno.ROFS, "read-only in-memory tree")

    def check_size(self, size: int) -> None:
        if size > self.max_file_size:
            raise WasiError(Errno.FBIG, f"file size {size} > {self.max_file_size} bytes")

    @staticmethod
    def _child(parent: Inode, name: str) -> Inode:
        if name == ".":
            return parent
        child = parent.children.get(name)
        if child is None:
            raise WasiError(Errno.NOENT, f"{name!r} not found")
        return child

    def _new(self, filetype: Filetype, parent: Inode, name: str) -> Inode:
        inode = Inode(filetype, next(self._inos), parent)
        parent.children[name] = inode
        if filetype == Filetype.DIRECTORY:
            parent.nlink += 1
        parent.mtim = parent.ctim = time.time_ns()
        return inode

    def _dir_of(self, node: Any) -> Inode:
        if not isinstance(node, MemoryNode) or node.tree is not self:
            raise WasiError(Errno.XDEV, "node belongs to another backend")
        if node.inode.filetype != Filetype.DIRECTORY:
            raise WasiError(Errno.NOTDIR, "not a directory")
        return node.inode

    # -- Backend -----------------------------------------------------------------

    def open_root(self) -> MemoryNode:
        return MemoryNode(self.root, self, OpenFlags())

    def open(self, dir: MemoryNode, path: str, follow: bool, flags: OpenFlags) -> MemoryNode:
        if flags.write or flags.create or flags.truncate:
            self.writable()
        with Walk(self, self._dir_of(dir), path) as walk:
            name = walk.run(follow)
            inode = walk.parent.children.get(name) if name != "." else walk.parent
            if inode is None:
                if not flags.create:
                    raise WasiError(Errno.NOENT, f"{path!r} not found")
                if walk.trailing_slash or flags.directory:
                    raise WasiError(Errno.ISDIR if walk.trailing_slash else Errno.NOENT, path)
                inode = self._new(Filetype.REGULAR_FILE, walk.parent, name)
            elif flags.create and flags.exclusive:
                raise WasiError(Errno.EXIST, f"{path!r} exists")
            if inode.filetype == Filetype.SYMBOLIC_LINK:
                raise WasiError(Errno.LOOP, f"{path!r} is a symlink")
            is_dir = inode.filetype == Filetype.DIRECTORY
            if (flags.directory or walk.trailing_slash) and not is_dir:
                raise WasiError(Errno.NOTDIR, f"{path!r} is not a directory")
            if is_dir and (flags.write or flags.truncate):
                raise WasiError(Errno.ISDIR, f"{path!r} is a directory")
            node = MemoryNode(inode, self, flags)
            if flags.truncate:
                node.set_size(0)
            return node

    def stat(self, dir: MemoryNode, path: str, follow: bool) -> Stat:
        with Walk(self, self._dir_of(dir), path) as walk:
            inode = self._child(walk.parent, walk.run(follow))
            if walk.trailing_slash and inode.filetype != Filetype.DIRECTORY:
                raise WasiError(Errno.NOTDIR, f"stat {path!r}")
            return inode.stat()

    def set_times(self, dir: MemoryNode, path: str, follow: bool, atim: Any, mtim: Any) -> None:
        self.writable()
        with Walk(self, self._dir_of(dir), path) as walk:
            self._child(walk.parent, walk.run(follow)).set_times(atim, mtim)

    def mkdir(self, dir: MemoryNode, path: str) -> None:
        self.writable()
        with Walk(self, self._dir_of(dir), path) as walk:
            name = walk.run(False)
            if name == "." or name in walk.parent.children:
                raise WasiError(Errno.EXIST, f"{path!r} exists")
            self._new(Filetype.DIRECTORY, walk.parent, name)

    def rmdir(self, dir: MemoryNode, path: str) -> None:
        self.writable()
        with Walk(self, self._dir_of(dir), path) as walk:
            name = walk.run(False)
            if name == ".":
                raise WasiError(Errno.INVAL, f"rmdir {path!r}")
            inode = self._child(walk.parent, name)
            if inode.filetype != Filetype.DIRECTORY:
                raise WasiError(Errno.NOTDIR, f"{path!r} is not a directory")
            if inode.children:
                raise WasiError(Errno.NOTEMPTY, f"{path!r} is not empty")
            del walk.parent.children[name]
            walk.parent.nlink -= 1

    def unlink(self, dir: MemoryNode, path: str) -> None:
        self.writable()
        with Walk(self, self._dir_of(dir), path) as walk:
            name = walk.run(False)
            inode = self._child(walk.parent, name)
            if inode.filetype == Filetype.DIRECTORY:
                raise WasiError(Errno.ISDIR, f"{path!r} is a directory")
            if walk.trailing_slash:
                # "link/" names the link's target: ISDIR for a directory, or
                # the error of resolving the link (as HostDirectory.unlink).
                errno = Errno.NOTDIR
                if inode.filetype == Filetype.SYMBOLIC_LINK:
                    try:
                        if self.stat(dir, path, True).filetype == Filetype.DIRECTORY:
                            errno = Errno.ISDIR
                    except WasiError as exc:
                        errno = exc.errno
                raise WasiError(errno, f"{path!r} is not a directory")
            del walk.parent.children[name]
            inode.nlink -= 1

    def rename(self, dir: MemoryNode, old: str, new_dir: MemoryNode, new: str) -> None:
        self.writable()
        with Walk(self, self._dir_of(dir), old) as src, \
                Walk(self, self._dir_of(new_dir), new) as dst:
            old_name, new_name = src.run(False), dst.run(False)
            inode = self._child(src.parent, old_name)
            is_dir = inode.filetype == Filetype.DIRECTORY
            if (src.trailing_slash or dst.trailing_slash) and not is_dir:
                raise WasiError(Errno.NOTDIR, f"rename {old!r}")
            ancestor: Inode | None = dst.parent
            while ancestor is not None:
                if ancestor is inode:
                    raise WasiError(Errno.INVAL, f"cannot move {old!r} into itself")
                ancestor = ancestor.parent
            existing = dst.parent.children.get(new_name)
            if existing is inode:
                return
            if existing is not None:
                if existing.filetype == Filetype.DIRECTORY:
                    if not is_dir:
                        raise WasiError(Errno.ISDIR, f"{new!r} is a directory")
                    if existing.children:
                        raise WasiError(Errno.NOTEMPTY, f"{new!r} is not empty")
                elif is_dir:
                    raise WasiError(Errno.NOTDIR, f"{new!r} is not a directory")
            del src.parent.children[old_name]
            dst.parent.children[new_name] = inode
            if is_dir:
                inode.parent = dst.parent

    def link(self, dir: MemoryNode, old: str, new_dir: MemoryNode, new: str, follow: bool) -> None:
        self.writable()
        with Walk(self, self._dir_of(dir), old) as src, \
                Walk(self, self._dir_of(new_dir), new) as dst:
            inode = self._child(src.parent, src.run(follow))
            new_name = dst.run(False)
            if inode.filetype == Filetype.DIRECTORY:
                raise WasiError(Errno.PERM, f"hard link to directory {old!r}")
            if dst.trailing_slash:
                raise WasiError(Errno.NOENT, f"link to {new!r}")
            if new_name == "." or new_name in dst.parent.children:
                raise WasiError(Errno.EXIST, f"{new!r} exists")
            dst.parent.children[new_name] = inode
            inode.nlink += 1

    def symlink(self, target: str, dir: MemoryNode, path: str) -> None:
        self.writable()
        if target.startswith("/"):
            raise WasiError(Errno.PERM, f"absolute symlink target {target!r}")
        with Walk(self, self._dir_of(dir), path) as walk:
            name = walk.run(False)
            if name == "." or name in walk.parent.children:
                raise WasiError(Errno.EXIST, f"{path!r} exists")
            if walk.trailing_slash:
                raise WasiError(Errno.NOENT, f"symlink {path!r}")
            self._new(Filetype.SYMBOLIC_LINK, walk.parent, name).target = target

    def readlink(self, dir: MemoryNode, path: str) -> str:
        with Walk(self, self._dir_of(dir), path) as walk:
            inode = self._child(walk.parent, walk.run(False))
            if inode.filetype != Filetype.SYMBOLIC_LINK:
                raise WasiError(Errno.INVAL, f"{path!r} is not a symlink")
            return inode.target
