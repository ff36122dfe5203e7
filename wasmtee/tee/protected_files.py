"""Protected files: encrypted, authenticated files that the host stores for the enclave.

The host sees only opaque blobs under names it cannot link to paths. Each
file is one blob:

    magic "WTPF" | format version u8 | file id (16) | nonce (12) | AES-256-GCM ciphertext

encrypted under HMAC-SHA256(master key, "file" | file id) with the header,
the path and the file's generation as associated data. An index maps each
path to its storage name, generation, size and the SHA-256 of its blob. The
index is sealed state (`Sealer.seal_state`), so its version must match a
monotonic counter. Together this detects a blob that was changed, swapped
with another file's blob, replaced by an older version or deleted, as far
as the monotonic counter can be trusted (see docs/security.md).

Files are read and written whole, which keeps the format simple and makes a
write atomic: the new blob is stored under a new name, then the index is
committed, then the old blob is deleted.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import struct
from typing import Any, Protocol

import cbor2

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from wasmtee.tee.errors import SealingError, TeeError
from wasmtee.tee.sealing import Sealer, SealPolicy
from wasmtee.tee.strict_cbor import StrictCborError, loads_strict

log = logging.getLogger(__name__)

MAGIC = b"WTPF"
FORMAT_VERSION = 1
HEADER = struct.Struct("<4sB16s12s")
INDEX_NAME = "index"
DEFAULT_MAX_FILE_SIZE = 64 * 1024 * 1024
MAX_PATH_LENGTH = 4096


class ProtectedFileError(TeeError):
    """A protected file that is missing, tampered with, rolled back or too large."""


class Storage(Protocol):
    """Untrusted blob storage, for example files on the host through OCALLs."""

    def read(self, name: str) -> bytes | None: ...

    def write(self, name: str, data: bytes) -> None: ...

    def delete(self, name: str) -> None: ...


class MemoryStorage:
    """Blob storage in a dict, for tests and for enclaves without host files."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def read(self, name: str) -> bytes | None:
        return self.blobs.get(name)

    def write(self, name: str, data: bytes) -> None:
        self.blobs[name] = bytes(data)

    def delete(self, name: str) -> None:
        self.blobs.pop(name, None)


class OcallStorage:
    """Blob storage in the host's storage directory, reached through file OCALLs.

    `ocall(op, args)` is the enclave's OCALL function. Any failed read
    counts as a missing blob, and the index then decides whether that is
    an attack.
    """

    def __init__(self, ocall: Any, prefix: str = "protected/") -> None:
        self._ocall = ocall
        self._prefix = prefix

    def read(self, name: str) -> bytes | None:
        try:
            data = self._ocall("file_read", {"path": self._prefix + name})
        except TeeError as exc:
            log.info("host storage read of %r failed: %s", name, exc)
            return None
        if not isinstance(data, bytes):
            raise ProtectedFileError(f"host returned {type(data).__name__} for blob {name!r}")
        return data

    def write(self, name: str, data: bytes) -> None:
        self._ocall("file_write", {"path": self._prefix + name, "data": bytes(data)})

    def delete(self, name: str) -> None:
        try:
            self._ocall("file_delete", {"path": self._prefix + name})
        except TeeError as exc:
            # A blob the host failed to delete is unreachable garbage, not a risk.
            log.warning("host storage delete of %r failed: %s", name, exc)


