"""Escape attempts against preopened directories: every technique must fail."""

from __future__ import annotations

import os
import struct

import pytest

from wasmtee.wasi import WasiConfig
from wasmtee.wasi.constants import (
    FST_ATIM, FST_ATIM_NOW, FST_MTIM, FST_MTIM_NOW, OFLAG_CREAT, OFLAG_DIRECTORY, OFLAG_EXCL,
    OFLAG_TRUNC, Errno, Rights, WasiError,
)
from wasmtee.wasi.fs import HostDirectory, OpenFlags
from test_wasi import Guest


@pytest.fixture
def jail(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "inside.txt").write_bytes(b"inside")
    (root / "dir").mkdir()
    (tmp_path / "secret.txt").write_bytes(b"secret")
    (root / "abs_link").symlink_to(tmp_path / "secret.txt")
    (root / "rel_link").symlink_to("../secret.txt")
    (root / "dir_up").symlink_to("..")
    (root / "dir" / "deep_up").symlink_to("../../")
    (root / "ok_link").symlink_to("dir/../inside.txt")
    (root / "loop").symlink_to("loop")
    config = WasiConfig()
    config.preopen_dir(str(root), "/")
    return Guest(config), root, tmp_path


ESCAPES = [
    "../secret.txt",
    "dir/../../secret.txt",
    "/etc/passwd",
    "abs_link",
    "rel_link",
    "dir_up/secret.txt",
    "dir/deep_up/secret.txt",
    "./dir/./../../secret.txt",
]


@pytest.mark.parametrize("path", ESCAPES)
def test_open_escape_rejected(jail, path):
    g, _root, _tmp = jail
    err, _fd = g.open(3, path)
    assert err in (Errno.NOTCAPABLE, Errno.PERM)


@pytest.mark.parametrize("path", ESCAPES)
def test_stat_escape_rejected(jail, path):
    g, _root, _tmp = jail
    p, n = g.str(path)
    assert g.path_filestat_get(3, 1, p, n, g.alloc(64)) in (Errno.NOTCAPABLE, Errno.PERM)


def test_symlink_inside_is_followed(jail):
    g, _root, _tmp = jail
    err, fd = g.open(3, "ok_link")
    assert err == 0
    assert g.read(fd, 6) == (0, b"inside")


def test_nofollow_on_symlink(jail):
    g, _root, _tmp = jail
    assert g.open(3, "abs_link", follow=0)[0] == Errno.LOOP


def test_symlink_loop(jail):
    g, _root, _tmp = jail
    assert g.open(3, "loop")[0] == Errno.LOOP


def test_create_through_escaping_symlink(jail):
    g, _root, tmp = jail
    (jail[1] / "dangling").symlink_to(tmp / "created.txt")
    err, _fd = g.open(3, "dangling", oflags=1)
    assert err == Errno.NOTCAPABLE
    assert not (tmp / "created.txt").exists()


def test_mutating_ops_cannot_escape(jail):
    g, _root, tmp = jail
    for name in ("path_create_directory", "path_unlink_file", "path_remove_directory"):
        p, n = g.str("dir_up/escaped")
        assert getattr(g, name)(3, p, n) == Errno.NOTCAPABLE
    p, n = g.str("../secret.txt")
    q, m = g.str("stolen")
    assert g.path_rename(3, p, n, 3, q, m) == Errno.NOTCAPABLE
    assert g.path_link(3, 0, p, n, 3, q, m) == Errno.NOTCAPABLE
    r, k = g.str("rel_link")
    assert g.path_link(3, 1, r, k, 3, q, m) == Errno.NOTCAPABLE
    assert (tmp / "secret.txt").read_bytes() == b"secret"
    assert not (tmp / "escaped").exists()


def test_symlink_to_outside(jail):
    g, root, _tmp = jail
    t, tn = g.str("/etc/passwd")
    p, n = g.str("evil")
    assert g.path_symlink(t, tn, 3, p, n) == Errno.PERM
    assert not os.path.lexists(root / "evil")
    t, tn = g.str("../../etc/passwd")
    # A relative link that points outside may be created, but it never resolves.
    assert g.path_symlink(t, tn, 3, p, n) == 0
    assert g.open(3, "evil")[0] == Errno.NOTCAPABLE


def test_long_names(jail):
    g, _root, _tmp = jail
    assert g.open(3, "a" * 300, oflags=1)[0] == Errno.NAMETOOLONG
    # A whole path of PATH_MAX (4096) bytes or more is too long, as in wasmtime 50.
    assert g.open(3, "/".join(["dir", ".."] * 3000) + "/inside.txt")[0] == Errno.NAMETOOLONG
    short_enough = "/".join(["dir", ".."] * 500) + "/inside.txt"
    assert len(short_enough) < 4096
    assert g.open(3, short_enough)[0] == 0


