"""DCAP v3 quote layout, KDF known answers and the sim platform's state."""

from __future__ import annotations

import json
import os
import stat
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.cmac import CMAC

from wasmtee.tee import kdf
from wasmtee.tee.errors import QuoteFormatError, TeeError
from wasmtee.tee.measure import EnclaveConfig, EnclaveIdentity, enclave_attributes, measure_runtime
from wasmtee.tee.quote import (
    ATTRIBUTE_DEBUG,
    INTEL_QE_VENDOR_ID,
    OFFSET_ISV_PROD_ID,
    OFFSET_ISV_SVN,
    OFFSET_MR_ENCLAVE,
    OFFSET_MR_SIGNER,
    OFFSET_REPORT_DATA,
    SIM_QE_VENDOR_ID,
    QuoteHeader,
    QuoteSignatureData,
    ReportBody,
    encode_quote,
    parse_quote,
)
from wasmtee.tee.sim import SIMULATED_MARKER, SimPlatform

VECTORS = Path(__file__).parent / "vectors"


def load_vector(name: str) -> dict:
    return json.loads((VECTORS / name).read_text())


def test_quote_layout_known_answer():
    vector = load_vector("quote_layout.json")
    header = vector["header"]
    body = vector["body"]
    quote = bytes.fromhex(vector["quote"])
    parsed = parse_quote(quote)
    assert parsed.header == QuoteHeader(
        header["version"], header["attestation_key_type"], header["tee_type"],
        header["qe_svn"], header["pce_svn"], bytes.fromhex(header["qe_vendor_id"]),
        bytes.fromhex(header["user_data"]),
    )
    assert parsed.body.mr_enclave == bytes.fromhex(body["mr_enclave"])
    assert parsed.body.mr_signer == bytes.fromhex(body["mr_signer"])
    assert parsed.body.isv_prod_id == body["isv_prod_id"]
    assert parsed.body.isv_svn == body["isv_svn"]
    assert parsed.body.report_data == bytes.fromhex(body["report_data"])
    assert parsed.body.cpu_svn == bytes.fromhex(body["cpu_svn"])
    assert parsed.body.misc_select == body["misc_select"]
    assert parsed.body.attributes_flags == body["attributes_flags"]
    assert parsed.body.attributes_xfrm == body["attributes_xfrm"]
    rebuilt = encode_quote(parsed.header, parsed.body, parsed.signature_data)
    assert rebuilt == quote


def test_quote_fixed_offsets():
    quote = bytes.fromhex(load_vector("quote_layout.json")["quote"])
    assert quote[OFFSET_MR_ENCLAVE:OFFSET_MR_ENCLAVE + 32] == bytes([0xE1] * 32)
    assert quote[OFFSET_MR_SIGNER:OFFSET_MR_SIGNER + 32] == bytes([0x51] * 32)
    assert struct.unpack_from("<H", quote, OFFSET_ISV_PROD_ID)[0] == 0x1234
    assert struct.unpack_from("<H", quote, OFFSET_ISV_SVN)[0] == 0x5678
    assert quote[OFFSET_REPORT_DATA:OFFSET_REPORT_DATA + 64] == bytes(range(64))
    assert (OFFSET_MR_ENCLAVE, OFFSET_MR_SIGNER, OFFSET_ISV_PROD_ID, OFFSET_ISV_SVN,
            OFFSET_REPORT_DATA) == (112, 176, 304, 306, 368)
    # Attributes flags sit at quote offset 96 (report body offset 48).
    assert struct.unpack_from("<Q", quote, 96)[0] == 0x7
    # The signature data length at 432 covers the rest of the quote.
    assert struct.unpack_from("<I", quote, 432)[0] == len(quote) - 436


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda q: q[:100], "truncated quote"),
        (lambda q: struct.pack("<H", 4) + q[2:], "unsupported quote version 4"),
        (lambda q: q[:2] + struct.pack("<H", 3) + q[4:], "unsupported attestation key type 3"),
        (lambda q: q[:4] + struct.pack("<I", 0x81) + q[8:], "unsupported TEE type 0x81"),
        (lambda q: q + b"\x00", "signature data length"),
        (lambda q: q[:-1], "signature data length"),
        (lambda q: q[:432] + struct.pack("<I", 600) + q[436:1036], "QE authentication data size"),
    ],
)
def test_parse_quote_rejects_malformed(mutate, message):
    quote = bytes.fromhex(load_vector("quote_layout.json")["quote"])
    with pytest.raises(QuoteFormatError, match=message):
        parse_quote(mutate(quote))


