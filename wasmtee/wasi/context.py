"""The state of one WASI instance: its descriptor table, arguments and environment."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from wasmtee.wasi.config import WasiConfig
from wasmtee.wasi.constants import (
    RIGHTS_ALL, RIGHTS_DIRECTORY, RIGHTS_FILE, RIGHTS_SOCKET, RIGHTS_STDIO,
    Errno, Filetype, Rights, WasiError,
)
from wasmtee.wasi.fs import DirEntry
from wasmtee.wasi.streams import SocketNode, StreamNode

logger = logging.getLogger(__name__)

MAX_FDS = 4096  # open descriptors per instance, so one guest cannot use up the host process's fds


@dataclass
class FdEntry:
    """One guest file descriptor."""

    node: Any
    rights_base: int
    rights_inheriting: int
    flags: int = 0
    backend: Any = None  # fs.py backend for files and directories, else None
    preopen_name: bytes | None = None
    dir_entries: list[DirEntry] | None = field(default=None, repr=False)

    @property
    def filetype(self) -> Filetype:
        return Filetype(self.node.filetype)


class WasiContext:
    """Descriptor table and process state of one WASI guest.

    Preopened directories take fds 3, 4, ... in the order of
    `config.preopens`, then the preopened sockets follow.
    """

    def __init__(self, config: WasiConfig, interrupt_cell: list[bool] | None = None) -> None:
        self.config = config
        # The store's interrupt flag: poll_oneoff stops waiting when it turns True.
        self.interrupt_cell = interrupt_cell
        self.args = [a.encode("utf-8") for a in config.argv]
        self.environ = [f"{k}={v}".encode("utf-8") for k, v in config.env.items()]
        self.fds: dict[int, FdEntry] = {}
        stdio = int(RIGHTS_STDIO)
        self.fds[0] = FdEntry(StreamNode(config.stdin, True, 0), stdio & ~Rights.FD_WRITE, 0)
        self.fds[1] = FdEntry(StreamNode(config.stdout, False, 1), stdio & ~Rights.FD_READ, 0)
        self.fds[2] = FdEntry(StreamNode(config.stderr, False, 2), stdio & ~Rights.FD_READ, 0)
        for preopen in config.preopens:
            self._add_preopen(preopen.guest_path, preopen.backend)
        for sock in config.sockets:
            rights = int(RIGHTS_SOCKET)
            self.fds[self._free_fd()] = FdEntry(SocketNode(sock), rights, rights)

    def _add_preopen(self, guest_path: str, backend: Any) -> None:
        # A read-only preopen reports the same rights as a writable one, as
        # wasmtime does. wasi-libc masks the rights that path_open requests with
        # the directory's inheriting rights, so without FD_WRITE there an
        # O_WRONLY open would look like O_RDONLY. Preview1 rejects each mutation
        # of a read-only preopen with PERM instead.
        rights = int(RIGHTS_DIRECTORY)
        inheriting = int(RIGHTS_DIRECTORY | RIGHTS_FILE)
        node = backend.open_root()
        fd = self._free_fd()
        self.fds[fd] = FdEntry(node, rights, inheriting, 0, backend,
                               guest_path.encode("utf-8"))
        logger.debug("preopened %r as fd %d", guest_path, fd)

    def _free_fd(self) -> int:
        fd = 3
        while fd in self.fds:
            fd += 1
        if fd >= MAX_FDS:
            raise WasiError(Errno.NFILE, f"more than {MAX_FDS} open descriptors")
        return fd

    def get(self, fd: int, rights: int = 0) -> FdEntry:
        """Return the entry of `fd`, raising BADF when closed and NOTCAPABLE without `rights`."""
        entry = self.fds.get(fd)
        if entry is None:
            raise WasiError(Errno.BADF, f"fd {fd} is not open")
        if rights & ~entry.rights_base:
            missing = Rights(rights & ~entry.rights_base)
            raise WasiError(Errno.NOTCAPABLE, f"fd {fd} lacks {missing!r}")
        return entry

    def get_dir(self, fd: int, rights: int) -> FdEntry:
        """Return the directory entry of `fd`.

        Raises BADF for a stream (stdio or a socket), as wasmtime does, and
        NOTDIR for a file.
        """
        entry = self.get(fd)
        if entry.backend is None:
            raise WasiError(Errno.BADF, f"fd {fd} is a stream, not a directory")
        if entry.filetype != Filetype.DIRECTORY:
            raise WasiError(Errno.NOTDIR, f"fd {fd} is not a directory")
        return self.get(fd, rights)

    def insert(self, entry: FdEntry) -> int:
        fd = self._free_fd()
        self.fds[fd] = entry
        return fd

    def close(self) -> None:
        """Close every descriptor; the context is unusable afterwards."""
        for entry in self.fds.values():
            try:
                entry.node.close()
            except (OSError, WasiError):
                pass
        self.fds.clear()


def rights_for(filetype: Filetype) -> int:
    if filetype == Filetype.DIRECTORY:
        return int(RIGHTS_DIRECTORY)
    if filetype == Filetype.REGULAR_FILE:
        return int(RIGHTS_FILE)
    return RIGHTS_ALL
