"""The SGX DCAP version 3 quote layout: exact offsets, no cryptography.

Byte layout (all integers little-endian), after Intel's "SGX ECDSA Quote
Library API" (DCAP), appendix A:

    0    header (48): version u16, attestation key type u16, TEE type u32,
         QE SVN u16, PCE SVN u16, QE vendor id (16), user data (20)
    48   ISV enclave report body (384), see `ReportBody`
    432  signature data length u32
    436  signature data: quote signature r||s (64), attestation public key
         x||y (64), QE report body (384), QE report signature r||s (64),
         QE authentication data (u16 size + bytes), certification data
         (u16 type, u32 size, bytes)

`parse_quote` checks only the layout. Its result is an `UnverifiedQuote`:
nothing in it is authentic until `wasmtee.tee.verify.verify_quote` accepts it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from wasmtee.tee.errors import QuoteFormatError

QUOTE_VERSION = 3
ATTESTATION_KEY_TYPE_ECDSA_P256 = 2
TEE_TYPE_SGX = 0
CERTIFICATION_DATA_PCK_CHAIN = 5

# The QE vendor id of Intel's quoting enclave.
INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
# The QE vendor id of the simulated quoting enclave; it is not Intel's, so a
# verifier can tell simulated quotes apart before checking any signature.
SIM_QE_VENDOR_ID = b"wasmtee-SIM-QE\x00\x00"

# SGX ATTRIBUTES.FLAGS bits (Intel SDM vol. 3D, "SECS.ATTRIBUTES").
ATTRIBUTE_INIT = 0x01
ATTRIBUTE_DEBUG = 0x02
ATTRIBUTE_MODE64BIT = 0x04

HEADER = struct.Struct("<HHIHH16s20s")
REPORT_BODY = struct.Struct("<16sI28sQQ32s32s32s96sHH60s64s")
SIGNATURE_LENGTH = struct.Struct("<I")
AUTH_DATA_SIZE = struct.Struct("<H")
CERTIFICATION_HEADER = struct.Struct("<HI")

HEADER_SIZE = HEADER.size  # 48
REPORT_BODY_SIZE = REPORT_BODY.size  # 384
SIGNED_SIZE = HEADER_SIZE + REPORT_BODY_SIZE  # 432: what the quote signature covers
ECDSA_SIGNATURE_SIZE = 64
ECDSA_PUBLIC_KEY_SIZE = 64

# Offsets of the report body fields inside a quote, as DCAP documents them.
OFFSET_MR_ENCLAVE = 112
OFFSET_MR_SIGNER = 176
OFFSET_ISV_PROD_ID = 304
OFFSET_ISV_SVN = 306
OFFSET_REPORT_DATA = 368

# A quote larger than this is rejected before parsing. A PCK chain of three
# certificates is about 4 KiB, so 64 KiB leaves room for any real quote.
MAX_QUOTE_SIZE = 64 * 1024


@dataclass(frozen=True)
class QuoteHeader:
    """The 48-byte quote header."""

    version: int
    attestation_key_type: int
    tee_type: int
    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes
    user_data: bytes

    def encode(self) -> bytes:
        _require_length("qe_vendor_id", self.qe_vendor_id, 16)
        _require_length("user_data", self.user_data, 20)
        return HEADER.pack(
            self.version,
            self.attestation_key_type,
            self.tee_type,
            self.qe_svn,
            self.pce_svn,
            self.qe_vendor_id,
            self.user_data,
        )


@dataclass(frozen=True)
class ReportBody:
    """The 384-byte SGX report body (an enclave's identity and report data).

    Reserved fields are not kept: `encode` writes them as zeros, and a
    signature check covers the original bytes, never a re-encoding.
    """

    cpu_svn: bytes
    misc_select: int
    attributes_flags: int
    attributes_xfrm: int
    mr_enclave: bytes
    mr_signer: bytes
    isv_prod_id: int
    isv_svn: int
    report_data: bytes

    @property
    def debug(self) -> bool:
        return bool(self.attributes_flags & ATTRIBUTE_DEBUG)

    def encode(self) -> bytes:
        _require_length("cpu_svn", self.cpu_svn, 16)
        _require_length("mr_enclave", self.mr_enclave, 32)
        _require_length("mr_signer", self.mr_signer, 32)
        _require_length("report_data", self.report_data, 64)
        return REPORT_BODY.pack(
            self.cpu_svn,
            self.misc_select,
            bytes(28),
            self.attributes_flags,
            self.attributes_xfrm,
            self.mr_enclave,
            bytes(32),
            self.mr_signer,
            bytes(96),
            self.isv_prod_id,
            self.isv_svn,
            bytes(60),
            self.report_data,
        )

    @classmethod
    def decode(cls, data: bytes, offset: int = 0) -> ReportBody:
        if len(data) - offset < REPORT_BODY_SIZE:
            raise QuoteFormatError(
                f"truncated report body ({len(data) - offset} bytes left, "
                f"{REPORT_BODY_SIZE} needed)",
                offset,
            )
        fields = REPORT_BODY.unpack_from(data, offset)
        (cpu_svn, misc, _, flags, xfrm, mr_enclave, _, mr_signer, _, prod, svn, _,
         report_data) = fields
        return cls(cpu_svn, misc, flags, xfrm, mr_enclave, mr_signer, prod, svn,
                   report_data)


@dataclass(frozen=True)
class QuoteSignatureData:
    """The ECDSA-256-with-P-256 signature data that follows the report body."""

    quote_signature: bytes
    attestation_key: bytes
    qe_report: ReportBody
    qe_report_signature: bytes
    qe_auth_data: bytes
    certification_data_type: int
    certification_data: bytes
    # The QE report exactly as it appears in the quote (what the PCK signed).
    qe_report_bytes: bytes = b""

    def encode(self) -> bytes:
        _require_length("quote_signature", self.quote_signature, 64)
        _require_length("attestation_key", self.attestation_key, 64)
        _require_length("qe_report_signature", self.qe_report_signature, 64)
        if len(self.qe_auth_data) > 0xFFFF:
            raise ValueError(f"qe_auth_data is {len(self.qe_auth_data)} bytes, max 65535")
        qe_report = self.qe_report_bytes or self.qe_report.encode()
        return b"".join([
            self.quote_signature,
            self.attestation_key,
            qe_report,
            self.qe_report_signature,
            AUTH_DATA_SIZE.pack(len(self.qe_auth_data)),
            self.qe_auth_data,
            CERTIFICATION_HEADER.pack(
                self.certification_data_type, len(self.certification_data)
            ),
            self.certification_data,
        ])


@dataclass(frozen=True)
class UnverifiedQuote:
    """A parsed quote whose signatures and certificates are not yet checked."""

    header: QuoteHeader
    body: ReportBody
    signature_data: QuoteSignatureData
    raw: bytes

    @property
    def signed_bytes(self) -> bytes:
        """Header and report body: the bytes the quote signature covers."""
        return self.raw[:SIGNED_SIZE]


def encode_quote(
    header: QuoteHeader, body: ReportBody, signature_data: QuoteSignatureData
) -> bytes:
    """Concatenate the parts of a quote, with the signature data length."""
    signature = signature_data.encode()
    return b"".join([
        header.encode(), body.encode(), SIGNATURE_LENGTH.pack(len(signature)), signature
    ])


def parse_quote(data: bytes) -> UnverifiedQuote:
    """Parse a DCAP v3 ECDSA P-256 quote, checking sizes and fixed fields only.

    Raises QuoteFormatError, with the byte offset, for a truncated quote, a
    version other than 3, an attestation key type other than ECDSA P-256, a
    TEE type other than SGX, inconsistent lengths or trailing bytes.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"quote must be bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_QUOTE_SIZE:
        raise QuoteFormatError(f"quote is {len(data)} bytes, max {MAX_QUOTE_SIZE}")
    if len(data) < SIGNED_SIZE + SIGNATURE_LENGTH.size:
        raise QuoteFormatError(
            f"truncated quote ({len(data)} bytes, at least "
            f"{SIGNED_SIZE + SIGNATURE_LENGTH.size} needed)"
        )
    header = QuoteHeader(*HEADER.unpack_from(data, 0))
    if header.version != QUOTE_VERSION:
        raise QuoteFormatError(
            f"unsupported quote version {header.version} (expected {QUOTE_VERSION})", 0
        )
    if header.attestation_key_type != ATTESTATION_KEY_TYPE_ECDSA_P256:
        raise QuoteFormatError(
            f"unsupported attestation key type {header.attestation_key_type} "
            f"(expected {ATTESTATION_KEY_TYPE_ECDSA_P256}, ECDSA-256-with-P-256)",
            2,
        )
    if header.tee_type != TEE_TYPE_SGX:
        raise QuoteFormatError(
            f"unsupported TEE type 0x{header.tee_type:x} (expected 0, SGX)", 4
        )
    body = ReportBody.decode(data, HEADER_SIZE)
    (signature_length,) = SIGNATURE_LENGTH.unpack_from(data, SIGNED_SIZE)
    start = SIGNED_SIZE + SIGNATURE_LENGTH.size
    if signature_length != len(data) - start:
        raise QuoteFormatError(
            f"signature data length {signature_length} does not match the "
            f"{len(data) - start} bytes after it",
            SIGNED_SIZE,
        )
    signature_data = _parse_signature_data(data, start)
    return UnverifiedQuote(header, body, signature_data, data)


def _parse_signature_data(data: bytes, offset: int) -> QuoteSignatureData:
    fixed = ECDSA_SIGNATURE_SIZE + ECDSA_PUBLIC_KEY_SIZE + REPORT_BODY_SIZE
    fixed += ECDSA_SIGNATURE_SIZE + AUTH_DATA_SIZE.size
    if len(data) - offset < fixed:
        raise QuoteFormatError("truncated signature data", offset)
    position = offset
    quote_signature = data[position:position + 64]
    position += 64
    attestation_key = data[position:position + 64]
    position += 64
    qe_report_bytes = data[position:position + REPORT_BODY_SIZE]
    qe_report = ReportBody.decode(data, position)
    position += REPORT_BODY_SIZE
    qe_report_signature = data[position:position + 64]
    position += 64
    (auth_size,) = AUTH_DATA_SIZE.unpack_from(data, position)
    position += AUTH_DATA_SIZE.size
    if len(data) - position < auth_size:
        raise QuoteFormatError(
            f"QE authentication data size {auth_size} exceeds the quote", position - 2
        )
    qe_auth_data = data[position:position + auth_size]
    position += auth_size
    if len(data) - position < CERTIFICATION_HEADER.size:
        raise QuoteFormatError("truncated certification data header", position)
    cert_type, cert_size = CERTIFICATION_HEADER.unpack_from(data, position)
    position += CERTIFICATION_HEADER.size
    if len(data) - position != cert_size:
        raise QuoteFormatError(
            f"certification data size {cert_size} does not match the "
            f"{len(data) - position} bytes left",
            position - 4,
        )
    return QuoteSignatureData(
        quote_signature=quote_signature,
        attestation_key=attestation_key,
        qe_report=qe_report,
        qe_report_signature=qe_report_signature,
        qe_auth_data=qe_auth_data,
        certification_data_type=cert_type,
        certification_data=data[position:],
        qe_report_bytes=qe_report_bytes,
    )


def _require_length(name: str, value: bytes, size: int) -> None:
    if not isinstance(value, (bytes, bytearray)):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    if len(value) != size:
        raise ValueError(f"{name} must be {size} bytes, not {len(value)}")
