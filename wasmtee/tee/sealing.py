"""Sealing: AES-GCM under EGETKEY-like keys, with SGX's MRENCLAVE and MRSIGNER policies.

A sealed blob is an 80-byte header followed by the AES-128-GCM ciphertext
and its 16-byte tag. The header is authenticated as associated data,
together with the caller's label, so a blob sealed under one label does not
unseal under another:

    magic "WTSEAL" | format version u8 | key policy u8 | ISVSVN u16 |
    ISVPRODID u16 | CPUSVN (16) | KEYID (32) | state version u64 | nonce (12)

The key is derived for the ISVSVN and CPUSVN in the header, and the platform
derives keys only for SVNs at or below the current ones. So an upgraded
enclave (same signer, higher ISVSVN) unseals older blobs under MRSIGNER,
while a blob sealed at a higher SVN never unseals at a lower one. Every blob
has a fresh random KEYID, so every key encrypts one blob.
"""

from __future__ import annotations

import enum
import logging
import os
import struct
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from wasmtee.tee import kdf
from wasmtee.tee.errors import RollbackError, SealingError, TeeError
from wasmtee.tee.measure import EnclaveIdentity

log = logging.getLogger(__name__)

MAGIC = b"WTSEAL"
FORMAT_VERSION = 1
HEADER = struct.Struct("<6sBBHH16s32sQ12s")
HEADER_SIZE = HEADER.size  # 80
TAG_SIZE = 16
MAX_PLAINTEXT_SIZE = 256 * 1024 * 1024


class SealPolicy(enum.IntEnum):
    """The identity a sealing key is bound to (the SGX KEYPOLICY bits)."""

    MRENCLAVE = kdf.KEY_POLICY_MRENCLAVE
    MRSIGNER = kdf.KEY_POLICY_MRSIGNER


class SealingPlatform(Protocol):
    """The backend interface sealing needs: EGETKEY, CPUSVN and monotonic counters."""

    cpu_svn: bytes

    def get_key(self, identity: EnclaveIdentity, request: kdf.KeyRequest) -> bytes: ...

    def read_counter(self, name: str) -> int: ...

    def increment_counter(self, name: str) -> int: ...


@dataclass(frozen=True)
class SealedHeader:
    """The authenticated, unencrypted header of a sealed blob."""

    policy: SealPolicy
    isv_svn: int
    isv_prod_id: int
    cpu_svn: bytes
    key_id: bytes
    state_version: int
    nonce: bytes

    def encode(self) -> bytes:
        return HEADER.pack(MAGIC, FORMAT_VERSION, self.policy, self.isv_svn, self.isv_prod_id,
                           self.cpu_svn, self.key_id, self.state_version, self.nonce)

    @classmethod
    def decode(cls, blob: bytes) -> SealedHeader:
        if len(blob) < HEADER_SIZE + TAG_SIZE:
            raise SealingError(
                f"sealed blob is {len(blob)} bytes, at least {HEADER_SIZE + TAG_SIZE} needed"
            )
        magic, version, policy, svn, prod, cpu_svn, key_id, state_version, nonce = (
            HEADER.unpack_from(blob, 0)
        )
        if magic != MAGIC:
            raise SealingError(f"not a wasmtee sealed blob (magic {magic!r})")
        if version != FORMAT_VERSION:
            raise SealingError(f"unsupported sealed blob format version {version}")
        try:
            seal_policy = SealPolicy(policy)
        except ValueError:
            raise SealingError(f"invalid key policy {policy} in sealed blob") from None
        return cls(seal_policy, svn, prod, cpu_svn, key_id, state_version, nonce)


