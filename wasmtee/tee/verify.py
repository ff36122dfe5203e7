"""Quote and evidence verification against a `Policy`.

`verify_quote` runs the DCAP checks in this order, and the first failure
raises VerificationError with the check's name:

    quote_format         the bytes follow the DCAP v3 ECDSA P-256 layout
    certification_data   type 5 (PCK certificate chain in PEM)
    certificate_chain    each certificate is valid at `now` and signed by
                         the next, and the last one is or is signed by a
                         trusted root
    qe_report_signature  the PCK certificate's key signed the QE report
    qe_report_data       QE report data starts with SHA-256(attestation key
                         || QE authentication data), then 32 zero bytes
    quote_signature      the attestation key signed header and report body
    simulation, debug, mr_enclave, mr_signer, isv_prod_id, isv_svn,
    report_data          the policy

`verify_quote` rejects a policy with `nonce` or `max_age` before any of
these ("freshness"), because only evidence claims carry a nonce and an
issue time. `verify_evidence` checks them after the policy ("nonce",
"freshness").

TODO: TCB status and QE identity are not checked against Intel's collateral
(TCB info, QE identity, CRLs from the PCS), so a quote from an out-of-date
platform passes when its chain is valid.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from wasmtee.errors import UsageError
from wasmtee.tee import ecdsa
from wasmtee.tee.errors import QuoteFormatError, VerificationError
from wasmtee.tee.evidence import (
    CLAIM_ISSUED_AT,
    CLAIM_NONCE,
    claims_report_data,
    decode_evidence,
)
from wasmtee.tee.quote import (
    CERTIFICATION_DATA_PCK_CHAIN,
    INTEL_QE_VENDOR_ID,
    UnverifiedQuote,
    parse_quote,
)
from wasmtee.tee.sim import SIMULATED_MARKER

log = logging.getLogger(__name__)

MAX_CHAIN_LENGTH = 8
# SHA-256 fingerprint of Intel's self-signed "Intel SGX Root CA" certificate
# (valid 2018-05-21 to 2049-12-31), the root of every hardware PCK chain.
INTEL_SGX_ROOT_CA_SHA256 = bytes.fromhex(
    "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"
)
# Evidence issued up to this many seconds in the future still counts as fresh,
# because the enclave's clock is the host's and clocks drift.
CLOCK_SKEW_SECONDS = 60


@dataclass(frozen=True)
class Policy:
    """Requirements a quote must meet to pass verification.

    At least one of `mr_enclave` and `mr_signer` must be set. `report_data`
    is compared with the quote's 64-byte REPORTDATA after padding it with
    zero bytes. `nonce` and `max_age` (seconds) apply to evidence claims, so
    `verify_quote` rejects a bare quote when either is set.
    Debug and simulated quotes are rejected unless allowed here.
    """

    mr_enclave: bytes | None = None
    mr_signer: bytes | None = None
    isv_prod_id: int | None = None
    min_isv_svn: int = 0
    allow_debug: bool = False
    allow_simulation: bool = False
    report_data: bytes | None = None
    nonce: bytes | None = None
    max_age: float | None = None

    def __post_init__(self) -> None:
        if self.mr_enclave is None and self.mr_signer is None:
            raise UsageError("a policy must set mr_enclave or mr_signer (or both)")
        for name in ("mr_enclave", "mr_signer"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, bytes) or len(value) != 32):
                raise UsageError(f"policy {name} must be 32 bytes, not {value!r}")
        if self.isv_prod_id is not None and not _is_u16(self.isv_prod_id):
            raise UsageError(f"policy isv_prod_id must be in 0..65535, not {self.isv_prod_id!r}")
        if not _is_u16(self.min_isv_svn):
            raise UsageError(f"policy min_isv_svn must be in 0..65535, not {self.min_isv_svn!r}")
        if self.report_data is not None and (
            not isinstance(self.report_data, bytes) or len(self.report_data) > 64
        ):
            raise UsageError("policy report_data must be at most 64 bytes")
        if self.nonce is not None and not isinstance(self.nonce, bytes):
            raise UsageError(f"policy nonce must be bytes, not {type(self.nonce).__name__}")
        for name in ("allow_debug", "allow_simulation"):
            if not isinstance(getattr(self, name), bool):
                raise UsageError(f"policy {name} must be a boolean, not {getattr(self, name)!r}")
        if self.max_age is not None and (
            isinstance(self.max_age, bool)
            or not isinstance(self.max_age, (int, float))
            or not self.max_age > 0
        ):
            raise UsageError(f"policy max_age must be a positive number of seconds, not {self.max_age!r}")

    @classmethod
    def from_json(cls, text: str) -> Policy:
        """Load a policy from JSON; byte values are hex strings.

        Raises UsageError for invalid JSON, unknown keys or invalid values.
        """
        try:
            values = json.loads(text)
        except ValueError as exc:
            raise UsageError(f"policy is not valid JSON: {exc}") from None
        if not isinstance(values, dict):
            raise UsageError("policy JSON must be an object")
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise UsageError(f"unknown policy keys {sorted(unknown)}; known keys: {sorted(known)}")
        for name in ("mr_enclave", "mr_signer", "report_data", "nonce"):
            if values.get(name) is not None:
                try:
                    values[name] = bytes.fromhex(values[name])
                except (TypeError, ValueError):
                    raise UsageError(f"policy {name} must be a hex string, not {values[name]!r}") from None
        for name in ("allow_debug", "allow_simulation"):
            if name in values and not isinstance(values[name], bool):
                raise UsageError(f"policy {name} must be true or false, not {values[name]!r}")
        return cls(**values)


@dataclass(frozen=True)
class Claims:
    """The verified contents of a quote (and of evidence claims, if any)."""

    mr_enclave: bytes
    mr_signer: bytes
    isv_prod_id: int
    isv_svn: int
    cpu_svn: bytes
    attributes_flags: int
    debug: bool
    simulated: bool
    report_data: bytes
    qe_vendor_id: bytes
    pck_subject: str
    evidence_claims: dict[str, Any] | None = None


# cryptography parses certificate fields lazily, so a damaged certificate can
# raise any of these when a field is first read, long after loading succeeded.
CERTIFICATE_ERRORS = (ValueError, TypeError, UnsupportedAlgorithm, x509.DuplicateExtension,
                      x509.UnsupportedGeneralNameType)


def verify_quote(
    quote_bytes: bytes,
    policy: Policy,
    trusted_roots: list[x509.Certificate],
    now: datetime.datetime | None = None,
) -> Claims:
    """Verify a DCAP v3 quote's signatures and certificates, then the policy.

    Raises VerificationError naming the first check that failed (see the
    module docstring). Never send that message to a remote peer. A policy
    that sets `nonce` or `max_age` fails the "freshness" check, because a
    bare quote carries no nonce and no issue time, so it may be a replay.
    """
    try:
        if policy.nonce is not None or policy.max_age is not None:
            raise VerificationError("freshness", "a bare quote carries no nonce or issue time "
                                    "(policy nonce or max_age is set); verify evidence instead")
        return _verify_quote(quote_bytes, policy, trusted_roots, _utc(now))
    except VerificationError as exc:
        log.info("quote rejected: %s", exc)
        raise


def verify_evidence(
    evidence: bytes,
    policy: Policy,
    trusted_roots: list[x509.Certificate],
    now: datetime.datetime | None = None,
) -> Claims:
    """Verify CBOR `[quote, claims]` evidence: the quote, the claims binding,
    the nonce and the issue time.

    The quote's REPORTDATA must be SHA-256(canonical CBOR of the claims)
    followed by 32 zero bytes. Raises VerificationError naming the failed
    check, and UsageError if the policy sets report_data (the claims fix it).
    """
    if policy.report_data is not None:
        raise UsageError("policy report_data cannot be used with evidence; the claims fix it")
    moment = _utc(now)
    try:
        try:
            quote_bytes, unverified_claims = decode_evidence(evidence)
        except QuoteFormatError as exc:
            raise VerificationError("evidence_format", str(exc)) from None
        bound_policy = dataclasses.replace(policy, report_data=claims_report_data(unverified_claims))
        claims = _verify_quote(quote_bytes, bound_policy, trusted_roots, moment)
        _check_freshness(unverified_claims, policy, moment)
    except VerificationError as exc:
        log.info("evidence rejected: %s", exc)
        raise
    return dataclasses.replace(claims, evidence_claims=unverified_claims)


def intel_root_from_quote(quote_bytes: bytes) -> x509.Certificate:
    """Return the Intel SGX Root CA certificate that a quote's PCK chain ends with.

    The certificate is accepted only if its SHA-256 fingerprint is
    INTEL_SGX_ROOT_CA_SHA256, so the result is safe to pass as a trusted
    root. Raises VerificationError (check "certificate_chain") otherwise.
    """
    try:
        unverified_quote = parse_quote(quote_bytes)
        chain = x509.load_pem_x509_certificates(unverified_quote.signature_data.certification_data)
    except QuoteFormatError as exc:
        raise VerificationError("quote_format", str(exc)) from None
    except ValueError as exc:
        raise VerificationError("certificate_chain", f"invalid PEM certificate chain: {exc}") from None
    root = chain[-1]
    if not hmac.compare_digest(root.fingerprint(hashes.SHA256()), INTEL_SGX_ROOT_CA_SHA256):
        raise VerificationError("certificate_chain", f"chain ends at {root.subject.rfc4514_string()!r}, "
                                "not at the Intel SGX Root CA")
    return root


def _verify_quote(quote_bytes: bytes, policy: Policy, trusted_roots: list[x509.Certificate],
                  now: datetime.datetime) -> Claims:
    try:
        unverified_quote = parse_quote(quote_bytes)
    except QuoteFormatError as exc:
        raise VerificationError("quote_format", str(exc)) from None
    signature_data = unverified_quote.signature_data
    if signature_data.certification_data_type != CERTIFICATION_DATA_PCK_CHAIN:
        raise VerificationError(
            "certification_data",
            f"certification data type {signature_data.certification_data_type} is not "
            f"{CERTIFICATION_DATA_PCK_CHAIN} (PCK certificate chain)",
        )
    try:
        chain = _verify_chain(signature_data.certification_data, trusted_roots, now)
        pck_key = chain[0].public_key()
        pck_subject = chain[0].subject.rfc4514_string()
        simulated = _is_simulated(unverified_quote, chain)
    except CERTIFICATE_ERRORS as exc:
        raise VerificationError("certificate_chain", "malformed certificate in the chain: "
                                f"{type(exc).__name__}: {exc}") from None
    if not isinstance(pck_key, ec.EllipticCurvePublicKey) or not isinstance(
        pck_key.curve, ec.SECP256R1
    ):
        raise VerificationError("certificate_chain", "PCK certificate key is not ECDSA P-256")
    if not ecdsa.verify_raw(pck_key, signature_data.qe_report_signature,
                            signature_data.qe_report_bytes):
        raise VerificationError("qe_report_signature", "QE report signature does not verify "
                                "with the PCK certificate's key")
    expected_binding = hashlib.sha256(
        signature_data.attestation_key + signature_data.qe_auth_data
    ).digest() + bytes(32)
    if not hmac.compare_digest(expected_binding, signature_data.qe_report.report_data):
        raise VerificationError("qe_report_data", "QE report data does not bind the "
                                "attestation key and QE authentication data")
    try:
        attestation_key = ecdsa.public_key_from_raw(signature_data.attestation_key)
    except ValueError as exc:
        raise VerificationError("attestation_key", str(exc)) from None
    if not ecdsa.verify_raw(attestation_key, signature_data.quote_signature,
                            unverified_quote.signed_bytes):
        raise VerificationError("quote_signature", "quote signature does not verify "
                                "with the attestation key")
    claims = _claims_from(unverified_quote, pck_subject, simulated)
    _check_policy(claims, policy)
    return claims


def _verify_chain(pem: bytes, trusted_roots: list[x509.Certificate],
                  now: datetime.datetime) -> list[x509.Certificate]:
    if not trusted_roots:
        raise VerificationError("certificate_chain", "no trusted root certificates given")
    try:
        chain = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise VerificationError("certificate_chain", f"invalid PEM certificate chain: {exc}") from None
    if not 1 <= len(chain) <= MAX_CHAIN_LENGTH:
        raise VerificationError(
            "certificate_chain", f"chain has {len(chain)} certificates, 1..{MAX_CHAIN_LENGTH} allowed"
        )
    for certificate in chain:
        _check_validity(certificate, now)
    for depth, (child, parent) in enumerate(zip(chain, chain[1:])):
        _check_issued_by(child, parent, depth)
    last = chain[-1]
    for root in trusted_roots:
        if hmac.compare_digest(last.fingerprint(hashes.SHA256()), root.fingerprint(hashes.SHA256())):
            return chain
    for root in trusted_roots:
        if last.issuer == root.subject:
            _check_validity(root, now)
            _check_issued_by(last, root, len(chain) - 1)
            return chain
    raise VerificationError(
        "certificate_chain", f"chain ends at {last.issuer.rfc4514_string()!r}, "
        "which is not a trusted root"
    )


def _check_validity(certificate: x509.Certificate, now: datetime.datetime) -> None:
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise VerificationError(
            "certificate_chain",
            f"certificate {certificate.subject.rfc4514_string()!r} is not valid at "
            f"{now.isoformat()} (valid {certificate.not_valid_before_utc.isoformat()} to "
            f"{certificate.not_valid_after_utc.isoformat()})",
        )


def _check_issued_by(child: x509.Certificate, parent: x509.Certificate,
                     intermediates_below: int) -> None:
    """Check that `parent` may issue and did sign `child` (RFC 5280 section 6.1).

    `intermediates_below` is the number of CA certificates between `parent`
    and the leaf, which the parent's path length constraint limits.
    """
    subject = child.subject.rfc4514_string()
    try:
        constraints = parent.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise VerificationError(
            "certificate_chain", f"issuer of {subject!r} is not a CA certificate"
        )
    if constraints.path_length is not None and intermediates_below > constraints.path_length:
        raise VerificationError(
            "certificate_chain", f"issuer of {subject!r} allows {constraints.path_length} "
            f"intermediate CAs below it, the chain has {intermediates_below}"
        )
    try:
        usage = parent.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.key_cert_sign:
        raise VerificationError(
            "certificate_chain", f"issuer of {subject!r} may not sign certificates"
        )
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise VerificationError(
            "certificate_chain", f"certificate {subject!r} is not signed by its issuer: "
            f"{str(exc) or type(exc).__name__}"
        ) from None


def _is_simulated(unverified_quote: UnverifiedQuote, chain: list[x509.Certificate]) -> bool:
    if not hmac.compare_digest(unverified_quote.header.qe_vendor_id, INTEL_QE_VENDOR_ID):
        return True
    return any(SIMULATED_MARKER in cert.subject.rfc4514_string() for cert in chain)


def _claims_from(unverified_quote: UnverifiedQuote, pck_subject: str,
                 simulated: bool) -> Claims:
    body = unverified_quote.body
    return Claims(
        mr_enclave=body.mr_enclave,
        mr_signer=body.mr_signer,
        isv_prod_id=body.isv_prod_id,
        isv_svn=body.isv_svn,
        cpu_svn=body.cpu_svn,
        attributes_flags=body.attributes_flags,
        debug=body.debug,
        simulated=simulated,
        report_data=body.report_data,
        qe_vendor_id=unverified_quote.header.qe_vendor_id,
        pck_subject=pck_subject,
    )


def _check_policy(claims: Claims, policy: Policy) -> None:
    if claims.simulated and not policy.allow_simulation:
        raise VerificationError("simulation", "quote comes from a simulated platform "
                                "and the policy does not allow simulation")
    if claims.debug and not policy.allow_debug:
        raise VerificationError("debug", "enclave has the DEBUG attribute and the "
                                "policy does not allow debug enclaves")
    if policy.mr_enclave is not None and not hmac.compare_digest(claims.mr_enclave,
                                                                 policy.mr_enclave):
        raise VerificationError("mr_enclave", f"MRENCLAVE {claims.mr_enclave.hex()} is not "
                                f"the expected {policy.mr_enclave.hex()}")
    if policy.mr_signer is not None and not hmac.compare_digest(claims.mr_signer,
                                                                policy.mr_signer):
        raise VerificationError("mr_signer", f"MRSIGNER {claims.mr_signer.hex()} is not "
                                f"the expected {policy.mr_signer.hex()}")
    if policy.isv_prod_id is not None and claims.isv_prod_id != policy.isv_prod_id:
        raise VerificationError("isv_prod_id", f"ISVPRODID {claims.isv_prod_id} is not "
                                f"the expected {policy.isv_prod_id}")
    if claims.isv_svn < policy.min_isv_svn:
        raise VerificationError("isv_svn", f"ISVSVN {claims.isv_svn} is below the "
                                f"minimum {policy.min_isv_svn}")
    if policy.report_data is not None and not hmac.compare_digest(
        claims.report_data, policy.report_data.ljust(64, b"\x00")
    ):
        raise VerificationError("report_data", "REPORTDATA does not match the expected value")


def _check_freshness(unverified_claims: dict[str, Any], policy: Policy,
                     now: datetime.datetime) -> None:
    if policy.nonce is not None:
        nonce = unverified_claims.get(CLAIM_NONCE)
        if not isinstance(nonce, bytes) or not hmac.compare_digest(nonce, policy.nonce):
            raise VerificationError("nonce", "evidence nonce is missing or not the expected one")
    if policy.max_age is not None:
        issued_at = unverified_claims.get(CLAIM_ISSUED_AT)
        if not isinstance(issued_at, int) or isinstance(issued_at, bool):
            raise VerificationError("freshness", "evidence has no integer 'iat' claim")
        age = now.timestamp() - issued_at
        if age > policy.max_age or age < -CLOCK_SKEW_SECONDS:
            raise VerificationError(
                "freshness", f"evidence issued {age:.0f} s ago, allowed 0..{policy.max_age:g} s"
            )


def _utc(now: datetime.datetime | None) -> datetime.datetime:
    if now is None:
        return datetime.datetime.now(datetime.timezone.utc)
    if now.tzinfo is None:
        raise UsageError("now must be a timezone-aware datetime")
    return now


def _is_u16(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFFFF

