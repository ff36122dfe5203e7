"""Sealing: policies, SVN direction, tampering, label swaps and rollback."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from wasmtee.tee.errors import RollbackError, SealingError
from wasmtee.tee.measure import EnclaveIdentity
from wasmtee.tee.sealing import HEADER_SIZE, SealedHeader, Sealer, SealPolicy
from wasmtee.tee.sim import SimPlatform

SECRET = b"model weights and API keys"


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    return SimPlatform(tmp_path_factory.mktemp("sim"))


def identity_for(platform, build=b"build 1", svn=1, prod=5, signer=None):
    return EnclaveIdentity(hashlib.sha256(build).digest(), signer or platform.mr_signer,
                           prod, svn, 0x7)


@pytest.mark.parametrize("policy", [SealPolicy.MRENCLAVE, SealPolicy.MRSIGNER])
def test_seal_roundtrip(platform, policy):
    sealer = Sealer(platform, identity_for(platform))
    blob = sealer.seal(SECRET, policy, label=b"config")
    assert SECRET not in blob
    assert sealer.unseal(blob, label=b"config") == SECRET
    assert SealedHeader.decode(blob).policy == policy


def test_seal_empty_data(platform):
    sealer = Sealer(platform, identity_for(platform))
    assert sealer.unseal(sealer.seal(b"")) == b""


def test_each_blob_has_fresh_key_id(platform):
    sealer = Sealer(platform, identity_for(platform))
    first = SealedHeader.decode(sealer.seal(SECRET))
    second = SealedHeader.decode(sealer.seal(SECRET))
    assert first.key_id != second.key_id
    assert first.nonce != second.nonce


def test_mrenclave_blob_bound_to_build(platform):
    blob = Sealer(platform, identity_for(platform, build=b"build 1")).seal(SECRET)
    other_build = Sealer(platform, identity_for(platform, build=b"build 2"))
    with pytest.raises(SealingError, match="failed authentication"):
        other_build.unseal(blob)


def test_mrsigner_blob_survives_upgrade(platform):
    old = Sealer(platform, identity_for(platform, build=b"v1", svn=1))
    blob = old.seal(SECRET, SealPolicy.MRSIGNER)
    upgraded = Sealer(platform, identity_for(platform, build=b"v2", svn=2))
    assert upgraded.unseal(blob) == SECRET


def test_svn_never_moves_backwards(platform):
    new = Sealer(platform, identity_for(platform, build=b"v2", svn=2))
    blob = new.seal(SECRET, SealPolicy.MRSIGNER)
    downgraded = Sealer(platform, identity_for(platform, build=b"v1", svn=1))
    with pytest.raises(SealingError, match="sealed at ISVSVN 2, above this enclave's ISVSVN 1"):
        downgraded.unseal(blob)


def test_forged_lower_svn_header_rejected(platform):
    # Lowering the SVN in the header makes the platform derive another key.
    new = Sealer(platform, identity_for(platform, svn=2))
    blob = bytearray(new.seal(SECRET, SealPolicy.MRSIGNER))
    blob[8] = 1  # ISVSVN field at header offset 8
    old = Sealer(platform, identity_for(platform, svn=1))
    with pytest.raises(SealingError, match="failed authentication"):
        old.unseal(bytes(blob))


def test_mrsigner_blob_bound_to_signer_and_product(platform):
    blob = Sealer(platform, identity_for(platform)).seal(SECRET, SealPolicy.MRSIGNER)
    other_signer = Sealer(platform, identity_for(platform, signer=bytes(32)))
    with pytest.raises(SealingError, match="failed authentication"):
        other_signer.unseal(blob)
    other_product = Sealer(platform, identity_for(platform, prod=6))
    with pytest.raises(SealingError, match="sealed for ISVPRODID 5, not 6"):
        other_product.unseal(blob)


def test_cpu_svn_downgrade_rejected(platform, tmp_path):
    blob = Sealer(platform, identity_for(platform)).seal(SECRET)
    older_cpu = SimPlatform(platform.state_dir, cpu_svn=bytes([1] * 16))
    with pytest.raises(SealingError, match="above the platform's CPUSVN"):
        Sealer(older_cpu, identity_for(platform)).unseal(blob)


def test_other_platform_cannot_unseal(platform, tmp_path):
    blob = Sealer(platform, identity_for(platform)).seal(SECRET)
    other = SimPlatform(tmp_path)
    identity = dataclasses.replace(identity_for(platform))
    with pytest.raises(SealingError, match="failed authentication"):
        Sealer(other, identity).unseal(blob)


def test_tampered_blob_rejected_at_every_byte(platform):
    sealer = Sealer(platform, identity_for(platform, svn=1))
    blob = sealer.seal(SECRET, SealPolicy.MRENCLAVE, label=b"x")
    for offset in range(len(blob)):
        tampered = bytearray(blob)
        tampered[offset] ^= 0x80
        with pytest.raises(SealingError):
            sealer.unseal(bytes(tampered), label=b"x")


def test_truncated_blob_rejected(platform):
    sealer = Sealer(platform, identity_for(platform))
    blob = sealer.seal(SECRET)
    with pytest.raises(SealingError, match="at least 96 needed"):
        sealer.unseal(blob[:HEADER_SIZE])
    with pytest.raises(SealingError, match="failed authentication"):
        sealer.unseal(blob[:-1])
    with pytest.raises(SealingError, match="not a wasmtee sealed blob"):
        sealer.unseal(b"X" * 200)


def test_swapped_label_rejected(platform):
    sealer = Sealer(platform, identity_for(platform))
    blob = sealer.seal(SECRET, label=b"database key")
    with pytest.raises(SealingError, match="failed authentication"):
        sealer.unseal(blob, label=b"tls key")


def test_state_rollback_detected(platform):
    sealer = Sealer(platform, identity_for(platform, build=b"rollback test"))
    first = sealer.seal_state("ledger", b"balance=100")
    assert sealer.unseal_state("ledger", first) == b"balance=100"
    second = sealer.seal_state("ledger", b"balance=0")
    assert sealer.unseal_state("ledger", second) == b"balance=0"
    with pytest.raises(RollbackError, match="version 1, older than the monotonic counter 2"):
        sealer.unseal_state("ledger", first)


def test_state_swap_between_names_rejected(platform):
    sealer = Sealer(platform, identity_for(platform, build=b"swap test"))
    alpha = sealer.seal_state("alpha", b"A")
    sealer.seal_state("beta", b"B")
    with pytest.raises(SealingError, match="failed authentication"):
        sealer.unseal_state("beta", alpha)


def test_state_counter_survives_upgrade(platform):
    v1 = Sealer(platform, identity_for(platform, build=b"state v1", svn=1, prod=9))
    blob = v1.seal_state("ledger", b"state", SealPolicy.MRSIGNER)
    v2 = Sealer(platform, identity_for(platform, build=b"state v2", svn=2, prod=9))
    assert v2.unseal_state("ledger", blob) == b"state"
    newer = v2.seal_state("ledger", b"state 2", SealPolicy.MRSIGNER)
    assert v2.unseal_state("ledger", newer) == b"state 2"
    with pytest.raises(RollbackError):
        v2.unseal_state("ledger", blob)


def test_seal_rejects_non_bytes(platform):
    sealer = Sealer(platform, identity_for(platform))
    with pytest.raises(TypeError, match="data must be bytes, not str"):
        sealer.seal("text")
    with pytest.raises(ValueError):
        sealer.seal(b"x", policy=3)