def test_nul_in_path(jail):
    g, _root, _tmp = jail
    assert g.open(3, "inside.txt\0.bak")[0] == Errno.INVAL


def test_swapped_symlink_during_resolution(tmp_path):
    """A directory replaced by an escaping symlink between walks is still caught."""
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    (tmp_path / "secret").write_bytes(b"s")
    backend = HostDirectory(str(root))
    node = backend.open_root()
    inner = backend.open(node, "d", True, OpenFlags(directory=True))
    (root / "d").rename(root / "moved")
    (root / "d").symlink_to(tmp_path)
    with pytest.raises(Exception) as info:
        backend.open(node, "d/secret", True, OpenFlags())
    assert getattr(info.value, "errno", None) == Errno.NOTCAPABLE
    inner.close()
    node.close()


# The rights that wasi-libc's open() requests: everything except the read and
# write rights, plus the ones its access mode adds.
_LIBC_BASE = ((1 << 29) - 1) & ~int(
    Rights.FD_DATASYNC | Rights.FD_READ | Rights.FD_WRITE | Rights.FD_ALLOCATE
    | Rights.FD_READDIR | Rights.FD_FILESTAT_SET_SIZE)
LIBC_O_RDONLY = _LIBC_BASE | int(Rights.FD_READ | Rights.FD_READDIR)
LIBC_O_WRONLY = _LIBC_BASE | int(Rights.FD_DATASYNC | Rights.FD_WRITE | Rights.FD_ALLOCATE
                                 | Rights.FD_FILESTAT_SET_SIZE)
LIBC_O_RDWR = LIBC_O_RDONLY | LIBC_O_WRONLY


def tree_state(root) -> dict[str, object]:
    """Names, contents, link targets and modification times below `root`."""
    state: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        info = os.lstat(path)
        if path.is_symlink():
            content: object = os.readlink(path)
        elif path.is_dir():
            content = "dir"
        else:
            content = path.read_bytes()
        state[str(path.relative_to(root))] = (content, info.st_mtime_ns, info.st_nlink)
    return state


@pytest.fixture
def read_only(tmp_path):
    root = tmp_path / "ro"
    root.mkdir()
    (root / "f").write_bytes(b"data")
    (root / "d").mkdir()
    (root / "link").symlink_to("f")
    config = WasiConfig()
    config.preopen_dir(str(root), "/ro", read_only=True)
    return Guest(config), root


@pytest.mark.parametrize("path,oflags,rights", [
    ("f", 0, LIBC_O_WRONLY),
    ("f", 0, LIBC_O_RDWR),
    ("f", 0, int(Rights.FD_WRITE)),
    ("f", OFLAG_TRUNC, LIBC_O_RDONLY),
    ("f", OFLAG_CREAT, LIBC_O_RDONLY),
    ("new", OFLAG_CREAT, LIBC_O_WRONLY),
    ("new", OFLAG_CREAT | OFLAG_EXCL, LIBC_O_RDONLY),
    ("missing", 0, LIBC_O_WRONLY),
    ("link", 0, LIBC_O_WRONLY),
    ("d", OFLAG_DIRECTORY, (1 << 29) - 1),
], ids=["wronly", "rdwr", "fd_write", "trunc", "creat-existing", "creat-new", "excl",
        "missing", "through-link", "dir-all-rights"])
def test_read_only_open_for_writing(read_only, path, oflags, rights):
    g, root = read_only
    before = tree_state(root)
    err, _fd = g.open(3, path, oflags=oflags, rights=rights)
    # wasmtime 50 returns PERM for these, before it looks the path up.
    assert err == Errno.PERM
    assert tree_state(root) == before


def test_read_only_open_for_reading(read_only):
    g, root = read_only
    for rights in (LIBC_O_RDONLY, int(Rights.FD_READ)):
        err, fd = g.open(3, "f", rights=rights)
        assert err == 0
        assert g.read(fd, 4) == (0, b"data")
        out = g.alloc(24)
        assert g.fd_fdstat_get(fd, out) == 0
        assert g.u64(out + 8) & Rights.FD_WRITE == 0
        assert g.write(fd, b"x")[0] == Errno.NOTCAPABLE
        assert g.fd_close(fd) == 0
    err, fd = g.open(3, "d", oflags=OFLAG_DIRECTORY, rights=LIBC_O_RDONLY)
    assert err == 0
    assert (root / "f").read_bytes() == b"data"


def test_read_only_reports_inheriting_write(read_only):
    """wasi-libc masks open() rights with these, so FD_WRITE must stay visible."""
    g, _root = read_only
    out = g.alloc(24)
    assert g.fd_fdstat_get(3, out) == 0
    assert g.u64(out + 16) & Rights.FD_WRITE
    assert g.u64(out + 8) & Rights.PATH_CREATE_FILE


