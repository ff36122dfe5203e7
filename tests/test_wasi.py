"""WASI preview1 host functions, called directly against a fake linear memory."""

from __future__ import annotations

import io
import os
import socket
import struct

import pytest

from wasmtee.errors import Trap, TrapCode, WasiExit
from wasmtee.wasi import WasiConfig, WasiContext, host_functions
from wasmtee.wasi.constants import Errno, Filetype, Rights

PAGE = 65536
READ_DIR = int(Rights.FD_READ | Rights.FD_READDIR | Rights.PATH_OPEN)


class FakeMemory:
    def __init__(self) -> None:
        self.buf = bytearray(4 * PAGE)
        self.size = 4 * PAGE


class FakeCaller:
    def __init__(self, memory: FakeMemory) -> None:
        self.memory = memory


class Guest:
    """Calls WASI functions by name and hands out scratch memory."""

    def __init__(self, config: WasiConfig, module: str = "wasi_snapshot_preview1") -> None:
        self.mem = FakeMemory()
        self.ctx = WasiContext(config)
        self.funcs = host_functions(self.ctx, module)
        self.top = 1024

    def __getattr__(self, name: str):
        func = self.funcs[name]
        return lambda *args: func.callable(FakeCaller(self.mem), *args)

    def alloc(self, data: bytes | int) -> int:
        size = data if isinstance(data, int) else len(data)
        address = self.top
        self.top += (size + 15) & ~15
        if not isinstance(data, int):
            self.mem.buf[address:address + size] = data
        return address

    def str(self, text: str) -> tuple[int, int]:
        raw = text.encode()
        return self.alloc(raw), len(raw)

    def u32(self, address: int) -> int:
        return struct.unpack_from("<I", self.mem.buf, address)[0]

    def u64(self, address: int) -> int:
        return struct.unpack_from("<Q", self.mem.buf, address)[0]

    def iov(self, *buffers: tuple[int, int]) -> int:
        return self.alloc(b"".join(struct.pack("<II", a, n) for a, n in buffers))

    def open(self, dirfd: int, path: str, oflags: int = 0, rights: int = (1 << 30) - 1,
             fdflags: int = 0, follow: int = 1) -> tuple[int, int]:
        out = self.alloc(4)
        p, n = self.str(path)
        err = self.path_open(dirfd, follow, p, n, oflags, rights, rights, fdflags, out)
        return err, self.u32(out)

    def write(self, fd: int, data: bytes) -> tuple[int, int]:
        buf = self.alloc(data)
        out = self.alloc(4)
        err = self.fd_write(fd, self.iov((buf, len(data))), 1, out)
        return err, self.u32(out)

    def read(self, fd: int, n: int) -> tuple[int, bytes]:
        buf = self.alloc(n)
        out = self.alloc(4)
        err = self.fd_read(fd, self.iov((buf, n)), 1, out)
        return err, bytes(self.mem.buf[buf:buf + self.u32(out)])


@pytest.fixture
def sandbox(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "hello.txt").write_bytes(b"hello world\n")
    (root / "sub").mkdir()
    outside = tmp_path / "secret.txt"
    outside.write_bytes(b"secret")
    config = WasiConfig(argv=["prog", "arg1"], env={"A": "1"})
    config.preopen_dir(str(root), "/sandbox")
    return Guest(config), root, tmp_path


def test_args_and_environ(sandbox):
    g, _root, _tmp = sandbox
    count, size = g.alloc(4), g.alloc(4)
    assert g.args_sizes_get(count, size) == 0
    assert (g.u32(count), g.u32(size)) == (2, len(b"prog\0arg1\0"))
    ptrs, buf = g.alloc(8), g.alloc(32)
    assert g.args_get(ptrs, buf) == 0
    assert bytes(g.mem.buf[buf:buf + 10]) == b"prog\0arg1\0"
    assert g.u32(ptrs + 4) == buf + 5
    assert g.environ_sizes_get(count, size) == 0
    assert (g.u32(count), g.u32(size)) == (1, 4)
    assert g.environ_get(ptrs, buf) == 0
    assert bytes(g.mem.buf[buf:buf + 4]) == b"A=1\0"
    with pytest.raises(Trap, match="out of bounds memory access"):
        g.args_get(PAGE * 4 - 2, buf)


