"""The attestation API for wasm guests, in the spirit of WAMR's lib-rats.

A guest collects evidence over a buffer of its choice. The evidence's
"user-data" claim is SHA-256(module hash || buffer), so a verifier learns
both which module asked and what it vouched for. The functions below work
on guest memory through `GuestMemory`; the import module "wasmtee_attest"
binds them to wasm signatures:

    collect_evidence(buf, buf_len, out, out_cap) -> i32
        Write evidence to out. Returns its length, or the negated length
        needed when out_cap is too small (nothing is written then).
    verify_evidence(evidence, evidence_len, user_data32) -> i32
        Return 0 when the evidence verifies and its user data equals the 32
        bytes at user_data32, else 1. Which check failed is not reported.
    evidence_field(evidence, evidence_len, field, out, out_cap) -> i32
        Copy one field of verified evidence to out, with the same length
        convention as collect_evidence: 0 MRENCLAVE (32 bytes), 1 MRSIGNER
        (32), 2 ISVPRODID (2, little-endian), 3 ISVSVN (2), 4 user data (32),
        5 debug flag (1), 6 ATTRIBUTES.FLAGS (8, little-endian), 7 REPORTDATA
        (64). Returns -1 (and writes nothing) if the evidence does not
        verify or the field number is unknown.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

from cryptography import x509

from wasmtee.tee.attester import Attester
from wasmtee.tee.errors import QuoteFormatError, VerificationError
from wasmtee.tee.evidence import CLAIM_USER_DATA, decode_evidence
from wasmtee.tee.quote import parse_quote
from wasmtee.tee.verify import Claims, Policy, intel_root_from_quote, verify_evidence

log = logging.getLogger(__name__)

IMPORT_MODULE = "wasmtee_attest"
MAX_BUFFER_SIZE = 1024 * 1024
MAX_EVIDENCE_SIZE = 1024 * 1024

FIELD_MR_ENCLAVE = 0
FIELD_MR_SIGNER = 1
FIELD_ISV_PROD_ID = 2
FIELD_ISV_SVN = 3
FIELD_USER_DATA = 4
FIELD_DEBUG = 5
# The 64-bit SGX ATTRIBUTES.FLAGS, little-endian, and the quote's 64-byte REPORTDATA.
FIELD_ATTRIBUTES = 6
FIELD_REPORT_DATA = 7


class GuestMemory(Protocol):
    """Bounds-checked access to a guest's linear memory; both raise a Trap when out of bounds."""

    def read(self, address: int, size: int) -> bytes: ...

    def write(self, address: int, data: bytes) -> None: ...


def guest_user_data(module_hash: bytes, buffer: bytes) -> bytes:
    """Return SHA-256(module hash || buffer), the user data of guest evidence."""
    return hashlib.sha256(module_hash + buffer).digest()