def _mutations(g):
    """Each mutating call on the read-only preopen at fd 3, as (name, thunk)."""
    def s(text):
        return g.str(text)

    def on_file(call):
        def run():
            err, fd = g.open(3, "f", rights=LIBC_O_RDONLY)
            assert err == 0
            return call(fd)
        return run

    return [
        ("path_create_directory", lambda: g.path_create_directory(3, *s("newdir"))),
        ("path_create_directory-existing", lambda: g.path_create_directory(3, *s("d"))),
        ("path_unlink_file", lambda: g.path_unlink_file(3, *s("f"))),
        ("path_unlink_file-link", lambda: g.path_unlink_file(3, *s("link"))),
        ("path_unlink_file-missing", lambda: g.path_unlink_file(3, *s("missing"))),
        ("path_remove_directory", lambda: g.path_remove_directory(3, *s("d"))),
        ("path_rename", lambda: g.path_rename(3, *s("f"), 3, *s("g"))),
        ("path_rename-onto", lambda: g.path_rename(3, *s("f"), 3, *s("link"))),
        ("path_symlink", lambda: g.path_symlink(*s("f"), 3, *s("new_link"))),
        ("path_link", lambda: g.path_link(3, 0, *s("f"), 3, *s("hard"))),
        ("path_filestat_set_times", lambda: g.path_filestat_set_times(
            3, 0, *s("f"), 10**18, 10**18, FST_ATIM | FST_MTIM)),
        ("path_filestat_set_times-now", lambda: g.path_filestat_set_times(
            3, 1, *s("link"), 0, 0, FST_ATIM_NOW | FST_MTIM_NOW)),
        ("fd_filestat_set_times-dir", lambda: g.fd_filestat_set_times(3, 0, 0, FST_MTIM_NOW)),
        ("fd_filestat_set_times", on_file(lambda fd: g.fd_filestat_set_times(
            fd, 0, 0, FST_MTIM_NOW))),
        ("fd_filestat_set_size", on_file(lambda fd: g.fd_filestat_set_size(fd, 0))),
        ("fd_allocate", on_file(lambda fd: g.fd_allocate(fd, 0, 100))),
    ]


MUTATION_NAMES = [name for name, _ in _mutations(None)]


@pytest.mark.parametrize("name", MUTATION_NAMES)
def test_read_only_mutation_rejected(read_only, name):
    g, root = read_only
    call = dict(_mutations(g))[name]
    before = tree_state(root)
    assert call() == Errno.PERM
    assert tree_state(root) == before


def test_read_only_memory_tree():
    from wasmtee.wasi.memfs import MemoryTree

    tree = MemoryTree()
    tree.add_file("f", b"data")
    tree.read_only = True
    config = WasiConfig()
    config.preopen_backend("/mem", tree)
    g = Guest(config)
    assert g.open(3, "f", rights=LIBC_O_WRONLY)[0] == Errno.PERM
    err, fd = g.open(3, "f", rights=LIBC_O_RDONLY)
    assert err == 0
    assert g.read(fd, 4) == (0, b"data")
    assert g.path_unlink_file(3, *g.str("f")) == Errno.PERM
    assert tree.read_file("f") == b"data"


def test_read_only_backend_rejects_writes(tmp_path):
    """The backend is a second line of defence behind the checks in preview1."""
    root = tmp_path / "ro"
    root.mkdir()
    (root / "f").write_bytes(b"data")
    backend = HostDirectory(str(root), read_only=True)
    node = backend.open_root()
    for flags in (OpenFlags(write=True), OpenFlags(create=True), OpenFlags(truncate=True)):
        with pytest.raises(WasiError) as info:
            backend.open(node, "f", False, flags)
        assert info.value.errno == Errno.ROFS
    with pytest.raises(WasiError) as info:
        backend.unlink(node, "f")
    assert info.value.errno == Errno.ROFS
    node.close()
    assert (root / "f").read_bytes() == b"data"


# -- symbolic links whose target is outside the preopen ------------------------------

def readlink(g, path: str) -> tuple[int, bytes]:
    buf, used = g.alloc(64), g.alloc(4)
    g.mem.buf[buf:buf + 64] = b"\xaa" * 64
    g.mem.buf[used:used + 4] = b"\xbb" * 4
    err = g.path_readlink(3, *g.str(path), buf, 64, used)
    if err:
        # Nothing may be written on failure, so no part of the target leaks.
        assert bytes(g.mem.buf[buf:buf + 64]) == b"\xaa" * 64
        assert bytes(g.mem.buf[used:used + 4]) == b"\xbb" * 4
        return err, b""
    return err, bytes(g.mem.buf[buf:buf + g.u32(used)])