def test_clocks_random_and_yield(sandbox):
    g, _root, _tmp = sandbox
    out = g.alloc(8)
    for clock in range(4):
        assert g.clock_res_get(clock, out) == 0
        assert g.u64(out) >= 1
        assert g.clock_time_get(clock, 1, out) == 0
    assert g.clock_time_get(0, 1, out) == 0
    assert abs(g.u64(out) / 1e9 - __import__("time").time()) < 5
    assert g.clock_time_get(9, 1, out) == Errno.INVAL
    assert g.clock_res_get(9, out) == Errno.INVAL
    buf = g.alloc(64)
    assert g.random_get(buf, 64) == 0
    assert bytes(g.mem.buf[buf:buf + 64]) != bytes(64)
    with pytest.raises(Trap):
        g.random_get(PAGE * 4 - 8, 64)
    assert g.sched_yield() == 0
    assert g.proc_raise(2) == Errno.NOTSUP
    with pytest.raises(WasiExit) as info:
        g.proc_exit(7)
    assert info.value.code == 7


def test_prestat(sandbox):
    g, _root, _tmp = sandbox
    out = g.alloc(8)
    assert g.fd_prestat_get(3, out) == 0
    assert g.u32(out + 4) == len("/sandbox")
    name = g.alloc(16)
    assert g.fd_prestat_dir_name(3, name, 16) == 0
    assert bytes(g.mem.buf[name:name + 8]) == b"/sandbox"
    assert g.fd_prestat_dir_name(3, name, 3) == Errno.NAMETOOLONG
    assert g.fd_prestat_get(4, out) == Errno.BADF
    assert g.fd_prestat_get(1, out) == Errno.BADF


def test_stdio_capture():
    stdout = io.BytesIO()
    g = Guest(WasiConfig(stdin=b"input", stdout=stdout))
    assert g.write(1, b"hi\n") == (0, 3)
    assert stdout.getvalue() == b"hi\n"
    assert g.write(2, b"discarded") == (0, 9)
    assert g.read(0, 3) == (0, b"inp")
    assert g.read(0, 10) == (0, b"ut")
    # Reading stdout is BADF, as in wasmtime 50.
    assert g.read(1, 4)[0] == Errno.BADF
    out = g.alloc(24)
    assert g.fd_fdstat_get(1, out) == 0
    # A BytesIO is no terminal, so the stream is not a character device.
    assert g.mem.buf[out] == Filetype.UNKNOWN
    assert g.fd_seek(1, 0, 0, out) == Errno.SPIPE


def test_stream_filetype_follows_host_fd(tmp_path):
    """Only a terminal is a character device, as wasmtime 50 reports it."""
    from wasmtee.wasi.streams import StreamNode

    read_end, write_end = os.pipe()
    terminal, terminal_peer = os.openpty()
    regular = os.open(tmp_path / "out", os.O_CREAT | os.O_WRONLY)
    devnull = os.open(os.devnull, os.O_RDWR)
    left, right = socket.socketpair()
    try:
        cases = [
            (write_end, Filetype.UNKNOWN),
            (read_end, Filetype.UNKNOWN),
            (regular, Filetype.UNKNOWN),
            (devnull, Filetype.UNKNOWN),  # a character device, but not a terminal
            (left.fileno(), Filetype.UNKNOWN),
            (terminal_peer, Filetype.CHARACTER_DEVICE),
        ]
        for fd, expected in cases:
            node = StreamNode("inherit", False, fd)
            assert node.filetype == expected, fd
            assert node.stat().filetype == expected, fd
    finally:
        for fd in (read_end, write_end, terminal, terminal_peer, regular, devnull):
            os.close(fd)
        left.close()
        right.close()
    assert StreamNode(b"input", True).filetype == Filetype.UNKNOWN
    assert StreamNode(None, False).filetype == Filetype.UNKNOWN
    with open(tmp_path / "file", "wb") as handle:
        assert StreamNode(handle, False).filetype == Filetype.UNKNOWN


