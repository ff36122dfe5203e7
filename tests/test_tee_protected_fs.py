"""The WASI backend over protected files, driven through its Backend interface."""

from __future__ import annotations

import hashlib
import os

import pytest

from wasmtee.tee.measure import EnclaveIdentity
from wasmtee.tee.protected_files import MemoryStorage, ProtectedFileStore
from wasmtee.tee.protected_fs import ProtectedDirectory
from wasmtee.tee.sealing import Sealer
from wasmtee.tee.sim import SimPlatform
from wasmtee.wasi.constants import Errno, Filetype, WasiError
from wasmtee.wasi.fs import OpenFlags

WRITE = OpenFlags(create=True, write=True, read=True)
READ = OpenFlags()


@pytest.fixture
def sealer(tmp_path):
    platform = SimPlatform(tmp_path / "sim")
    identity = EnclaveIdentity(hashlib.sha256(b"fs").digest(), platform.mr_signer, 1, 1, 0x7)
    return Sealer(platform, identity)


@pytest.fixture
def storage():
    return MemoryStorage()


def make_fs(sealer, storage, read_only=False, max_file_size=1 << 20):
    store = ProtectedFileStore(sealer, storage, max_file_size=max_file_size)
    return ProtectedDirectory(store, read_only=read_only)


def write_file(fs, path, data):
    node = fs.open(fs.open_root(), path, False, WRITE)
    node.write(data)
    node.close()


def read_file(fs, path):
    node = fs.open(fs.open_root(), path, False, READ)
    try:
        return node.read(1 << 20)
    finally:
        node.close()


def expect_errno(errno, function, *args):
    with pytest.raises(WasiError) as info:
        function(*args)
    assert info.value.errno == errno, str(info.value)


def test_files_persist_across_backends(sealer, storage):
    fs = make_fs(sealer, storage)
    fs.mkdir(fs.open_root(), "data")
    write_file(fs, "data/out.txt", b"hello protected world")
    reopened = make_fs(sealer, storage)
    assert read_file(reopened, "data/out.txt") == b"hello protected world"
    root = reopened.open_root()
    assert reopened.stat(root, "data", False).filetype == Filetype.DIRECTORY
    assert reopened.stat(root, "data/out.txt", False).size == 21
    names = [entry.name for entry in reopened.open(root, "data", False, READ).readdir()]
    assert names == [b".", b"..", b"out.txt"]


def test_host_storage_holds_only_ciphertext(sealer, storage):
    fs = make_fs(sealer, storage)
    write_file(fs, "secret.txt", b"the launch code")
    for name, blob in storage.blobs.items():
        assert b"the launch code" not in blob
        assert "secret" not in name


def test_empty_directories_persist(sealer, storage):
    fs = make_fs(sealer, storage)
    fs.mkdir(fs.open_root(), "a")
    fs.mkdir(fs.open_root(), "a/b")
    reopened = make_fs(sealer, storage)
    assert reopened.stat(reopened.open_root(), "a/b", False).filetype == Filetype.DIRECTORY


def test_seek_pread_pwrite_truncate(sealer, storage):
    fs = make_fs(sealer, storage)
    node = fs.open(fs.open_root(), "f", False, WRITE)
    node.write(b"0123456789")
    assert node.seek(2, os.SEEK_SET) == 2
    assert node.read(3) == b"234"
    node.pwrite(b"AB", 12)
    assert node.pread(20, 0) == b"0123456789\x00\x00AB"
    node.set_size(4)
    assert node.stat().size == 4
    assert node.seek(0, os.SEEK_END) == 4
    node.close()
    assert read_file(make_fs(sealer, storage), "f") == b"0123"
    truncating = fs.open(fs.open_root(), "f", False, OpenFlags(write=True, truncate=True))
    truncating.close()
    assert read_file(make_fs(sealer, storage), "f") == b""


def test_append_mode(sealer, storage):
    fs = make_fs(sealer, storage)
    write_file(fs, "log", b"one\n")
    node = fs.open(fs.open_root(), "log", False, OpenFlags(write=True, append=True))
    node.write(b"two\n")
    node.close()
    assert read_file(fs, "log") == b"one\ntwo\n"