class GuestAttestation:
    """The attestation host functions for one module instance.

    `policy(mr_enclave, mr_signer)` returns the Policy for evidence that
    claims this identity, so the host decides which peers a guest may
    accept. The default accepts any identity with the strict defaults (no
    debug, no simulation). The guest then checks the identity itself with
    `evidence_field`.
    """

    def __init__(self, attester: Attester, module_hash: bytes,
                 trusted_roots: list[x509.Certificate],
                 policy: Callable[[bytes, bytes], Policy] | None = None) -> None:
        self._attester = attester
        self._module_hash = module_hash
        self._roots = trusted_roots
        self._policy = policy or (lambda mr_enclave, mr_signer: Policy(mr_enclave=mr_enclave))

    def collect(self, buffer: bytes) -> bytes:
        """Return evidence whose user data binds this module's hash and `buffer`."""
        if len(buffer) > MAX_BUFFER_SIZE:
            raise ValueError(f"buffer is {len(buffer)} bytes, max {MAX_BUFFER_SIZE}")
        claims = {CLAIM_USER_DATA: guest_user_data(self._module_hash, buffer),
                  "module": self._module_hash}
        return self._attester.evidence(claims)

    def verify(self, evidence: bytes) -> Claims:
        """Verify evidence from a peer; raise VerificationError if it fails."""
        try:
            quote, _ = decode_evidence(evidence)
            unverified_quote = parse_quote(quote)
        except QuoteFormatError as exc:
            raise VerificationError("evidence_format", str(exc)) from None
        # The policy pins the identity the quote claims, so the signature and
        # chain checks below decide whether that identity is genuine.
        policy = self._policy(unverified_quote.body.mr_enclave, unverified_quote.body.mr_signer)
        roots = list(self._roots)
        try:
            roots.append(intel_root_from_quote(quote))
        except VerificationError:
            pass  # not a hardware chain; the configured roots decide
        return verify_evidence(evidence, policy, roots)

    # -- wasm-facing functions ---------------------------------------------------

    def collect_evidence(self, memory: GuestMemory, buffer_address: int, buffer_length: int,
                         out_address: int, out_capacity: int) -> int:
        if not 0 <= buffer_length <= MAX_BUFFER_SIZE:
            return -1
        evidence = self.collect(memory.read(buffer_address, buffer_length))
        return _copy_out(memory, evidence, out_address, out_capacity)

    def verify_evidence(self, memory: GuestMemory, evidence_address: int,
                        evidence_length: int, user_data_address: int) -> int:
        if not 0 <= evidence_length <= MAX_EVIDENCE_SIZE:
            return 1
        evidence = memory.read(evidence_address, evidence_length)
        expected = memory.read(user_data_address, 32)
        try:
            claims = self.verify(evidence)
        except VerificationError as exc:
            log.info("guest evidence rejected: %s", exc)
            return 1
        user_data = (claims.evidence_claims or {}).get(CLAIM_USER_DATA)
        return 0 if user_data == expected else 1

    def evidence_field(self, memory: GuestMemory, evidence_address: int, evidence_length: int,
                       field: int, out_address: int, out_capacity: int) -> int:
        if not 0 <= evidence_length <= MAX_EVIDENCE_SIZE:
            return -1
        try:
            claims = self.verify(memory.read(evidence_address, evidence_length))
        except VerificationError as exc:
            log.info("guest evidence rejected: %s", exc)
            return -1
        value = _field_bytes(claims, field)
        if value is None:
            return -1
        return _copy_out(memory, value, out_address, out_capacity)

    def host_functions(self) -> dict[str, tuple[list[str], list[str], Callable[..., Any]]]:
        """Return the import name, parameter types, result types and callable of each function.

        Each callable takes the guest memory first, then the wasm arguments.
        """
        return {
            "collect_evidence": (["i32"] * 4, ["i32"], self.collect_evidence),
            "verify_evidence": (["i32"] * 3, ["i32"], self.verify_evidence),
            "evidence_field": (["i32"] * 5, ["i32"], self.evidence_field),
        }


def _field_bytes(claims: Claims, field: int) -> bytes | None:
    if field == FIELD_MR_ENCLAVE:
        return claims.mr_enclave
    if field == FIELD_MR_SIGNER:
        return claims.mr_signer
    if field == FIELD_ISV_PROD_ID:
        return claims.isv_prod_id.to_bytes(2, "little")
    if field == FIELD_ISV_SVN:
        return claims.isv_svn.to_bytes(2, "little")
    if field == FIELD_USER_DATA:
        value = (claims.evidence_claims or {}).get(CLAIM_USER_DATA)
        return value if isinstance(value, bytes) else None
    if field == FIELD_DEBUG:
        return bytes([claims.debug])
    if field == FIELD_ATTRIBUTES:
        return claims.attributes_flags.to_bytes(8, "little")
    if field == FIELD_REPORT_DATA:
        return claims.report_data
    return None


def _copy_out(memory: GuestMemory, data: bytes, address: int, capacity: int) -> int:
    if len(data) > capacity:
        return -len(data)
    memory.write(address, data)
    return len(data)
