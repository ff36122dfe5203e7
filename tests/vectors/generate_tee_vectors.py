"""Regenerate the TEE known-answer files in this directory.

Run `python3 tests/vectors/generate_tee_vectors.py` from the repository root
only when the KDF or quote layout changes on purpose: the tests compare the
code against these files, so a regenerated file hides a regression.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from wasmtee.tee import kdf  # noqa: E402
from wasmtee.tee.quote import (  # noqa: E402
    QuoteHeader,
    QuoteSignatureData,
    ReportBody,
    encode_quote,
)

HERE = Path(__file__).resolve().parent


def kdf_cases() -> list[dict]:
    cases = []
    inputs = [
        (bytes(32), kdf.KEY_POLICY_MRENCLAVE, 0, bytes(16), bytes(32), bytes(32), bytes(32), 0, 0x7),
        (bytes(range(32)), kdf.KEY_POLICY_MRENCLAVE, 1, bytes([2] * 16), bytes([0xAA] * 32),
         bytes([0x11] * 32), bytes([0x22] * 32), 7, 0x7),
        (bytes(range(32)), kdf.KEY_POLICY_MRSIGNER, 1, bytes([2] * 16), bytes([0xAA] * 32),
         bytes([0x11] * 32), bytes([0x22] * 32), 7, 0x7),
        (bytes(range(32)), kdf.KEY_POLICY_MRSIGNER, 2, bytes([2] * 16), bytes([0xAA] * 32),
         bytes([0x33] * 32), bytes([0x22] * 32), 7, 0x7),
        (bytes(range(16)), kdf.KEY_POLICY_MRSIGNER, 65535, bytes([0xFF] * 16), bytes([0x5C] * 32),
         bytes([0x44] * 32), bytes([0x55] * 32), 65535, 0x5),
    ]
    for root, policy, svn, cpu_svn, key_id, mr_enclave, mr_signer, prod, flags in inputs:
        request = kdf.KeyRequest(kdf.KEY_NAME_SEAL, policy, svn, cpu_svn, key_id)
        dependencies = kdf.key_dependencies(request, mr_enclave, mr_signer, prod, flags)
        cases.append({
            "root_key": root.hex(), "key_name": kdf.KEY_NAME_SEAL, "key_policy": policy,
            "isv_svn": svn, "cpu_svn": cpu_svn.hex(), "key_id": key_id.hex(),
            "mr_enclave": mr_enclave.hex(), "mr_signer": mr_signer.hex(),
            "isv_prod_id": prod, "attributes_flags": flags,
            "dependencies": dependencies.hex(),
            "key": kdf.derive_key(root, dependencies).hex(),
        })
    return cases


def quote_case() -> dict:
    header = QuoteHeader(3, 2, 0, 5, 9, bytes(range(16)), bytes(range(100, 120)))
    body = ReportBody(
        cpu_svn=bytes(range(16)), misc_select=0x01020304, attributes_flags=0x7,
        attributes_xfrm=0xE7, mr_enclave=bytes([0xE1] * 32), mr_signer=bytes([0x51] * 32),
        isv_prod_id=0x1234, isv_svn=0x5678, report_data=bytes(range(64)),
    )
    qe_report = ReportBody(bytes(16), 0, 0x5, 0x3, bytes([0xAB] * 32), bytes([0xCD] * 32),
                           1, 2, bytes([0x99] * 64))
    signature_data = QuoteSignatureData(
        quote_signature=bytes([0x01] * 64), attestation_key=bytes([0x02] * 64),
        qe_report=qe_report, qe_report_signature=bytes([0x03] * 64),
        qe_auth_data=bytes(range(32)), certification_data_type=5,
        certification_data=b"-----BEGIN CERTIFICATE-----\nnot a real chain\n",
    )
    quote = encode_quote(header, body, signature_data)
    return {
        "description": "field values and the expected DCAP v3 quote bytes; the "
                       "signatures and keys are fill patterns, not valid ones",
        "header": {"version": 3, "attestation_key_type": 2, "tee_type": 0, "qe_svn": 5,
                   "pce_svn": 9, "qe_vendor_id": header.qe_vendor_id.hex(),
                   "user_data": header.user_data.hex()},
        "body": {"cpu_svn": body.cpu_svn.hex(), "misc_select": body.misc_select,
                 "attributes_flags": body.attributes_flags,
                 "attributes_xfrm": body.attributes_xfrm,
                 "mr_enclave": body.mr_enclave.hex(), "mr_signer": body.mr_signer.hex(),
                 "isv_prod_id": body.isv_prod_id, "isv_svn": body.isv_svn,
                 "report_data": body.report_data.hex()},
        "quote": quote.hex(),
    }


def main() -> None:
    cmac = {
        "description": "AES-CMAC, RFC 4493 section 4, examples 1 and 2",
        "cases": [
            {"key": "2b7e151628aed2a6abf7158809cf4f3c", "message": "",
             "mac": "bb1d6929e95937287fa37d129b756746"},
            {"key": "2b7e151628aed2a6abf7158809cf4f3c",
             "message": "6bc1bee22e409f96e93d7e117393172a",
             "mac": "070a16b46b4d4144f79bdd9dd04a287c"},
        ],
    }
    kdf_file = {"description": "wasmtee EGETKEY-like seal key derivation (wasmtee/tee/kdf.py)",
                "cmac": cmac, "cases": kdf_cases()}
    (HERE / "seal_kdf.json").write_text(json.dumps(kdf_file, indent=1) + "\n")
    (HERE / "quote_layout.json").write_text(json.dumps(quote_case(), indent=1) + "\n")


if __name__ == "__main__":
    main()