def test_rename_and_unlink(sealer, storage):
    fs = make_fs(sealer, storage)
    root = fs.open_root()
    fs.mkdir(root, "dir")
    write_file(fs, "dir/a", b"A")
    fs.rename(root, "dir/a", root, "dir/b")
    expect_errno(Errno.NOENT, fs.stat, root, "dir/a", False)
    assert read_file(fs, "dir/b") == b"A"
    fs.rename(root, "dir", root, "moved")
    assert read_file(make_fs(sealer, storage), "moved/b") == b"A"
    expect_errno(Errno.INVAL, fs.rename, root, "moved", root, "moved/inner")
    fs.unlink(root, "moved/b")
    fs.rmdir(root, "moved")
    reopened = make_fs(sealer, storage)
    expect_errno(Errno.NOENT, reopened.stat, reopened.open_root(), "moved", False)


def test_errors_match_posix(sealer, storage):
    fs = make_fs(sealer, storage)
    root = fs.open_root()
    fs.mkdir(root, "d")
    write_file(fs, "d/f", b"x")
    expect_errno(Errno.NOENT, fs.open, root, "missing", False, READ)
    expect_errno(Errno.EXIST, fs.open, root, "d/f", False,
                 OpenFlags(create=True, exclusive=True, write=True))
    expect_errno(Errno.ISDIR, fs.open, root, "d", False, OpenFlags(write=True))
    expect_errno(Errno.NOTDIR, fs.open, root, "d/f/x", False, READ)
    expect_errno(Errno.NOTDIR, fs.open, root, "d/f", False, OpenFlags(directory=True))
    expect_errno(Errno.NOTEMPTY, fs.rmdir, root, "d")
    expect_errno(Errno.ISDIR, fs.unlink, root, "d")
    expect_errno(Errno.EXIST, fs.mkdir, root, "d")
    expect_errno(Errno.NOTCAPABLE, fs.open, root, "../escape", False, READ)
    expect_errno(Errno.NOTCAPABLE, fs.open, root, "/etc/passwd", False, READ)
    expect_errno(Errno.NOTSUP, fs.symlink, "d/f", root, "link")
    expect_errno(Errno.NOTSUP, fs.link, root, "d/f", root, "hard", False)
    expect_errno(Errno.INVAL, fs.readlink, root, "d/f")
    reader = fs.open(root, "d/f", False, READ)
    expect_errno(Errno.BADF, reader.write, b"y")
    reader.close()


def test_read_only_directory(sealer, storage):
    write_file(make_fs(sealer, storage), "f", b"data")
    fs = make_fs(sealer, storage, read_only=True)
    root = fs.open_root()
    assert read_file(fs, "f") == b"data"
    expect_errno(Errno.ROFS, fs.open, root, "g", False, WRITE)
    expect_errno(Errno.ROFS, fs.open, root, "f", False, OpenFlags(write=True))
    expect_errno(Errno.ROFS, fs.mkdir, root, "d")
    expect_errno(Errno.ROFS, fs.unlink, root, "f")


def test_file_size_limit(sealer, storage):
    fs = make_fs(sealer, storage, max_file_size=8)
    node = fs.open(fs.open_root(), "f", False, WRITE)
    node.write(b"12345678")
    expect_errno(Errno.FBIG, node.write, b"9")
    node.close()


def test_tampered_blob_gives_io_error(sealer, storage):
    fs = make_fs(sealer, storage)
    write_file(fs, "f", b"genuine")
    for name in list(storage.blobs):
        if name != "index":
            blob = bytearray(storage.blobs[name])
            blob[-1] ^= 1
            storage.blobs[name] = bytes(blob)
    reopened = make_fs(sealer, storage)
    expect_errno(Errno.IO, reopened.open, reopened.open_root(), "f", False, READ)
    expect_errno(Errno.IO, reopened.stat, reopened.open_root(), "f", False)