def test_stdio_rights():
    g = Guest(WasiConfig(stdin=b"", stdout=io.BytesIO(), stderr=io.BytesIO()))
    out = g.alloc(24)
    for fd, present, absent in ((0, Rights.FD_READ, Rights.FD_WRITE),
                                (1, Rights.FD_WRITE, Rights.FD_READ),
                                (2, Rights.FD_WRITE, Rights.FD_READ)):
        assert g.fd_fdstat_get(fd, out) == 0
        base = g.u64(out + 8)
        assert base & present, fd
        assert not base & absent, fd
        # wasi-libc's isatty() also requires FD_SEEK and FD_TELL to be absent.
        assert not base & (Rights.FD_SEEK | Rights.FD_TELL), fd
        assert g.u64(out + 16) == 0, fd


def test_file_io_roundtrip(sandbox):
    g, root, _tmp = sandbox
    err, fd = g.open(3, "new.txt", oflags=1)
    assert err == 0
    assert g.write(fd, b"abcdef") == (0, 6)
    out = g.alloc(8)
    assert g.fd_tell(fd, out) == 0
    assert g.u64(out) == 6
    assert g.fd_seek(fd, 1, 0, out) == 0
    assert g.u64(out) == 1
    assert g.read(fd, 3) == (0, b"bcd")
    assert g.fd_seek(fd, (-2) & (2**64 - 1), 2, out) == 0
    assert g.u64(out) == 4
    assert g.fd_seek(fd, (-100) & (2**64 - 1), 1, out) == Errno.INVAL
    assert g.fd_seek(fd, 0, 7, out) == Errno.INVAL
    buf = g.alloc(b"XY")
    assert g.fd_pwrite(fd, g.iov((buf, 2)), 1, 0, out) == 0
    assert g.u32(out) == 2
    rbuf = g.alloc(6)
    assert g.fd_pread(fd, g.iov((rbuf, 4)), 1, 2, out) == 0
    assert bytes(g.mem.buf[rbuf:rbuf + g.u32(out)]) == b"cdef"
    assert (root / "new.txt").read_bytes() == b"XYcdef"
    assert g.fd_filestat_set_size(fd, 2) == 0
    stat = g.alloc(64)
    assert g.fd_filestat_get(fd, stat) == 0
    assert g.mem.buf[stat + 16] == Filetype.REGULAR_FILE
    assert g.u64(stat + 32) == 2
    assert g.fd_filestat_set_times(fd, 10**18, 2 * 10**18, 1 | 4) == 0
    assert os.stat(root / "new.txt").st_mtime_ns == 2 * 10**18
    assert g.fd_filestat_set_times(fd, 0, 0, 1 | 2) == Errno.INVAL
    assert g.fd_advise(fd, 0, 0, 1) == 0
    assert g.fd_advise(fd, 0, 0, 9) == Errno.INVAL
    assert g.fd_allocate(fd, 0, 100) == 0
    assert os.stat(root / "new.txt").st_size == 100
    assert g.fd_sync(fd) == 0
    assert g.fd_datasync(fd) == 0
    assert g.fd_close(fd) == 0
    assert g.fd_close(fd) == Errno.BADF
    assert g.read(fd, 1)[0] == Errno.BADF


def test_open_with_sync_flags(sandbox):
    # wasmtime returns NOTSUP here; wasmtee opens with O_SYNC/O_DSYNC and reports the flag.
    g, root, _tmp = sandbox
    err, fd = g.open(3, "synced.txt", oflags=1, fdflags=16 | 1)
    assert err == 0
    out = g.alloc(24)
    assert g.fd_fdstat_get(fd, out) == 0
    assert struct.unpack_from("<H", g.mem.buf, out + 2)[0] == 17
    assert g.write(fd, b"durable") == (0, 7)
    assert (root / "synced.txt").read_bytes() == b"durable"
    assert g.open(3, "d.txt", oflags=1, fdflags=2)[0] == 0


