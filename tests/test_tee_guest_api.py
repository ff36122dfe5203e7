"""The guest attestation functions over a simulated linear memory."""

from __future__ import annotations

import hashlib

import pytest

from wasmtee.tee.attester import Attester
from wasmtee.tee.errors import VerificationError
from wasmtee.tee.guest_api import (
    FIELD_DEBUG,
    FIELD_ISV_SVN,
    FIELD_MR_ENCLAVE,
    FIELD_USER_DATA,
    GuestAttestation,
    guest_user_data,
)
from wasmtee.tee.measure import EnclaveIdentity
from wasmtee.tee.sim import SimPlatform
from wasmtee.tee.verify import Policy

MODULE_HASH = hashlib.sha256(b"guest module").digest()
MR_ENCLAVE = hashlib.sha256(b"guest enclave").digest()


class FakeMemory:
    """A bytearray with the bounds checks a linear memory performs."""

    def __init__(self, size=65536):
        self.data = bytearray(size)

    def read(self, address, size):
        if address < 0 or size < 0 or address + size > len(self.data):
            raise IndexError(f"out of bounds memory access ({address} + {size})")
        return bytes(self.data[address:address + size])

    def write(self, address, data):
        if address < 0 or address + len(data) > len(self.data):
            raise IndexError(f"out of bounds memory access ({address} + {len(data)})")
        self.data[address:address + len(data)] = data


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    return SimPlatform(tmp_path_factory.mktemp("sim"))


def sim_policy(mr_enclave, mr_signer):
    return Policy(mr_enclave=mr_enclave, allow_simulation=True, allow_debug=True)


@pytest.fixture(scope="module")
def api(platform):
    attester = Attester(platform, EnclaveIdentity(MR_ENCLAVE, platform.mr_signer, 1, 2, 0x7))
    return GuestAttestation(attester, MODULE_HASH, [platform.root_certificate], sim_policy)


def test_collect_and_verify_through_memory(api):
    memory = FakeMemory()
    memory.write(0, b"hello peer")
    length = api.collect_evidence(memory, 0, 10, 1024, 60000)
    assert length > 0
    memory.write(100, guest_user_data(MODULE_HASH, b"hello peer"))
    assert api.verify_evidence(memory, 1024, length, 100) == 0
    memory.write(100, guest_user_data(MODULE_HASH, b"other"))
    assert api.verify_evidence(memory, 1024, length, 100) == 1


def test_collect_reports_needed_size(api):
    memory = FakeMemory()
    needed = api.collect_evidence(memory, 0, 4, 1024, 16)
    assert needed < -16
    assert memory.data[1024:1040] == bytes(16)
    assert api.collect_evidence(memory, 0, 4, 1024, -needed) > 0


def test_evidence_fields(api):
    memory = FakeMemory()
    length = api.collect_evidence(memory, 0, 8, 1024, 60000)
    assert api.evidence_field(memory, 1024, length, FIELD_MR_ENCLAVE, 200, 32) == 32
    assert memory.read(200, 32) == MR_ENCLAVE
    assert api.evidence_field(memory, 1024, length, FIELD_ISV_SVN, 300, 2) == 2
    assert memory.read(300, 2) == (2).to_bytes(2, "little")
    assert api.evidence_field(memory, 1024, length, FIELD_USER_DATA, 400, 32) == 32
    assert memory.read(400, 32) == guest_user_data(MODULE_HASH, bytes(8))
    assert api.evidence_field(memory, 1024, length, FIELD_DEBUG, 500, 1) == 1
    assert memory.read(500, 1) == b"\x01"
    assert api.evidence_field(memory, 1024, length, 99, 500, 1) == -1


def test_tampered_evidence_rejected(api):
    memory = FakeMemory()
    length = api.collect_evidence(memory, 0, 8, 1024, 60000)
    memory.data[1024 + 200] ^= 1
    memory.write(100, guest_user_data(MODULE_HASH, bytes(8)))
    assert api.verify_evidence(memory, 1024, length, 100) == 1
    assert api.evidence_field(memory, 1024, length, FIELD_MR_ENCLAVE, 200, 32) == -1


def test_strict_default_policy_rejects_sim(platform):
    attester = Attester(platform, EnclaveIdentity(MR_ENCLAVE, platform.mr_signer, 1, 2, 0x7))
    strict = GuestAttestation(attester, MODULE_HASH, [platform.root_certificate])
    with pytest.raises(VerificationError) as info:
        strict.verify(strict.collect(b"x"))
    assert info.value.check == "simulation"


def test_bad_lengths_rejected(api):
    memory = FakeMemory()
    assert api.collect_evidence(memory, 0, -1, 0, 10) == -1
    assert api.verify_evidence(memory, 0, 2**31, 0) == 1
    assert api.evidence_field(memory, 0, -5, FIELD_MR_ENCLAVE, 0, 32) == -1
    with pytest.raises(IndexError):
        api.collect_evidence(memory, 65530, 100, 0, 10)


def test_host_function_signatures(api):
    functions = api.host_functions()
    assert functions["collect_evidence"][:2] == (["i32"] * 4, ["i32"])
    assert functions["verify_evidence"][:2] == (["i32"] * 3, ["i32"])
    assert functions["evidence_field"][:2] == (["i32"] * 5, ["i32"])
