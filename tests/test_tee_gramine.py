"""The gramine backend against an emulated /dev/attestation directory."""

from __future__ import annotations

import hashlib
import sys

import pytest

from wasmtee.tee import kdf
from wasmtee.tee.enclave import Enclave
from wasmtee.tee.errors import RollbackError, SealingError, TeeError
from wasmtee.tee.gramine import GraminePlatform
from wasmtee.tee.measure import EnclaveIdentity
from wasmtee.tee.quote import ReportBody, parse_quote
from wasmtee.tee.sealing import Sealer, SealPolicy
from wasmtee.tee.sim import SimPlatform

HW_MR_ENCLAVE = hashlib.sha256(b"gramine enclave").digest()
HW_MR_SIGNER = hashlib.sha256(b"gramine signer").digest()
REPORT_DATA = b"quote me".ljust(64, b"\x00")


def hardware_report() -> ReportBody:
    return ReportBody(cpu_svn=bytes([3] * 16), misc_select=0, attributes_flags=0x5,
                      attributes_xfrm=0xE7, mr_enclave=HW_MR_ENCLAVE, mr_signer=HW_MR_SIGNER,
                      isv_prod_id=11, isv_svn=4, report_data=bytes(64))


@pytest.fixture
def attestation_dir(tmp_path):
    directory = tmp_path / "attestation"
    (directory / "keys").mkdir(parents=True)
    (directory / "attestation_type").write_text("dcap")
    (directory / "report").write_bytes(hardware_report().encode() + bytes(48))
    (directory / "user_report_data").write_bytes(bytes(64))
    (directory / "keys" / "_sgx_mrenclave").write_bytes(bytes(range(16)))
    (directory / "keys" / "_sgx_mrsigner").write_bytes(bytes(range(16, 32)))
    # The emulated quote file contains a quote over REPORT_DATA.
    sim = SimPlatform(tmp_path / "sim")
    identity = EnclaveIdentity(HW_MR_ENCLAVE, HW_MR_SIGNER, 11, 4, 0x5)
    (directory / "quote").write_bytes(sim.quote(identity, REPORT_DATA))
    return directory


def measured_identity():
    return EnclaveIdentity(bytes(32), bytes(32), 11, 4, 0x7)


def test_identity_comes_from_report(attestation_dir):
    platform = GraminePlatform(attestation_dir)
    identity = platform.bind_identity(measured_identity())
    assert identity.mr_enclave == HW_MR_ENCLAVE
    assert identity.mr_signer == HW_MR_SIGNER
    assert identity.isv_prod_id == 11
    assert identity.isv_svn == 4
    assert not identity.debug
    assert platform.cpu_svn == bytes([3] * 16)


def test_quote_writes_user_report_data(attestation_dir):
    platform = GraminePlatform(attestation_dir)
    identity = platform.bind_identity(measured_identity())
    quote = platform.quote(identity, b"quote me")
    assert (attestation_dir / "user_report_data").read_bytes() == REPORT_DATA
    assert parse_quote(quote).body.report_data == REPORT_DATA


def test_quote_for_other_report_data_rejected(attestation_dir):
    platform = GraminePlatform(attestation_dir)
    identity = platform.bind_identity(measured_identity())
    with pytest.raises(TeeError, match="quote for other report data"):
        platform.quote(identity, b"something else")
    (attestation_dir / "quote").write_bytes(b"garbage")
    with pytest.raises(TeeError, match="invalid quote"):
        platform.quote(identity, b"quote me")


def test_wrong_attestation_type_rejected(attestation_dir):
    (attestation_dir / "attestation_type").write_text("none")
    with pytest.raises(TeeError, match="attestation type is 'none', expected 'dcap'"):
        GraminePlatform(attestation_dir)


def test_missing_interface_rejected(tmp_path):
    with pytest.raises(TeeError, match="running under gramine-sgx"):
        GraminePlatform(tmp_path / "absent")


def test_short_report_rejected(attestation_dir):
    (attestation_dir / "report").write_bytes(bytes(100))
    with pytest.raises(TeeError, match="report is 100 bytes, expected 432"):
        GraminePlatform(attestation_dir)


def test_keys_derive_from_gramine_keys(attestation_dir):
    platform = GraminePlatform(attestation_dir)
    identity = platform.bind_identity(measured_identity())
    key_id = bytes(32)
    by_enclave = kdf.KeyRequest(kdf.KEY_NAME_SEAL, kdf.KEY_POLICY_MRENCLAVE, 4,
                                platform.cpu_svn, key_id)
    by_signer = kdf.KeyRequest(kdf.KEY_NAME_SEAL, kdf.KEY_POLICY_MRSIGNER, 4,
                               platform.cpu_svn, key_id)
    expected = kdf.derive_key(bytes(range(16)), kdf.key_dependencies(
        by_enclave, HW_MR_ENCLAVE, HW_MR_SIGNER, 11, 0x5))
    assert platform.get_key(identity, by_enclave) == expected
    assert platform.get_key(identity, by_signer) != expected
    older = kdf.KeyRequest(kdf.KEY_NAME_SEAL, kdf.KEY_POLICY_MRSIGNER, 3, platform.cpu_svn,
                           key_id)
    with pytest.raises(TeeError, match="only for the current ISVSVN 4"):
        platform.get_key(identity, older)


def test_sealing_on_gramine(attestation_dir, tmp_path):
    state = tmp_path / "sealed"
    state.mkdir()
    platform = GraminePlatform(attestation_dir, state)
    sealer = Sealer(platform, platform.bind_identity(measured_identity()))
    blob = sealer.seal(b"secret", SealPolicy.MRSIGNER)
    assert sealer.unseal(blob) == b"secret"
    first = sealer.seal_state("ledger", b"v1")
    second = sealer.seal_state("ledger", b"v2")
    assert sealer.unseal_state("ledger", second) == b"v2"
    with pytest.raises(RollbackError):
        sealer.unseal_state("ledger", first)
    (attestation_dir / "keys" / "_sgx_mrsigner").write_bytes(bytes(16))
    with pytest.raises(SealingError, match="failed authentication"):
        sealer.unseal(blob)


def test_counters_need_state_dir(attestation_dir):
    platform = GraminePlatform(attestation_dir)
    with pytest.raises(TeeError, match="needs a state directory"):
        platform.increment_counter("x")


def test_enclave_process_on_gramine_backend(attestation_dir):
    command = [sys.executable, "-m", "wasmtee.tee.enclave_main", "0", "1"]
    with Enclave(backend="gramine", attestation_dir=attestation_dir, command=command,
                 stdio=True, timeout=20) as enclave:
        assert enclave.identity["mr_enclave"] == HW_MR_ENCLAVE
        assert enclave.identity["isv_svn"] == 4
        assert enclave.identity["debug"] is False
        quote = enclave.get_quote(b"quote me")
        assert parse_quote(quote).body.mr_enclave == HW_MR_ENCLAVE
        blob = enclave.seal(b"data", "mrenclave")
        assert enclave.unseal(blob) == b"data"