def test_fdstat_flags_and_rights(sandbox):
    g, root, _tmp = sandbox
    err, fd = g.open(3, "hello.txt", fdflags=1)
    assert err == 0
    out = g.alloc(24)
    assert g.fd_fdstat_get(fd, out) == 0
    assert struct.unpack_from("<H", g.mem.buf, out + 2)[0] == 1
    assert g.write(fd, b"more") == (0, 4)
    assert (root / "hello.txt").read_bytes() == b"hello world\nmore"
    assert g.fd_fdstat_set_flags(fd, 0) == 0
    assert g.fd_fdstat_set_flags(fd, 2) == Errno.NOTSUP
    assert g.fd_fdstat_set_rights(fd, int(Rights.FD_READ), 0) == 0
    assert g.write(fd, b"x")[0] == Errno.NOTCAPABLE
    assert g.fd_fdstat_set_rights(fd, int(Rights.FD_READ | Rights.FD_WRITE), 0) == Errno.NOTCAPABLE


def test_open_flags(sandbox):
    g, root, _tmp = sandbox
    assert g.open(3, "hello.txt", oflags=1 | 4)[0] == Errno.EXIST
    assert g.open(3, "missing")[0] == Errno.NOENT
    assert g.open(3, "hello.txt", oflags=2)[0] == Errno.NOTDIR
    err, fd = g.open(3, "hello.txt", oflags=8)
    assert err == 0
    assert (root / "hello.txt").read_bytes() == b""
    assert g.open(3, "sub", oflags=2)[0] == Errno.ISDIR
    err, dfd = g.open(3, "sub", oflags=2, rights=READ_DIR)
    assert err == 0
    assert g.write(dfd, b"x")[0] in (Errno.NOTCAPABLE, Errno.BADF)
    assert g.open(3, "hello.txt", oflags=16)[0] == Errno.INVAL
    assert g.open(fd, "x")[0] == Errno.NOTDIR
    read_only = int(Rights.FD_READ | Rights.FD_READDIR | Rights.PATH_OPEN)
    assert g.open(3, "sub/", rights=read_only)[0] == 0
    assert g.open(3, "sub")[0] == Errno.ISDIR
    assert g.open(3, "hello.txt/")[0] == Errno.NOTDIR


def test_directories_and_links(sandbox):
    g, root, _tmp = sandbox
    p, n = g.str("d1")
    assert g.path_create_directory(3, p, n) == 0
    assert g.path_create_directory(3, p, n) == Errno.EXIST
    assert (root / "d1").is_dir()
    (root / "d1" / "f").write_bytes(b"1")
    assert g.path_remove_directory(3, p, n) == Errno.NOTEMPTY
    fp, fn = g.str("d1/f")
    assert g.path_unlink_file(3, fp, fn) == 0
    assert g.path_unlink_file(3, fp, fn) == Errno.NOENT
    assert g.path_unlink_file(3, p, n) == Errno.ISDIR
    assert g.path_remove_directory(3, p, n) == 0
    src, sn = g.str("hello.txt")
    dst, dn = g.str("hello2.txt")
    assert g.path_link(3, 0, src, sn, 3, dst, dn) == 0
    assert os.stat(root / "hello2.txt").st_nlink == 2
    ren, rn = g.str("sub/moved.txt")
    assert g.path_rename(3, dst, dn, 3, ren, rn) == 0
    assert (root / "sub" / "moved.txt").exists()
    tgt, tn = g.str("hello.txt")
    lnk, ln = g.str("link")
    assert g.path_symlink(tgt, tn, 3, lnk, ln) == 0
    buf, used = g.alloc(64), g.alloc(4)
    assert g.path_readlink(3, lnk, ln, buf, 64, used) == 0
    assert bytes(g.mem.buf[buf:buf + g.u32(used)]) == b"hello.txt"
    assert g.path_readlink(3, src, sn, buf, 64, used) == Errno.INVAL
    stat = g.alloc(64)
    assert g.path_filestat_get(3, 0, lnk, ln, stat) == 0
    assert g.mem.buf[stat + 16] == Filetype.SYMBOLIC_LINK
    assert g.path_filestat_get(3, 1, lnk, ln, stat) == 0
    assert g.mem.buf[stat + 16] == Filetype.REGULAR_FILE
    assert g.path_filestat_set_times(3, 1, lnk, ln, 5 * 10**17, 6 * 10**17, 1 | 4) == 0
    assert os.stat(root / "hello.txt").st_mtime_ns == 6 * 10**17


