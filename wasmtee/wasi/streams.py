"""Nodes for standard streams and sockets, alongside the file-system Nodes of fs.py."""

from __future__ import annotations

import os
import socket
from typing import Any, BinaryIO

from wasmtee.wasi.constants import Errno, Filetype, WasiError, errno_from_os
from wasmtee.wasi.fs import DirEntry, Stat


class _NotAFile:
    """Operations that streams and sockets reject, as Linux does for pipes."""

    filetype = Filetype.UNKNOWN

    def pread(self, n: int, offset: int) -> bytes:
        raise WasiError(Errno.SPIPE, "pread on a stream")

    def pwrite(self, data: bytes, offset: int) -> int:
        raise WasiError(Errno.SPIPE, "pwrite on a stream")

    def seek(self, offset: int, whence: int) -> int:
        raise WasiError(Errno.SPIPE, "seek on a stream")

    def set_size(self, size: int) -> None:
        raise WasiError(Errno.INVAL, "truncate on a stream")

    def set_times(self, atim: Any, mtim: Any) -> None:
        raise WasiError(Errno.NOTSUP, "set times on a stream")

    def sync(self) -> None:
        raise WasiError(Errno.INVAL, "sync on a stream")

    def datasync(self) -> None:
        raise WasiError(Errno.INVAL, "datasync on a stream")

    def allocate(self, offset: int, length: int) -> None:
        raise WasiError(Errno.SPIPE, "allocate on a stream")

    def advise(self, offset: int, length: int, advice: int) -> None:
        raise WasiError(Errno.SPIPE, "advise on a stream")

    def set_append(self, flag: bool) -> None:
        pass

    def readdir(self) -> list[DirEntry]:
        raise WasiError(Errno.NOTDIR, "readdir on a stream")

    def stat(self) -> Stat:
        return Stat(0, 0, self.filetype, 1, 0, 0, 0, 0)


class StreamNode(_NotAFile):
    """A standard stream: a host fd ("inherit"), a Python binary file, bytes, or nothing.

    Input given as bytes is read from memory. A stream of None reads as
    empty and discards writes.

    The filetype is CHARACTER_DEVICE only when the stream is a terminal, and
    UNKNOWN otherwise (a regular file, a pipe, a socket, bytes or nothing),
    as wasmtime 50 reports standard streams. wasi-libc's isatty() tests for
    CHARACTER_DEVICE, so a redirected stream gets full buffering.
    """

    def __init__(self, source: Any, readable: bool, host_fd: int | None = None) -> None:
        self.readable = readable
        self.host_fd = host_fd if source == "inherit" else None
        self.file: BinaryIO | None = None
        self.data: bytes | None = None
        self.position = 0
        if isinstance(source, (bytes, bytearray)):
            self.data = bytes(source)
        elif source is not None and source != "inherit":
            self.file = source
        self.filetype = Filetype.CHARACTER_DEVICE if self._is_terminal() else Filetype.UNKNOWN

    def _is_terminal(self) -> bool:
        try:
            if self.host_fd is not None:
                return os.isatty(self.host_fd)
            isatty = getattr(self.file, "isatty", None)
            return bool(isatty()) if callable(isatty) else False
        except (OSError, ValueError):
            # A closed host fd or file object is no terminal.
            return False

    def read(self, n: int) -> bytes:
        if not self.readable:
            raise WasiError(Errno.BADF, "read from an output stream")
        if self.host_fd is not None:
            # TODO: a blocking read of inherited stdin ignores the store's interrupt,
            # so `wasmtee run --timeout` cannot stop a guest that waits here.
            try:
                return os.read(self.host_fd, n)
            except OSError as exc:
                raise WasiError(errno_from_os(exc), "read stdin") from None
        if self.file is not None:
            return self.file.read(n) or b""
        if self.data is None:
            return b""
        chunk = self.data[self.position:self.position + n]
        self.position += len(chunk)
        return chunk

    def write(self, data: bytes) -> int:
        if self.readable:
            raise WasiError(Errno.BADF, "write to an input stream")
        if self.host_fd is not None:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self.host_fd, view):]
            except OSError as exc:
                raise WasiError(errno_from_os(exc), "write output") from None
        elif self.file is not None:
            self.file.write(data)
            self.file.flush()
        return len(data)

    def stat(self) -> Stat:
        if self.host_fd is not None:
            try:
                info = os.fstat(self.host_fd)
                return Stat(info.st_dev, info.st_ino, self.filetype, info.st_nlink, 0,
                            info.st_atime_ns, info.st_mtime_ns, info.st_ctime_ns)
            except OSError:
                pass
        return super().stat()

    def fileno(self) -> int | None:
        """The host fd to wait on in poll_oneoff, when there is one."""
        return self.host_fd

    def close(self) -> None:
        self.host_fd = None
        self.file = None


class SocketNode(_NotAFile):
    """A preopened (listening) or accepted stream socket."""

    filetype = Filetype.SOCKET_STREAM

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def read(self, n: int) -> bytes:
        return self.recv(n, 0)

    def write(self, data: bytes) -> int:
        return self.send(data)

    def recv(self, n: int, flags: int) -> bytes:
        try:
            return self.sock.recv(n, flags)
        except BlockingIOError:
            raise WasiError(Errno.AGAIN, "recv would block") from None
        except OSError as exc:
            raise WasiError(errno_from_os(exc), "recv") from None

    def send(self, data: bytes) -> int:
        try:
            return self.sock.send(data)
        except BlockingIOError:
            raise WasiError(Errno.AGAIN, "send would block") from None
        except OSError as exc:
            raise WasiError(errno_from_os(exc), "send") from None

    def accept(self, nonblocking: bool) -> SocketNode:
        try:
            conn, _address = self.sock.accept()
        except BlockingIOError:
            raise WasiError(Errno.AGAIN, "no pending connection") from None
        except OSError as exc:
            raise WasiError(errno_from_os(exc), "accept") from None
        conn.setblocking(not nonblocking)
        return SocketNode(conn)

    def shutdown(self, how: int) -> None:
        try:
            self.sock.shutdown(how)
        except OSError as exc:
            raise WasiError(errno_from_os(exc), "shutdown") from None

    def set_nonblocking(self, flag: bool) -> None:
        self.sock.setblocking(not flag)

    def fileno(self) -> int | None:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()