class Sealer:
    """Seal and unseal data for one enclave identity on one platform.

    Keys never leave this object's methods: each call derives its key,
    uses it for one blob and drops it.
    """

    def __init__(self, platform: SealingPlatform, identity: EnclaveIdentity) -> None:
        self._platform = platform
        self._identity = identity

    def seal(self, data: bytes, policy: SealPolicy = SealPolicy.MRENCLAVE,
             label: bytes = b"") -> bytes:
        """Encrypt and authenticate `data`, bound to `policy`'s identity and `label`."""
        return self._seal(data, SealPolicy(policy), label, state_version=0)

    def unseal(self, blob: bytes, label: bytes = b"") -> bytes:
        """Decrypt a blob from `seal`.

        Raises SealingError if the blob is malformed or tampered with, was
        sealed under another label, by another enclave or signer, on
        another platform, or at a higher ISVSVN or CPUSVN than the current.
        """
        header = SealedHeader.decode(blob)
        return self._unseal(header, blob, label)

    def seal_state(self, name: str, data: bytes,
                   policy: SealPolicy = SealPolicy.MRSIGNER) -> bytes:
        """Seal a new version of the state `name`, advancing its monotonic counter.

        After this call, only the returned blob unseals with `unseal_state`:
        every earlier blob of `name` counts as a rollback.
        """
        policy = SealPolicy(policy)
        version = self._platform.increment_counter(self._counter_name(name, policy))
        return self._seal(data, policy, self._state_label(name), state_version=version)

    def state_version(self, name: str, policy: SealPolicy = SealPolicy.MRSIGNER) -> int:
        """Return the monotonic counter of the state `name` (0 if never sealed)."""
        return self._platform.read_counter(self._counter_name(name, SealPolicy(policy)))

    def unseal_state(self, name: str, blob: bytes) -> bytes:
        """Unseal the latest version of the state `name`.

        Raises RollbackError for a blob older than the counter, and
        SealingError for one that fails `unseal`'s checks.
        """
        header = SealedHeader.decode(blob)
        data = self._unseal(header, blob, self._state_label(name))
        current = self._platform.read_counter(self._counter_name(name, header.policy))
        if header.state_version != current:
            log.warning("rejected sealed state %r at version %d, counter is %d",
                        name, header.state_version, current)
            if header.state_version < current:
                raise RollbackError(
                    f"sealed state {name!r} has version {header.state_version}, older "
                    f"than the monotonic counter {current}: a rollback"
                )
            raise SealingError(
                f"sealed state {name!r} has version {header.state_version}, newer than "
                f"the monotonic counter {current}: the platform state was reset"
            )
        return data

    # -- internals -----------------------------------------------------------

    def _seal(self, data: bytes, policy: SealPolicy, label: bytes, state_version: int) -> bytes:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, not {type(data).__name__}")
        if not isinstance(label, (bytes, bytearray)):
            raise TypeError(f"label must be bytes, not {type(label).__name__}")
        if len(data) > MAX_PLAINTEXT_SIZE:
            raise SealingError(f"data is {len(data)} bytes, max {MAX_PLAINTEXT_SIZE}")
        header = SealedHeader(
            policy=policy,
            isv_svn=self._identity.isv_svn,
            isv_prod_id=self._identity.isv_prod_id,
            cpu_svn=self._platform.cpu_svn,
            key_id=os.urandom(kdf.KEY_ID_SIZE),
            state_version=state_version,
            nonce=os.urandom(12),
        )
        header_bytes = header.encode()
        key = self._derive(header)
        ciphertext = AESGCM(key).encrypt(header.nonce, bytes(data), header_bytes + bytes(label))
        return header_bytes + ciphertext

    def _unseal(self, header: SealedHeader, blob: bytes, label: bytes) -> bytes:
        identity = self._identity
        if header.isv_svn > identity.isv_svn:
            raise SealingError(
                f"blob was sealed at ISVSVN {header.isv_svn}, above this enclave's "
                f"ISVSVN {identity.isv_svn}; the SVN only moves forward"
            )
        if not kdf.svn_at_least(self._platform.cpu_svn, header.cpu_svn):
            raise SealingError(
                f"blob was sealed at CPUSVN {header.cpu_svn.hex()}, above the platform's "
                f"CPUSVN {self._platform.cpu_svn.hex()}"
            )
        if header.isv_prod_id != identity.isv_prod_id:
            raise SealingError(
                f"blob was sealed for ISVPRODID {header.isv_prod_id}, not "
                f"{identity.isv_prod_id}"
            )
        try:
            key = self._derive(header)
        except TeeError as exc:
            raise SealingError(f"cannot derive the sealing key: {exc}") from None
        try:
            return AESGCM(key).decrypt(header.nonce, blob[HEADER_SIZE:],
                                       blob[:HEADER_SIZE] + bytes(label))
        except InvalidTag:
            raise SealingError(
                "sealed blob failed authentication: it was tampered with, sealed under "
                "another label, or sealed by another enclave, signer or platform"
            ) from None

    def _derive(self, header: SealedHeader) -> bytes:
        request = kdf.KeyRequest(kdf.KEY_NAME_SEAL, int(header.policy), header.isv_svn,
                                 header.cpu_svn, header.key_id)
        return self._platform.get_key(self._identity, request)

    def _counter_name(self, name: str, policy: SealPolicy) -> str:
        if not isinstance(name, str) or not name:
            raise TypeError(f"state name must be a non-empty string, not {name!r}")
        owner = (self._identity.mr_enclave if policy == SealPolicy.MRENCLAVE
                 else self._identity.mr_signer + self._identity.isv_prod_id.to_bytes(2, "little"))
        return f"seal:{policy.name.lower()}:{owner.hex()}:{name}"

    @staticmethod
    def _state_label(name: str) -> bytes:
        return b"wasmtee sealed state\x00" + name.encode()