def test_parse_quote_rejects_bad_sizes_inside_signature_data():
    quote = bytearray.fromhex(load_vector("quote_layout.json")["quote"])
    auth_offset = 436 + 64 + 64 + 384 + 64
    quote[auth_offset:auth_offset + 2] = struct.pack("<H", 0xFFFF)
    with pytest.raises(QuoteFormatError, match="QE authentication data size 65535"):
        parse_quote(bytes(quote))
    quote = bytearray.fromhex(load_vector("quote_layout.json")["quote"])
    cert_size_offset = auth_offset + 2 + 32 + 2
    quote[cert_size_offset:cert_size_offset + 4] = struct.pack("<I", 5)
    with pytest.raises(QuoteFormatError, match="certification data size 5"):
        parse_quote(bytes(quote))


def test_parse_quote_rejects_non_bytes():
    with pytest.raises(TypeError, match="quote must be bytes"):
        parse_quote("not bytes")


def test_encode_rejects_wrong_field_size():
    body = ReportBody(bytes(16), 0, 0, 0, bytes(31), bytes(32), 0, 0, bytes(64))
    with pytest.raises(ValueError, match="mr_enclave must be 32 bytes, not 31"):
        body.encode()


def test_cmac_matches_rfc4493():
    for case in load_vector("seal_kdf.json")["cmac"]["cases"]:
        mac = CMAC(algorithms.AES(bytes.fromhex(case["key"])))
        mac.update(bytes.fromhex(case["message"]))
        assert mac.finalize().hex() == case["mac"]
        assert kdf.derive_key(bytes.fromhex(case["key"]),
                              bytes.fromhex(case["message"])).hex() == case["mac"]


def test_seal_kdf_known_answers():
    for case in load_vector("seal_kdf.json")["cases"]:
        request = kdf.KeyRequest(case["key_name"], case["key_policy"], case["isv_svn"],
                                 bytes.fromhex(case["cpu_svn"]), bytes.fromhex(case["key_id"]))
        dependencies = kdf.key_dependencies(
            request, bytes.fromhex(case["mr_enclave"]), bytes.fromhex(case["mr_signer"]),
            case["isv_prod_id"], case["attributes_flags"],
        )
        assert dependencies.hex() == case["dependencies"]
        assert kdf.derive_key(bytes.fromhex(case["root_key"]), dependencies).hex() == case["key"]


def test_seal_kdf_masks_identity_by_policy():
    key_id = bytes(32)
    by_enclave = kdf.KeyRequest(kdf.KEY_NAME_SEAL, kdf.KEY_POLICY_MRENCLAVE, 1, bytes(16), key_id)
    by_signer = kdf.KeyRequest(kdf.KEY_NAME_SEAL, kdf.KEY_POLICY_MRSIGNER, 1, bytes(16), key_id)
    a = kdf.key_dependencies(by_enclave, b"\x01" * 32, b"\x02" * 32, 0, 0)
    b = kdf.key_dependencies(by_enclave, b"\x01" * 32, b"\x03" * 32, 0, 0)
    assert a == b  # MRSIGNER does not enter an MRENCLAVE-policy key
    c = kdf.key_dependencies(by_signer, b"\x01" * 32, b"\x02" * 32, 0, 0)
    d = kdf.key_dependencies(by_signer, b"\x04" * 32, b"\x02" * 32, 0, 0)
    assert c == d  # MRENCLAVE does not enter an MRSIGNER-policy key
    assert a != c


def test_key_request_rejects_bad_policy():
    with pytest.raises(ValueError, match="key policy must be"):
        kdf.KeyRequest(kdf.KEY_NAME_SEAL, 3, 0, bytes(16), bytes(32))


