"""Protected files: confidentiality, integrity, swaps, rollback and deletion."""

from __future__ import annotations

import hashlib

import pytest

from wasmtee.tee.errors import RollbackError, SealingError
from wasmtee.tee.measure import EnclaveIdentity
from wasmtee.tee.protected_files import MemoryStorage, ProtectedFileError, ProtectedFileStore
from wasmtee.tee.sealing import Sealer
from wasmtee.tee.sim import SimPlatform


@pytest.fixture
def sealer(tmp_path):
    platform = SimPlatform(tmp_path / "sim")
    identity = EnclaveIdentity(hashlib.sha256(b"pf").digest(), platform.mr_signer, 1, 1, 0x7)
    return Sealer(platform, identity)


def test_roundtrip_and_reopen(sealer):
    storage = MemoryStorage()
    store = ProtectedFileStore(sealer, storage)
    store.write("/data/a.txt", b"alpha")
    store.write("/data/b.txt", b"beta" * 1000)
    reopened = ProtectedFileStore(sealer, storage)
    assert reopened.paths() == ["/data/a.txt", "/data/b.txt"]
    assert reopened.read("/data/a.txt") == b"alpha"
    assert reopened.size("/data/b.txt") == 4000
    assert reopened.exists("/data/a.txt")
    assert not reopened.exists("/data/c.txt")


def test_host_sees_no_paths_or_contents(sealer):
    storage = MemoryStorage()
    store = ProtectedFileStore(sealer, storage)
    store.write("/secret/plan.txt", b"attack at dawn")
    for name, blob in storage.blobs.items():
        assert "plan" not in name
        assert b"attack at dawn" not in blob
        assert b"plan.txt" not in blob


def test_overwrite_removes_old_blob(sealer):
    storage = MemoryStorage()
    store = ProtectedFileStore(sealer, storage)
    store.write("f", b"1")
    names_before = set(storage.blobs)
    store.write("f", b"2")
    assert store.read("f") == b"2"
    assert len(storage.blobs) == len(names_before)
    assert set(storage.blobs) != names_before


def test_tampered_blob_rejected(sealer):
    storage = MemoryStorage()
    store = ProtectedFileStore(sealer, storage)
    store.write("f", b"contents")
    name = next(name for name in storage.blobs if name != "index")
    blob = bytearray(storage.blobs[name])
    blob[-1] ^= 1
    storage.blobs[name] = bytes(blob)
    with pytest.raises(ProtectedFileError, match="modified or rolled back"):
        store.read("f")


def test_swapped_blobs_rejected(sealer):
    storage = MemoryStorage()
    store = ProtectedFileStore(sealer, storage)
    store.write("a", b"A")
    store.write("b", b"B")
    name_a = store._entries["a"]["storage"]
    name_b = store._entries["b"]["storage"]
    storage.blobs[name_a], storage.blobs[name_b] = storage.blobs[name_b], storage.blobs[name_a]
    with pytest.raises(ProtectedFileError):
        store.read("a")
    with pytest.raises(ProtectedFileError):
        store.read("b")


def test_rolled_back_file_rejected(sealer):
    storage = MemoryStorage()
    store = ProtectedFileStore(sealer, storage)
    store.write("ledger", b"balance=100")
    old_name = store._entries["ledger"]["storage"]
    old_blob = storage.blobs[old_name]
    store.write("ledger", b"balance=0")
    new_name = store._entries["ledger"]["storage"]
    storage.blobs[new_name] = old_blob
    with pytest.raises(ProtectedFileError, match="modified or rolled back"):
        store.read("ledger")


def test_rolled_back_index_rejected(sealer):
    storage = MemoryStorage()
    store = ProtectedFileStore(sealer, storage)
    store.write("ledger", b"v1")
    snapshot = dict(storage.blobs)
    store.write("ledger", b"v2")
    storage.blobs = snapshot
    with pytest.raises(RollbackError):
        ProtectedFileStore(sealer, storage)


def test_deleted_index_rejected(sealer):
    storage = MemoryStorage()
    ProtectedFileStore(sealer, storage).write("f", b"x")
    del storage.blobs["index"]
    with pytest.raises(ProtectedFileError, match="index was deleted"):
        ProtectedFileStore(sealer, storage)


def test_deleted_file_blob_rejected(sealer):
    storage = MemoryStorage()
    store = ProtectedFileStore(sealer, storage)
    store.write("f", b"x")
    del storage.blobs[store._entries["f"]["storage"]]
    with pytest.raises(ProtectedFileError, match="deleted from host storage"):
        store.read("f")


def test_tampered_index_rejected(sealer):
    storage = MemoryStorage()
    ProtectedFileStore(sealer, storage).write("f", b"x")
    index = bytearray(storage.blobs["index"])
    index[-3] ^= 1
    storage.blobs["index"] = bytes(index)
    with pytest.raises(SealingError):
        ProtectedFileStore(sealer, storage)


def test_delete_and_limits(sealer):
    storage = MemoryStorage()
    store = ProtectedFileStore(sealer, storage, max_file_size=10)
    store.write("f", b"x")
    store.delete("f")
    assert store.paths() == []
    assert list(storage.blobs) == ["index"]
    with pytest.raises(ProtectedFileError, match="not found"):
        store.read("f")
    with pytest.raises(ProtectedFileError, match="max 10"):
        store.write("big", b"x" * 11)
    with pytest.raises(ProtectedFileError, match="invalid protected file path"):
        store.write("", b"")


def test_stores_are_separate(sealer):
    storage_a, storage_b = MemoryStorage(), MemoryStorage()
    ProtectedFileStore(sealer, storage_a, store_name="a").write("f", b"A")
    ProtectedFileStore(sealer, storage_b, store_name="b").write("f", b"B")
    storage_b.blobs = dict(storage_a.blobs)
    with pytest.raises(SealingError, match="failed authentication"):
        ProtectedFileStore(sealer, storage_b, store_name="b")


def test_store_over_host_file_ocalls(sealer, tmp_path):
    from wasmtee.tee.enclave import OcallHandler
    from wasmtee.tee.protected_files import OcallStorage

    host_dir = tmp_path / "host"
    host_dir.mkdir()
    handler = OcallHandler(host_dir, ("127.0.0.1",))
    storage = OcallStorage(handler.handle)
    store = ProtectedFileStore(sealer, storage)
    store.write("/out/result.json", b'{"answer": 42}')
    files = sorted(path.name for path in (host_dir / "protected").iterdir())
    assert "index" in files
    assert len(files) == 2
    for path in (host_dir / "protected").iterdir():
        assert b"answer" not in path.read_bytes()
    reopened = ProtectedFileStore(sealer, OcallStorage(handler.handle))
    assert reopened.read("/out/result.json") == b'{"answer": 42}'
    blob_name = reopened._entries["/out/result.json"]["storage"]
    (host_dir / "protected" / blob_name).unlink()
    with pytest.raises(ProtectedFileError, match="deleted from host storage"):
        reopened.read("/out/result.json")