def test_readdir_cookies(sandbox):
    g, root, _tmp = sandbox
    for i in range(5):
        (root / "sub" / f"f{i}").write_bytes(b"")
    err, dfd = g.open(3, "sub", oflags=2, rights=READ_DIR)
    assert err == 0
    names = []
    cookie = 0
    buf, used = g.alloc(40), g.alloc(4)
    while True:
        assert g.fd_readdir(dfd, buf, 40, cookie, used) == 0
        n = g.u32(used)
        if n < 24:
            break
        d_next, _ino, namlen = struct.unpack_from("<QQI", g.mem.buf, buf)
        if 24 + namlen > n:
            big = g.alloc(24 + namlen)
            assert g.fd_readdir(dfd, big, 24 + namlen, cookie, used) == 0
            names.append(bytes(g.mem.buf[big + 24:big + 24 + namlen]))
        else:
            names.append(bytes(g.mem.buf[buf + 24:buf + 24 + namlen]))
        cookie = d_next
    assert sorted(names) == sorted([b".", b".."] + [f"f{i}".encode() for i in range(5)])
    assert g.fd_readdir(1, buf, 40, 0, used) == Errno.NOTCAPABLE


def test_renumber(sandbox):
    g, _root, _tmp = sandbox
    _err, a = g.open(3, "hello.txt")
    _err, b = g.open(3, "sub", oflags=2, rights=READ_DIR)
    assert g.fd_renumber(a, b) == 0
    assert g.read(b, 5) == (0, b"hello")
    assert g.read(a, 1)[0] == Errno.BADF
    assert g.fd_renumber(a, b) == Errno.BADF


def test_poll_oneoff_clock_and_fd(sandbox):
    g, _root, _tmp = sandbox
    _err, fd = g.open(3, "hello.txt")
    subs = g.alloc(96)
    struct.pack_into("<QB", g.mem.buf, subs, 11, 0)
    struct.pack_into("<I4xQQH", g.mem.buf, subs + 16, 1, 1_000_000, 0, 0)
    struct.pack_into("<QBxxxxxxxI", g.mem.buf, subs + 48, 22, 1, fd)
    events, nevents = g.alloc(64), g.alloc(4)
    assert g.poll_oneoff(subs, events, 2, nevents) == 0
    assert g.u32(nevents) == 1
    assert g.u64(events) == 22
    assert g.u64(events + 16) == 12
    assert g.poll_oneoff(subs, events, 1, nevents) == 0
    assert g.u32(nevents) == 1
    assert g.u64(events) == 11
    assert g.mem.buf[events + 10] == 0
    assert g.poll_oneoff(subs, events, 0, nevents) == Errno.INVAL
    struct.pack_into("<QBxxxxxxxI", g.mem.buf, subs, 33, 1, 99)
    assert g.poll_oneoff(subs, events, 1, nevents) == 0
    assert struct.unpack_from("<H", g.mem.buf, events + 8)[0] == Errno.BADF