class ProtectedFileStore:
    """A set of protected files under one index, named by `store_name`.

    Raises RollbackError when the index is older than its monotonic
    counter, SealingError when the index fails authentication, and
    ProtectedFileError for a file blob that is missing or does not match.
    """

    def __init__(self, sealer: Sealer, storage: Storage, store_name: str = "default",
                 max_file_size: int = DEFAULT_MAX_FILE_SIZE) -> None:
        self._sealer = sealer
        self._storage = storage
        self._state_name = f"protected-files:{store_name}"
        self.max_file_size = max_file_size
        self._master_key, self._entries = self._load_index()

    # -- public operations -----------------------------------------------------

    def paths(self) -> list[str]:
        return sorted(self._entries)

    def exists(self, path: str) -> bool:
        return _check_path(path) in self._entries

    def size(self, path: str) -> int:
        return int(self._entry(path)["size"])

    def read(self, path: str) -> bytes:
        """Return a file's contents after checking its blob against the index."""
        entry = self._entry(path)
        blob = self._storage.read(entry["storage"])
        if blob is None:
            raise ProtectedFileError(f"protected file {path!r} was deleted from host storage")
        if not hmac.compare_digest(hashlib.sha256(blob).digest(), entry["digest"]):
            raise ProtectedFileError(f"protected file {path!r} was modified or rolled back "
                                     "in host storage")
        magic, version, file_id, nonce = HEADER.unpack_from(blob, 0)
        if magic != MAGIC or version != FORMAT_VERSION:
            raise ProtectedFileError(f"protected file {path!r} has an invalid header")
        try:
            return AESGCM(self._file_key(file_id)).decrypt(
                nonce, blob[HEADER.size:], _associated_data(blob, path, entry["generation"])
            )
        except InvalidTag:
            raise ProtectedFileError(f"protected file {path!r} failed authentication") from None

    def write(self, path: str, data: bytes) -> None:
        """Replace a file's contents, committing the index before old data is removed."""
        path = _check_path(path)
        if len(data) > self.max_file_size:
            raise ProtectedFileError(
                f"protected file {path!r} would be {len(data)} bytes, max {self.max_file_size}"
            )
        old = self._entries.get(path)
        generation = (old["generation"] + 1) if old else 1
        file_id = os.urandom(16)
        nonce = os.urandom(12)
        header = HEADER.pack(MAGIC, FORMAT_VERSION, file_id, nonce)
        ciphertext = AESGCM(self._file_key(file_id)).encrypt(
            nonce, bytes(data), _associated_data(header, path, generation)
        )
        blob = header + ciphertext
        storage_name = f"{self._path_tag(path)}.{generation}"
        self._storage.write(storage_name, blob)
        self._entries[path] = {"storage": storage_name, "generation": generation,
                               "size": len(data), "digest": hashlib.sha256(blob).digest()}
        self._commit_index()
        if old is not None:
            self._storage.delete(old["storage"])

    def delete(self, path: str) -> None:
        entry = self._entry(path)
        del self._entries[_check_path(path)]
        self._commit_index()
        self._storage.delete(entry["storage"])

    # -- index -----------------------------------------------------------------

    def _load_index(self) -> tuple[bytes, dict[str, dict[str, Any]]]:
        blob = self._storage.read(INDEX_NAME)
        if blob is None:
            # TODO: a crash between the counter increment and the index write
            # leaves the store unopenable, because this check cannot tell
            # that from a host that deleted the index.
            if self._sealer.state_version(self._state_name) != 0:
                raise ProtectedFileError("the protected file index was deleted from host "
                                         "storage")
            log.info("creating protected file store %r", self._state_name)
            master_key = os.urandom(32)
            self._master_key, self._entries = master_key, {}
            self._commit_index()
            return master_key, {}
        plaintext = self._sealer.unseal_state(self._state_name, blob)
        try:
            index = loads_strict(plaintext, max_depth=4)
        except StrictCborError as exc:
            raise SealingError(f"protected file index is malformed: {exc}") from None
        return index["key"], index["files"]

    def _commit_index(self) -> None:
        index = cbor2.dumps({"key": self._master_key, "files": self._entries}, canonical=True)
        blob = self._sealer.seal_state(self._state_name, index, SealPolicy.MRSIGNER)
        self._storage.write(INDEX_NAME, blob)

    def _entry(self, path: str) -> dict[str, Any]:
        entry = self._entries.get(_check_path(path))
        if entry is None:
            raise ProtectedFileError(f"protected file {path!r} not found")
        return entry

    def _file_key(self, file_id: bytes) -> bytes:
        return hmac.new(self._master_key, b"file\x00" + file_id, hashlib.sha256).digest()

    def _path_tag(self, path: str) -> str:
        return hmac.new(self._master_key, b"name\x00" + path.encode(), hashlib.sha256).hexdigest()[:32]


def _associated_data(blob_or_header: bytes, path: str, generation: int) -> bytes:
    return blob_or_header[:HEADER.size] + struct.pack("<Q", generation) + path.encode()


def _check_path(path: str) -> str:
    if not isinstance(path, str) or not path or len(path) > MAX_PATH_LENGTH or "\x00" in path:
        raise ProtectedFileError(f"invalid protected file path {path!r}")
    return path
