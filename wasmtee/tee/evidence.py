"""Evidence: CBOR `[quote, claims]`, where REPORTDATA = SHA-256(claims) || 32 zeros.

The claims are a CBOR map with text keys. wasmtee uses these keys:
"pubkey-hash" (SHA-256 of a TLS SubjectPublicKeyInfo, in RA-TLS),
"nonce" (bytes a verifier chose), "iat" (issue time, integer Unix seconds,
from the host's clock), "modules" (a list of module SHA-256 hashes),
"user-data" (bytes the enclave's caller chose). The digest is taken over
the canonical CBOR encoding (RFC 8949 section 4.2.1), so any encoder that
follows the rules produces the same bytes.
"""

from __future__ import annotations

import hashlib
from typing import Any

import cbor2

from wasmtee.tee.errors import QuoteFormatError
from wasmtee.tee.strict_cbor import StrictCborError, loads_strict

MAX_EVIDENCE_SIZE = 1024 * 1024
CLAIM_PUBKEY_HASH = "pubkey-hash"
CLAIM_NONCE = "nonce"
CLAIM_ISSUED_AT = "iat"
CLAIM_MODULES = "modules"
CLAIM_USER_DATA = "user-data"


def encode_claims(claims: dict[str, Any]) -> bytes:
    """Return the canonical CBOR encoding of a claims map."""
    _check_claims(claims)
    return cbor2.dumps(claims, canonical=True)


def claims_report_data(claims: dict[str, Any]) -> bytes:
    """Return the 64-byte REPORTDATA that binds `claims`: SHA-256 then 32 zero bytes."""
    return hashlib.sha256(encode_claims(claims)).digest() + bytes(32)


def encode_evidence(quote: bytes, claims: dict[str, Any]) -> bytes:
    """Return the CBOR array `[quote, claims]`."""
    return cbor2.dumps([bytes(quote), claims], canonical=True)


def decode_evidence(data: bytes) -> tuple[bytes, dict[str, Any]]:
    """Split evidence into the quote bytes and the unverified claims map.

    Raises QuoteFormatError for anything but a CBOR array of a byte string
    and a map with text keys, or for evidence above MAX_EVIDENCE_SIZE.
    """
    if len(data) > MAX_EVIDENCE_SIZE:
        raise QuoteFormatError(f"evidence is {len(data)} bytes, max {MAX_EVIDENCE_SIZE}")
    try:
        decoded = loads_strict(bytes(data))
    except StrictCborError as exc:
        raise QuoteFormatError(f"evidence is not valid: {exc}") from None
    if not isinstance(decoded, list) or len(decoded) != 2:
        raise QuoteFormatError("evidence must be a CBOR array [quote, claims]")
    quote, claims = decoded
    if not isinstance(quote, bytes):
        raise QuoteFormatError(f"evidence quote must be a byte string, not {type(quote).__name__}")
    _check_claims(claims)
    return quote, claims


def _check_claims(claims: Any) -> None:
    if not isinstance(claims, dict):
        raise QuoteFormatError(f"claims must be a CBOR map, not {type(claims).__name__}")
    for key in claims:
        if not isinstance(key, str):
            raise QuoteFormatError(f"claim keys must be text strings, not {key!r}")