def test_sockets():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname())
    try:
        g = Guest(WasiConfig(sockets=[server]))
        out = g.alloc(4)
        assert g.sock_accept(3, 0, out) == 0
        conn = g.u32(out)
        client.sendall(b"ping")
        buf, n, flags = g.alloc(16), g.alloc(4), g.alloc(2)
        assert g.sock_recv(conn, g.iov((buf, 16)), 1, 0, n, flags) == 0
        assert bytes(g.mem.buf[buf:buf + g.u32(n)]) == b"ping"
        data = g.alloc(b"pong")
        assert g.sock_send(conn, g.iov((data, 4)), 1, 0, n) == 0
        assert client.recv(4) == b"pong"
        assert g.sock_shutdown(conn, 2) == 0
        assert g.sock_shutdown(conn, 7) == Errno.INVAL
        assert g.sock_accept(0, 0, out) == Errno.NOTSOCK
        assert g.sock_recv(1, g.iov((buf, 16)), 1, 0, n, flags) == Errno.NOTSOCK
        assert g.fd_fdstat_set_rights(conn, int(Rights.FD_WRITE), 0) == 0
        assert g.sock_recv(conn, g.iov((buf, 16)), 1, 0, n, flags) == Errno.NOTCAPABLE
        assert g.fd_fdstat_set_flags(3, 4) == 0
        assert g.sock_accept(3, 4, out) == Errno.AGAIN
    finally:
        client.close()
        server.close()


def test_unstable_layouts(sandbox):
    _g, _root, _tmp = sandbox
    config = sandbox[0].ctx.config
    g = Guest(config, "wasi_unstable")
    assert "sock_accept" not in g.funcs
    _err, fd = g.open(3, "hello.txt")
    out = g.alloc(8)
    assert g.fd_seek(fd, 0, 1, out) == 0  # END in wasi_unstable
    assert g.u64(out) == 12
    assert g.fd_seek(fd, 3, 2, out) == 0  # SET
    assert g.u64(out) == 3
    stat = g.alloc(64)
    g.mem.buf[stat:stat + 64] = b"\xff" * 64
    assert g.fd_filestat_get(fd, stat) == 0
    assert g.u64(stat + 24) == 12
    assert g.u32(stat + 20) == 1
    assert g.u64(stat + 56) == 0xFFFFFFFFFFFFFFFF


def test_bad_pointers_trap(sandbox):
    g, _root, _tmp = sandbox
    end = 4 * PAGE
    calls = [
        lambda: g.fd_write(1, end - 4, 1, g.alloc(4)),
        lambda: g.fd_write(1, g.iov((end - 2, 8)), 1, g.alloc(4)),
        lambda: g.path_open(3, 0, end - 2, 10, 0, 0, 0, 0, g.alloc(4)),
        lambda: g.fd_fdstat_get(1, end - 4),
        lambda: g.fd_read(0, g.iov((end, 1)), 1, g.alloc(4)),
    ]
    for call in calls:
        with pytest.raises(Trap) as info:
            call()
        assert info.value.code == TrapCode.MEMORY_OUT_OF_BOUNDS


def test_invalid_utf8_path(sandbox):
    g, _root, _tmp = sandbox
    bad = g.alloc(b"\xff\xfe")
    assert g.path_create_directory(3, bad, 2) == Errno.ILSEQ


def test_poll_oneoff_stops_on_interrupt():
    import threading
    import time

    g = Guest(WasiConfig())
    cell = [False]
    g.ctx.interrupt_cell = cell
    subs = g.alloc(48)
    struct.pack_into("<QB", g.mem.buf, subs, 1, 0)
    struct.pack_into("<I4xQQH", g.mem.buf, subs + 16, 1, 60 * 10**9, 0, 0)
    timer = threading.Timer(0.2, cell.__setitem__, (0, True))
    timer.start()
    start = time.monotonic()
    with pytest.raises(Trap) as info:
        g.poll_oneoff(subs, g.alloc(32), 1, g.alloc(4))
    assert info.value.code == TrapCode.INTERRUPTED
    assert time.monotonic() - start < 5
