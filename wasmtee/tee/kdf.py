"""The EGETKEY-like key derivation that sealing keys come from.

SGX derives a seal key with AES-CMAC under a fused platform key over a
KeyDependencies structure that contains the key name, the policy-selected
identity (MRENCLAVE and/or MRSIGNER), ISVPRODID, ISVSVN, CPUSVN and a
KEYID (Intel SDM vol. 3D, "EGETKEY"). wasmtee keeps that scheme with its
own fixed layout, so that derived keys are stable across versions:

    label "WASMTEE-EGETKEY\\0" (16) | key name u16 | key policy u16 |
    ISVSVN u16 | ISVPRODID u16 | CPUSVN (16) | MRENCLAVE or zeros (32) |
    MRSIGNER or zeros (32) | attribute flags u64 | KEYID (32)

The result is AES-CMAC(root key, that string): a 16-byte AES-128 key, as
SGX keys are. Known-answer vectors are in tests/vectors/seal_kdf.json.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.cmac import CMAC

KDF_LABEL = b"WASMTEE-EGETKEY\x00"
KEY_NAME_SEAL = 4  # SGX KEYNAME value of the seal key
KEY_POLICY_MRENCLAVE = 0x1
KEY_POLICY_MRSIGNER = 0x2
KEY_ID_SIZE = 32
KEY_DEPENDENCIES = struct.Struct("<16sHHHH16s32s32sQ32s")


@dataclass(frozen=True)
class KeyRequest:
    """An enclave's key request: key name, policy, SVNs to derive for, and KEYID."""

    key_name: int
    key_policy: int
    isv_svn: int
    cpu_svn: bytes
    key_id: bytes

    def __post_init__(self) -> None:
        if self.key_policy not in (KEY_POLICY_MRENCLAVE, KEY_POLICY_MRSIGNER):
            raise ValueError(f"key policy must be MRENCLAVE (1) or MRSIGNER (2), not {self.key_policy}")
        if len(self.cpu_svn) != 16:
            raise ValueError(f"cpu_svn must be 16 bytes, not {len(self.cpu_svn)}")
        if len(self.key_id) != KEY_ID_SIZE:
            raise ValueError(f"key_id must be {KEY_ID_SIZE} bytes, not {len(self.key_id)}")
        if not 0 <= self.isv_svn <= 0xFFFF:
            raise ValueError(f"isv_svn must be in 0..65535, not {self.isv_svn}")


def key_dependencies(
    request: KeyRequest,
    mr_enclave: bytes,
    mr_signer: bytes,
    isv_prod_id: int,
    attributes_flags: int,
) -> bytes:
    """Build the byte string the key is derived from, masking identity by policy."""
    enclave_part = mr_enclave if request.key_policy == KEY_POLICY_MRENCLAVE else bytes(32)
    signer_part = mr_signer if request.key_policy == KEY_POLICY_MRSIGNER else bytes(32)
    return KEY_DEPENDENCIES.pack(
        KDF_LABEL,
        request.key_name,
        request.key_policy,
        request.isv_svn,
        isv_prod_id,
        request.cpu_svn,
        enclave_part,
        signer_part,
        attributes_flags,
        request.key_id,
    )


def derive_key(root_key: bytes, dependencies: bytes) -> bytes:
    """Return AES-CMAC(root_key, dependencies), a 16-byte key."""
    if len(root_key) not in (16, 32):
        raise ValueError(f"root key must be 16 or 32 bytes, not {len(root_key)}")
    mac = CMAC(algorithms.AES(root_key))
    mac.update(dependencies)
    return mac.finalize()


def svn_at_least(current: bytes, requested: bytes) -> bool:
    """Return whether every component of CPUSVN `current` is >= that of `requested`."""
    return all(have >= want for have, want in zip(current, requested, strict=True))
