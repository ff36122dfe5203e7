"""Escape attempts against preopened directories: every technique must fail."""

from __future__ import annotations

import os
import struct

import pytest

from wasmtee.wasi import WasiConfig
from wasmtee.wasi.constants import Errno
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
    assert g.open(3, "/".join(["dir", ".."] * 3000) + "/inside.txt")[0] == 0


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


def test_read_only_preopen(tmp_path):
    root = tmp_path / "ro"
    root.mkdir()
    (root / "f").write_bytes(b"data")
    config = WasiConfig()
    config.preopen_dir(str(root), "/ro", read_only=True)
    g = Guest(config)
    err, fd = g.open(3, "f", rights=int(2))
    assert err == 0
    assert g.read(fd, 4) == (0, b"data")
    assert g.open(3, "f", oflags=8)[0] == Errno.NOTCAPABLE
    assert g.open(3, "new", oflags=1)[0] == Errno.NOTCAPABLE
    p, n = g.str("f")
    assert g.path_unlink_file(3, p, n) == Errno.NOTCAPABLE
    out = g.alloc(24)
    assert g.fd_fdstat_get(3, out) == 0
    rights = struct.unpack_from("<Q", g.mem.buf, out + 8)[0]
    assert rights & (1 << 26) == 0
    backend = HostDirectory(str(root), read_only=True)
    with pytest.raises(Exception) as info:
        backend.open(backend.open_root(), "f", False, OpenFlags(write=True))
    assert info.value.errno == Errno.ROFS
    assert (root / "f").read_bytes() == b"data"
