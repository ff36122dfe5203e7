"""The in-memory backend behaves like the host-directory backend for every WASI call."""

from __future__ import annotations

import pytest

from test_wasi import Guest
from test_wasi_differential import (
    CASES, _iov_data, call_host, layout, make_tree, run_wasmtee, snapshot,
)
from wasmtee.wasi import WasiConfig, WasiContext
from wasmtee.wasi.constants import Errno, Filetype
from wasmtee.wasi.memfs import MemoryTree


def memory_tree() -> MemoryTree:
    tree = MemoryTree()
    tree.add_file("file.txt", b"0123456789")
    root = tree.open_root()
    tree.mkdir(root, "dir")
    tree.add_file("dir/inner.txt", b"inner")
    tree.mkdir(root, "empty")
    tree.root.children["link"] = tree.root.children["file.txt"].__class__(
        Filetype.SYMBOLIC_LINK, 9999, tree.root)
    tree.root.children["link"].target = "file.txt"
    bad = tree.root.children["link"].__class__(Filetype.SYMBOLIC_LINK, 9998, tree.root)
    bad.target = "../outside"
    tree.root.children["badlink"] = bad
    dir_link = tree.root.children["link"].__class__(Filetype.SYMBOLIC_LINK, 9997, tree.root)
    dir_link.target = "dir"
    tree.root.children["sl"] = dir_link
    return tree


def tree_snapshot(tree: MemoryTree) -> dict[str, object]:
    out: dict[str, object] = {}

    def walk(inode, prefix: str) -> None:
        for name in sorted(inode.children):
            child = inode.children[name]
            path = f"{prefix}{name}"
            if child.filetype == Filetype.SYMBOLIC_LINK:
                out[path] = ("link", child.target)
            elif child.filetype == Filetype.DIRECTORY:
                out[path] = "dir"
                walk(child, path + "/")
            else:
                out[path] = bytes(child.data)

    walk(tree.root, "")
    return out


def run_memory(name: str, values: list[int], data: dict[int, bytes], tree: MemoryTree, tmp):
    config = WasiConfig(argv=["prog", "arg"], env={"KEY": "value"},
                        stdout=open(tmp / "stdout.mem", "wb"))
    config.preopen_backend("/sandbox", tree)
    try:
        return call_host(WasiContext(config), name, values, data)[0]
    finally:
        config.stdout.close()


SKIP = {"sock_accept", "sock_recv", "sock_send", "sock_shutdown", "fd_advise", "proc_raise"}


@pytest.mark.parametrize("name,args,exact", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_memory_backend_matches_host(name, args, exact, tmp_path):
    if name in SKIP:
        pytest.skip("the call does not reach the file-system backend")
    values, data = layout(args)
    data.update(_iov_data())
    host_root = tmp_path / "host"
    make_tree(host_root)
    tree = memory_tree()
    try:
        host_errno = run_wasmtee(name, values, data, host_root, tmp_path)[0]
    except Exception as exc:  # traps on bad pointers must match too
        with pytest.raises(type(exc)):
            run_memory(name, values, data, tree, tmp_path)
        return
    mem_errno = run_memory(name, values, data, tree, tmp_path)
    assert mem_errno == host_errno
    assert tree_snapshot(tree) == snapshot(host_root)


def test_memory_file_roundtrip():
    tree = MemoryTree()
    config = WasiConfig()
    config.preopen_backend("/mem", tree)
    g = Guest(config)
    err, fd = g.open(3, "notes.txt", oflags=1)
    assert err == 0
    assert g.write(fd, b"hello") == (0, 5)
    out = g.alloc(8)
    assert g.fd_seek(fd, 0, 0, out) == 0
    assert g.read(fd, 10) == (0, b"hello")
    assert g.fd_filestat_set_size(fd, 2) == 0
    assert tree.read_file("notes.txt") == b"he"
    assert g.open(3, "../x")[0] == Errno.NOTCAPABLE


def test_memory_file_size_limit():
    tree = MemoryTree(max_file_size=8)
    config = WasiConfig()
    config.preopen_backend("/mem", tree)
    g = Guest(config)
    _err, fd = g.open(3, "f", oflags=1)
    assert g.write(fd, b"x" * 9)[0] == Errno.FBIG
    assert g.fd_filestat_set_size(fd, 100) == Errno.FBIG


def test_memory_read_only():
    tree = MemoryTree(read_only=True)
    config = WasiConfig()
    config.preopen_backend("/mem", tree)
    g = Guest(config)
    # Preview1 rejects writes to any read-only backend with PERM, as wasmtime does.
    assert g.open(3, "f", oflags=1)[0] == Errno.PERM
    p, n = g.str("d")
    assert g.path_create_directory(3, p, n) == Errno.PERM