def test_readlink_absolute_target_hidden(jail):
    g, root, _tmp = jail
    (root / "abs_inside").symlink_to(root / "inside.txt")
    (root / "slash").symlink_to("/")
    for name in ("abs_link", "abs_inside", "slash"):
        assert readlink(g, name) == (Errno.NOTCAPABLE, b"")


def test_readlink_relative_target_is_raw_text(jail):
    """A relative target shows only the link text, as in wasmtime and cap-std."""
    g, _root, _tmp = jail
    assert readlink(g, "rel_link") == (0, b"../secret.txt")
    assert readlink(g, "dir/deep_up") == (0, b"../../")
    assert readlink(g, "ok_link") == (0, b"dir/../inside.txt")


ESCAPING_LINKS = ["abs_link", "rel_link", "abs_inside", "dir_up/secret.txt",
                  "dir/deep_up/secret.txt"]


@pytest.mark.parametrize("path", ESCAPING_LINKS)
def test_escaping_link_never_followed(jail, path):
    g, root, tmp = jail
    (root / "abs_inside").symlink_to(root / "inside.txt")
    secret_before = os.stat(tmp / "secret.txt")
    for rights in (LIBC_O_RDONLY, LIBC_O_WRONLY):
        for oflags in (0, OFLAG_CREAT, OFLAG_TRUNC):
            assert g.open(3, path, oflags=oflags, rights=rights)[0] == Errno.NOTCAPABLE
    p, n = g.str(path)
    assert g.path_filestat_get(3, 1, p, n, g.alloc(64)) == Errno.NOTCAPABLE
    assert g.path_filestat_set_times(3, 1, p, n, 10**18, 10**18,
                                     FST_ATIM | FST_MTIM) == Errno.NOTCAPABLE
    q, m = g.str("hard")
    assert g.path_link(3, 1, p, n, 3, q, m) == Errno.NOTCAPABLE
    assert not os.path.lexists(root / "hard")
    secret_after = os.stat(tmp / "secret.txt")
    assert secret_after.st_mtime_ns == secret_before.st_mtime_ns
    assert secret_after.st_nlink == 1
    assert (tmp / "secret.txt").read_bytes() == b"secret"


def test_rename_between_backends(tmp_path):
    from wasmtee.wasi.memfs import MemoryTree

    host = tmp_path / "host"
    host.mkdir()
    (host / "a.txt").write_bytes(b"a")
    read_only = tmp_path / "ro"
    read_only.mkdir()
    config = WasiConfig()
    config.preopen_dir(str(host), "/host")  # fd 3
    config.preopen_backend("/mem", MemoryTree())  # fd 4
    config.preopen_dir(str(read_only), "/ro", read_only=True)  # fd 5
    g = Guest(config)
    old, new = g.str("a.txt"), g.str("b.txt")
    # Different backends cannot share an inode, so the guest must copy.
    assert g.path_rename(3, *old, 4, *new) == Errno.XDEV
    assert g.path_link(3, 0, *old, 4, *new) == Errno.XDEV
    # A read-only preopen rejects the new name before the kernel sees it.
    assert g.path_rename(3, *old, 5, *new) == Errno.PERM
    assert g.path_link(3, 0, *old, 5, *new) == Errno.PERM
    assert g.path_rename(5, *new, 3, *old) == Errno.PERM
    assert (host / "a.txt").read_bytes() == b"a"
    assert list(read_only.iterdir()) == []


def test_rename_between_host_preopens_stays_inside(tmp_path):
    first, second, outside = tmp_path / "first", tmp_path / "second", tmp_path / "outside"
    for directory in (first, second, outside):
        directory.mkdir()
    (first / "a.txt").write_bytes(b"a")
    (second / "up").symlink_to("..")
    config = WasiConfig()
    config.preopen_dir(str(first), "/first")  # fd 3
    config.preopen_dir(str(second), "/second")  # fd 4
    g = Guest(config)
    source = g.str("a.txt")
    for escape in ("../outside/a.txt", "up/outside/a.txt", "/etc/a.txt"):
        assert g.path_rename(3, *source, 4, *g.str(escape)) == Errno.NOTCAPABLE, escape
    assert list(outside.iterdir()) == []
    assert g.path_rename(3, *source, 4, *g.str("b.txt")) == 0
    assert (second / "b.txt").read_bytes() == b"a"
    assert not (first / "a.txt").exists()
    # Renaming a preopen itself is BUSY, as in wasmtime.
    assert g.path_rename(3, *g.str("."), 4, *g.str("c")) == Errno.BUSY