def test_sim_state_files_are_private(tmp_path):
    state = tmp_path / "state"
    SimPlatform(state)
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    files = sorted(path.name for path in state.iterdir())
    assert "root_key.bin" in files
    for path in state.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def test_sim_state_persists(tmp_path):
    first = SimPlatform(tmp_path)
    second = SimPlatform(tmp_path)
    assert first.mr_signer == second.mr_signer
    assert first.root_certificate == second.root_certificate
    identity = EnclaveIdentity(bytes(32), first.mr_signer, 0, 0, 0x7)
    request = kdf.KeyRequest(kdf.KEY_NAME_SEAL, kdf.KEY_POLICY_MRSIGNER, 0, first.cpu_svn, bytes(32))
    assert first.get_key(identity, request) == second.get_key(identity, request)


def test_sim_state_corrupt_root_key(tmp_path):
    SimPlatform(tmp_path)
    (tmp_path / "root_key.bin").write_bytes(b"short")
    with pytest.raises(TeeError, match="must hold 32 bytes, not 5"):
        SimPlatform(tmp_path)


def test_sim_quote_is_marked_simulated(tmp_path):
    platform = SimPlatform(tmp_path)
    config = EnclaveConfig(debug=False)
    identity = EnclaveIdentity(measure_runtime(config), platform.mr_signer, 3, 4,
                               enclave_attributes(config))
    quote = parse_quote(platform.quote(identity, b"abc"))
    assert quote.header.qe_vendor_id == SIM_QE_VENDOR_ID
    assert quote.header.qe_vendor_id != INTEL_QE_VENDOR_ID
    assert quote.body.attributes_flags & ATTRIBUTE_DEBUG
    assert quote.body.report_data == b"abc" + bytes(61)
    assert quote.body.isv_prod_id == 3
    assert quote.body.isv_svn == 4
    assert SIMULATED_MARKER in platform.pck_certificate.subject.rfc4514_string()
    assert SIMULATED_MARKER in platform.root_certificate.subject.rfc4514_string()


def test_sim_key_request_above_svn(tmp_path):
    platform = SimPlatform(tmp_path)
    identity = EnclaveIdentity(bytes(32), platform.mr_signer, 0, 2, 0x7)
    too_new = kdf.KeyRequest(kdf.KEY_NAME_SEAL, kdf.KEY_POLICY_MRSIGNER, 3, platform.cpu_svn,
                             bytes(32))
    with pytest.raises(TeeError, match="ISVSVN 3 is above the enclave's ISVSVN 2"):
        platform.get_key(identity, too_new)
    newer_cpu = kdf.KeyRequest(kdf.KEY_NAME_SEAL, kdf.KEY_POLICY_MRSIGNER, 0, bytes([9] * 16),
                               bytes(32))
    with pytest.raises(TeeError, match="CPUSVN"):
        platform.get_key(identity, newer_cpu)


def test_sim_counters_are_monotonic(tmp_path):
    platform = SimPlatform(tmp_path)
    assert platform.read_counter("state") == 0
    assert platform.increment_counter("state") == 1
    assert platform.increment_counter("state") == 2
    assert SimPlatform(tmp_path).read_counter("state") == 2
    assert platform.read_counter("other") == 0


def test_measurement_depends_on_config():
    assert measure_runtime(EnclaveConfig()) == measure_runtime(EnclaveConfig())
    assert measure_runtime(EnclaveConfig()) != measure_runtime(EnclaveConfig(isv_svn=1))


def test_measurement_covers_code(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "a.py").write_text("x = 1\n")
    (package / "sub" / "b.py").write_text("y = 2\n")
    before = measure_runtime(EnclaveConfig(), root=package)
    (package / "sub" / "b.py").write_text("y = 3\n")
    assert measure_runtime(EnclaveConfig(), root=package) != before
    (package / "sub" / "b.py").write_text("y = 2\n")
    assert measure_runtime(EnclaveConfig(), root=package) == before
    (package / "c.txt").write_text("not code")
    assert measure_runtime(EnclaveConfig(), root=package) == before
