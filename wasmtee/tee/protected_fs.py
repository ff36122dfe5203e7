"""A WASI file-system backend over protected files (see protected_files.py).

The guest sees an ordinary directory tree. Each regular file's contents live
in a `ProtectedFileStore`: they are read and authenticated on first open,
kept in enclave memory while open, and written back as a new protected blob
on sync and on the last close of a modified file. The directory list is
stored in the same store under a key no guest path can produce.

Symbolic and hard links are not supported (NOTSUP). A blob that fails
authentication makes the operation fail with IO, and the log names the
path, so a host that tampers with storage can stop the guest but cannot
feed it forged data.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from wasmtee.tee.errors import TeeError
from wasmtee.tee.protected_files import ProtectedFileStore
from wasmtee.wasi.constants import Errno, Filetype, WasiError
from wasmtee.wasi.fs import NOW, DirEntry, OpenFlags, Stat, Walk

log = logging.getLogger(__name__)

# Store keys of files start with "/", so this key never names a guest file.
DIRECTORIES_KEY = "meta:directories"
DEVICE_ID = int.from_bytes(b"WTPF", "little")


@dataclass
class FileData:
    """The in-enclave copy of one protected file while it is open or cached."""

    content: bytearray
    atim: int
    mtim: int
    ctim: int
    dirty: bool = False
    open_count: int = 0


def _join(parent: str, name: str) -> str:
    if name == ".":
        return parent
    return f"{parent}/{name}" if parent else name


def _inode(path: str) -> int:
    return int.from_bytes(hashlib.sha256(path.encode()).digest()[:8], "little") >> 1


class ProtectedDirectory:
    """A preopened directory whose files are protected files in `store`.

    Directory handles are paths relative to the root ("" is the root).
    """

    def __init__(self, store: ProtectedFileStore, read_only: bool = False) -> None:
        self.store = store
        self.read_only = read_only
        self._files: set[str] = set()
        self._cache: dict[str, FileData] = {}
        self._dirs: set[str] = {""}
        for path in store.paths():
            if path.startswith("/"):
                relative = path[1:]
                self._files.add(relative)
                self._add_parents(relative)
        if store.exists(DIRECTORIES_KEY):
            listed = self._read_store(DIRECTORIES_KEY, "directory list").decode()
            for directory in filter(None, listed.split("\n")):
                self._dirs.add(directory)
                self._add_parents(directory)

    # -- DirectoryOps for Walk -------------------------------------------------

    def enter(self, parent: str, name: str) -> tuple[Any, str | None]:
        child = _join(parent, name)
        if child in self._dirs:
            return child, None
        if child in self._files:
            raise WasiError(Errno.NOTDIR, f"{child!r} is a file")
        raise WasiError(Errno.NOENT, f"no directory {child!r}")

    def link_target(self, parent: str, name: str) -> str | None:
        return None

    def release(self, handle: Any) -> None:
        pass

    # -- Backend -----------------------------------------------------------------

    def open_root(self) -> ProtectedDirNode:
        return ProtectedDirNode(self, "")

    def open(self, dir: Any, path: str, follow: bool, flags: OpenFlags) -> Any:
        with Walk(self, self._handle(dir), path) as walk:
            name = walk.run(follow_last=False)
            target = _join(walk.parent, name)
            wants_directory = flags.directory or walk.trailing_slash
            if target in self._dirs:
                if flags.create and flags.exclusive:
                    raise WasiError(Errno.EXIST, f"open {path!r}")
                if flags.write or flags.truncate:
                    raise WasiError(Errno.ISDIR, f"open {path!r} for writing")
                return ProtectedDirNode(self, target)
            if target in self._files:
                if wants_directory:
                    raise WasiError(Errno.NOTDIR, f"open {path!r}")
                if flags.create and flags.exclusive:
                    raise WasiError(Errno.EXIST, f"open {path!r}")
                data = self._load(target)
            else:
                if not flags.create:
                    raise WasiError(Errno.NOENT, f"open {path!r}")
                if wants_directory:
                    raise WasiError(Errno.NOENT, f"open {path!r} as a directory")
                self._require_writable()
                now = time.time_ns()
                data = FileData(bytearray(), now, now, now, dirty=True)
                self._files.add(target)
                self._cache[target] = data
            if (flags.write or flags.truncate) and self.read_only:
                self._require_writable()
            if flags.truncate and data.content:
                data.content.clear()
                data.dirty = True
                data.mtim = data.ctim = time.time_ns()
            data.open_count += 1
            node = ProtectedFileNode(self, target, data, flags.read, flags.write, flags.append)
            if data.dirty:
                node.sync()
            return node

    def stat(self, dir: Any, path: str, follow: bool) -> Stat:
        with Walk(self, self._handle(dir), path) as walk:
            name = walk.run(follow)
            target = _join(walk.parent, name)
            if target in self._dirs:
                return self._dir_stat(target)
            if target in self._files:
                if walk.trailing_slash:
                    raise WasiError(Errno.NOTDIR, f"stat {path!r}")
                return self._file_stat(target, self._load(target))
            raise WasiError(Errno.NOENT, f"stat {path!r}")

    def set_times(self, dir: Any, path: str, follow: bool, atim: Any, mtim: Any) -> None:
        self._require_writable()
        with Walk(self, self._handle(dir), path) as walk:
            name = walk.run(follow)
            target = _join(walk.parent, name)
            if target in self._dirs:
                return  # directory times are not kept
            if target not in self._files:
                raise WasiError(Errno.NOENT, f"set times of {path!r}")
            _set_times(self._load(target), atim, mtim)

    def mkdir(self, dir: Any, path: str) -> None:
        self._require_writable()
        with Walk(self, self._handle(dir), path) as walk:
            name = walk.run(False)
            target = _join(walk.parent, name)
            if target in self._dirs or target in self._files:
                raise WasiError(Errno.EXIST, f"mkdir {path!r}")
            self._dirs.add(target)
            self._save_directories()

    def rmdir(self, dir: Any, path: str) -> None:
        self._require_writable()
        with Walk(self, self._handle(dir), path) as walk:
            name = walk.run(False)
            target = _join(walk.parent, name)
            if name == "." or target == "":
                raise WasiError(Errno.INVAL, f"rmdir {path!r}")
            if target in self._files:
                raise WasiError(Errno.NOTDIR, f"rmdir {path!r}")
            if target not in self._dirs:
                raise WasiError(Errno.NOENT, f"rmdir {path!r}")
            if self._children(target):
                raise WasiError(Errno.NOTEMPTY, f"rmdir {path!r}")
            self._dirs.discard(target)
            self._save_directories()

    def unlink(self, dir: Any, path: str) -> None:
        self._require_writable()
        with Walk(self, self._handle(dir), path) as walk:
            name = walk.run(False)
            target = _join(walk.parent, name)
            if target in self._dirs:
                raise WasiError(Errno.ISDIR, f"unlink {path!r}")
            if target not in self._files:
                raise WasiError(Errno.NOENT, f"unlink {path!r}")
            if walk.trailing_slash:
                raise WasiError(Errno.NOTDIR, f"unlink {path!r}")
            self._files.discard(target)
            self._cache.pop(target, None)
            self._delete_store("/" + target)

    def rename(self, dir: Any, old: str, new_dir: Any, new: str) -> None:
        self._require_writable()
        with Walk(self, self._handle(dir), old) as src, \
                Walk(self, self._handle(new_dir), new) as dst:
            src_name = src.run(False)
            source = _join(src.parent, src_name)
            dst_name = dst.run(False)
            target = _join(dst.parent, dst_name)
            if source == "" or target == "":
                raise WasiError(Errno.INVAL, f"rename {old!r} to {new!r}")
            if source in self._files:
                if src.trailing_slash or dst.trailing_slash:
                    raise WasiError(Errno.NOTDIR, f"rename {old!r}")
                if target in self._dirs:
                    raise WasiError(Errno.ISDIR, f"rename {old!r} to {new!r}")
                self._move_file(source, target)
            elif source in self._dirs:
                self._move_directory(source, target, old, new)
            else:
                raise WasiError(Errno.NOENT, f"rename {old!r}")

    def link(self, dir: Any, old: str, new_dir: Any, new: str, follow: bool) -> None:
        raise WasiError(Errno.NOTSUP, "hard links are not supported on protected files")

    def symlink(self, target: str, dir: Any, path: str) -> None:
        raise WasiError(Errno.NOTSUP, "symbolic links are not supported on protected files")

    def readlink(self, dir: Any, path: str) -> str:
        with Walk(self, self._handle(dir), path) as walk:
            name = walk.run(False)
            target = _join(walk.parent, name)
            if target in self._dirs or target in self._files:
                raise WasiError(Errno.INVAL, f"{path!r} is not a symbolic link")
            raise WasiError(Errno.NOENT, f"readlink {path!r}")

    # -- helpers used by the nodes ---------------------------------------------------

    def persist(self, path: str, data: FileData) -> None:
        """Write a modified file back to the store."""
        if not data.dirty or path not in self._files:
            return
        try:
            self.store.write("/" + path, bytes(data.content))
        except TeeError as exc:
            log.error("cannot store protected file %r: %s", path, exc)
            raise WasiError(Errno.IO, f"store {path!r}") from None
        data.dirty = False

    def closed(self, path: str, data: FileData) -> None:
        data.open_count -= 1
        self.persist(path, data)
        if data.open_count <= 0:
            self._cache.pop(path, None)

    def children(self, directory: str) -> list[DirEntry]:
        entries = [DirEntry(b".", _inode(directory), Filetype.DIRECTORY),
                   DirEntry(b"..", _inode(directory.rpartition("/")[0]), Filetype.DIRECTORY)]
        for name, filetype in sorted(self._children(directory).items()):
            entries.append(DirEntry(name.encode(), _inode(_join(directory, name)), filetype))
        return entries

    def dir_stat(self, directory: str) -> Stat:
        return self._dir_stat(directory)

    def file_stat(self, path: str, data: FileData) -> Stat:
        return self._file_stat(path, data)

    def require_writable(self) -> None:
        self._require_writable()

    # -- internals -----------------------------------------------------------------

    def _handle(self, node: Any) -> str:
        if isinstance(node, ProtectedDirNode) and node.backend is self:
            return node.path
        if isinstance(node, ProtectedFileNode) and node.backend is self:
            raise WasiError(Errno.NOTDIR, f"{node.path!r} is not a directory")
        raise WasiError(Errno.XDEV, "node belongs to another backend")

    def _require_writable(self) -> None:
        if self.read_only:
            raise WasiError(Errno.ROFS, "read-only protected directory")

    def _add_parents(self, path: str) -> None:
        parent = path.rpartition("/")[0]
        while parent and parent not in self._dirs:
            self._dirs.add(parent)
            parent = parent.rpartition("/")[0]

    def _children(self, directory: str) -> dict[str, Filetype]:
        prefix = f"{directory}/" if directory else ""
        found: dict[str, Filetype] = {}
        for path, filetype in [(p, Filetype.REGULAR_FILE) for p in self._files] + [
            (d, Filetype.DIRECTORY) for d in self._dirs
        ]:
            if path and path.startswith(prefix) and "/" not in path[len(prefix):]:
                found[path[len(prefix):]] = filetype
        return found

    def _load(self, path: str) -> FileData:
        data = self._cache.get(path)
        if data is None:
            content = self._read_store("/" + path, path)
            now = time.time_ns()
            data = FileData(bytearray(content), now, now, now)
            self._cache[path] = data
        return data

    def _read_store(self, key: str, description: str) -> bytes:
        try:
            return self.store.read(key)
        except TeeError as exc:
            log.error("protected file %r failed its check: %s", description, exc)
            raise WasiError(Errno.IO, f"protected file {description!r} failed its check") from None

    def _delete_store(self, key: str) -> None:
        try:
            self.store.delete(key)
        except TeeError as exc:
            log.error("cannot delete protected file %r: %s", key, exc)
            raise WasiError(Errno.IO, f"delete {key!r}") from None

    def _save_directories(self) -> None:
        listing = "\n".join(sorted(d for d in self._dirs if d)).encode()
        try:
            self.store.write(DIRECTORIES_KEY, listing)
        except TeeError as exc:
            log.error("cannot store the protected directory list: %s", exc)
            raise WasiError(Errno.IO, "store the directory list") from None

    def _move_file(self, source: str, target: str) -> None:
        data = self._load(source)
        self._files.add(target)
        self._cache[target] = FileData(bytearray(data.content), data.atim, data.mtim,
                                       time.time_ns(), dirty=True)
        self.persist(target, self._cache[target])
        if data.open_count <= 0:
            self._cache.pop(target, None)
        self._files.discard(source)
        self._cache.pop(source, None)
        self._delete_store("/" + source)

    def _move_directory(self, source: str, target: str, old: str, new: str) -> None:
        if target in self._files:
            raise WasiError(Errno.NOTDIR, f"rename {old!r} to {new!r}")
        if target == source:
            return
        if target.startswith(source + "/"):
            raise WasiError(Errno.INVAL, f"rename {old!r} into itself")
        if target in self._dirs and self._children(target):
            raise WasiError(Errno.NOTEMPTY, f"rename {old!r} to {new!r}")
        prefix = source + "/"
        for path in sorted(p for p in self._files if p.startswith(prefix)):
            self._move_file(path, target + "/" + path[len(prefix):])
        moved = {d for d in self._dirs if d == source or d.startswith(prefix)}
        self._dirs -= moved
        self._dirs |= {target + d[len(source):] for d in moved}
        self._save_directories()

    @staticmethod
    def _dir_stat(directory: str) -> Stat:
        return Stat(DEVICE_ID, _inode(directory), Filetype.DIRECTORY, 2, 0, 0, 0, 0)

    @staticmethod
    def _file_stat(path: str, data: FileData) -> Stat:
        return Stat(DEVICE_ID, _inode(path), Filetype.REGULAR_FILE, 1, len(data.content),
                    data.atim, data.mtim, data.ctim)


def _set_times(data: FileData, atim: Any, mtim: Any) -> None:
    now = time.time_ns()
    if atim is not None:
        data.atim = now if atim is NOW else int(atim)
    if mtim is not None:
        data.mtim = now if mtim is NOW else int(mtim)
    data.ctim = now


@dataclass
class ProtectedDirNode:
    """An open directory of a ProtectedDirectory."""

    backend: ProtectedDirectory
    path: str
    filetype: Filetype = field(default=Filetype.DIRECTORY)

    def read(self, n: int) -> bytes:
        raise WasiError(Errno.ISDIR, "read on a directory")

    def write(self, data: bytes) -> int:
        raise WasiError(Errno.BADF, "write on a directory")

    def pread(self, n: int, offset: int) -> bytes:
        raise WasiError(Errno.ISDIR, "pread on a directory")

    def pwrite(self, data: bytes, offset: int) -> int:
        raise WasiError(Errno.BADF, "pwrite on a directory")

    def seek(self, offset: int, whence: int) -> int:
        raise WasiError(Errno.ISDIR, "seek on a directory")

    def stat(self) -> Stat:
        return self.backend.dir_stat(self.path)

    def set_size(self, size: int) -> None:
        raise WasiError(Errno.ISDIR, "truncate a directory")

    def set_times(self, atim: Any, mtim: Any) -> None:
        self.backend.require_writable()

    def sync(self) -> None:
        pass

    def datasync(self) -> None:
        pass

    def allocate(self, offset: int, length: int) -> None:
        raise WasiError(Errno.ISDIR, "allocate on a directory")

    def advise(self, offset: int, length: int, advice: int) -> None:
        pass

    def set_append(self, flag: bool) -> None:
        pass

    def readdir(self) -> list[DirEntry]:
        return self.backend.children(self.path)

    def close(self) -> None:
        pass


class ProtectedFileNode:
    """An open protected file: reads and writes go to the in-enclave copy."""

    filetype = Filetype.REGULAR_FILE

    def __init__(self, backend: ProtectedDirectory, path: str, data: FileData,
                 readable: bool, writable: bool, append: bool) -> None:
        self.backend = backend
        self.path = path
        self.data = data
        self.readable = readable
        self.writable = writable
        self.append = append
        self.position = 0
        self._closed = False

    def _check_read(self) -> None:
        if not self.readable:
            raise WasiError(Errno.BADF, f"{self.path!r} is not open for reading")

    def _check_write(self, end: int) -> None:
        if not self.writable:
            raise WasiError(Errno.BADF, f"{self.path!r} is not open for writing")
        self.backend.require_writable()
        if end > self.backend.store.max_file_size:
            raise WasiError(Errno.FBIG, f"{self.path!r} would exceed "
                            f"{self.backend.store.max_file_size} bytes")

    def read(self, n: int) -> bytes:
        chunk = self.pread(n, self.position)
        self.position += len(chunk)
        return chunk

    def write(self, data: bytes) -> int:
        if self.append:
            self.position = len(self.data.content)
        written = self.pwrite(data, self.position)
        self.position += written
        return written

    def pread(self, n: int, offset: int) -> bytes:
        self._check_read()
        if n < 0 or offset < 0:
            raise WasiError(Errno.INVAL, "negative read size or offset")
        self.data.atim = time.time_ns()
        return bytes(self.data.content[offset:offset + n])

    def pwrite(self, data: bytes, offset: int) -> int:
        if offset < 0:
            raise WasiError(Errno.INVAL, "negative write offset")
        self._check_write(offset + len(data))
        content = self.data.content
        if offset > len(content):
            content.extend(bytes(offset - len(content)))
        content[offset:offset + len(data)] = data
        self.data.dirty = True
        self.data.mtim = self.data.ctim = time.time_ns()
        return len(data)

    def seek(self, offset: int, whence: int) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.position,
                os.SEEK_END: len(self.data.content)}.get(whence)
        if base is None or base + offset < 0:
            raise WasiError(Errno.INVAL, f"seek to {offset} from {whence}")
        self.position = base + offset
        return self.position

    def stat(self) -> Stat:
        return self.backend.file_stat(self.path, self.data)

    def set_size(self, size: int) -> None:
        if size < 0:
            raise WasiError(Errno.INVAL, f"negative size {size}")
        self._check_write(size)
        content = self.data.content
        if size < len(content):
            del content[size:]
        else:
            content.extend(bytes(size - len(content)))
        self.data.dirty = True
        self.data.mtim = self.data.ctim = time.time_ns()

    def set_times(self, atim: Any, mtim: Any) -> None:
        self.backend.require_writable()
        _set_times(self.data, atim, mtim)

    def sync(self) -> None:
        self.backend.persist(self.path, self.data)

    def datasync(self) -> None:
        self.backend.persist(self.path, self.data)

    def allocate(self, offset: int, length: int) -> None:
        if offset < 0 or length <= 0:
            raise WasiError(Errno.INVAL, "invalid allocate range")
        if offset + length > len(self.data.content):
            self.set_size(offset + length)

    def advise(self, offset: int, length: int, advice: int) -> None:
        pass

    def set_append(self, flag: bool) -> None:
        self.append = flag

    def readdir(self) -> list[DirEntry]:
        raise WasiError(Errno.NOTDIR, "readdir on a file")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.backend.closed(self.path, self.data)
