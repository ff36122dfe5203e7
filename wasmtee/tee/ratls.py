"""RA-TLS: TLS certificates that carry attestation evidence, and ssl helpers.

An RA-TLS certificate has a non-critical X.509 extension with OID
2.23.133.5.4.9 (TCG DICE tagged evidence) whose value is CBOR
`[quote, claims]`. The claims contain "pubkey-hash", the SHA-256 of the
certificate's SubjectPublicKeyInfo DER, and the quote's REPORTDATA is
SHA-256 of the canonical CBOR claims, so the quote vouches for the TLS key.
The TLS handshake proves that the peer has the matching private key.

Python's ssl module has no certificate verification callback. A client can
skip OpenSSL's chain check (CERT_NONE still delivers the server certificate),
but a server only asks for a client certificate when it also verifies it.
So that mutual attestation works, wasmtee issues RA-TLS certificates under a
fixed issuer whose private key is public (derived from a published string).
That chain check proves nothing, and all trust comes from `verify_peer`,
which runs right after the handshake and closes the connection on failure.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import logging
import os
import socket
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

from wasmtee.tee.attester import Attester
from wasmtee.tee.errors import VerificationError
from wasmtee.tee.evidence import CLAIM_ISSUED_AT, CLAIM_PUBKEY_HASH
from wasmtee.tee.verify import CERTIFICATE_ERRORS, Claims, Policy, verify_evidence

log = logging.getLogger(__name__)

RATLS_OID = ObjectIdentifier("2.23.133.5.4.9")
ISSUER_NAME = "wasmtee RA-TLS issuer (public key, carries no trust)"
# The issuer key is derived from this published string on purpose; see the
# module docstring for why a public key suffices.
ISSUER_SEED = b"wasmtee RA-TLS issuer key; this key is public"
DEFAULT_VALIDITY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class RatlsIdentity:
    """An RA-TLS certificate and its private key, both in PEM."""

    certificate_pem: bytes
    private_key_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.certificate_pem)


@lru_cache(maxsize=1)
def _issuer() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    order = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)
    scalar = int.from_bytes(hashlib.sha256(ISSUER_SEED).digest(), "big") % (order - 1) + 1
    key = ec.derive_private_key(scalar, ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER_NAME)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc))
        .not_valid_after(datetime.datetime(2100, 1, 1, tzinfo=datetime.timezone.utc))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def issuer_certificate_pem() -> bytes:
    """The PEM of the fixed RA-TLS issuer, for ssl contexts that must verify a chain."""
    return _issuer()[1].public_bytes(serialization.Encoding.PEM)


def public_key_hash(certificate: x509.Certificate) -> bytes:
    """Return SHA-256 of the certificate's SubjectPublicKeyInfo DER."""
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).digest()


def create_certificate(attester: Attester, common_name: str = "wasmtee enclave",
                       validity: datetime.timedelta = DEFAULT_VALIDITY,
                       now: datetime.datetime | None = None) -> RatlsIdentity:
    """Generate a P-256 TLS key and an RA-TLS certificate whose evidence binds it."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = {
        CLAIM_PUBKEY_HASH: hashlib.sha256(spki).digest(),
        "hash-alg": "sha-256",
        CLAIM_ISSUED_AT: int(now.timestamp()),
    }
    evidence = attester.evidence(claims)
    issuer_key, issuer = _issuer()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.UnrecognizedExtension(RATLS_OID, evidence), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    return RatlsIdentity(
        certificate.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()),
    )


def verify_certificate(certificate_der: bytes, policy: Policy,
                       trusted_roots: list[x509.Certificate],
                       now: datetime.datetime | None = None) -> Claims:
    """Verify an RA-TLS certificate's evidence and its binding of the TLS key.

    Raises VerificationError with check "ratls_certificate" when the
    certificate or extension is missing or malformed, "public_key" when the
    claims bind another key, or the check that failed in `verify_evidence`.
    """
    try:
        certificate = x509.load_der_x509_certificate(certificate_der)
        extension = certificate.extensions.get_extension_for_oid(RATLS_OID)
        key_hash = public_key_hash(certificate)
    except x509.ExtensionNotFound:
        raise VerificationError("ratls_certificate", "certificate has no RA-TLS "
                                f"extension {RATLS_OID.dotted_string}") from None
    except CERTIFICATE_ERRORS as exc:
        raise VerificationError("ratls_certificate", "invalid certificate: "
                                f"{type(exc).__name__}: {exc}") from None
    value = extension.value
    if not isinstance(value, x509.UnrecognizedExtension):
        raise VerificationError("ratls_certificate", "RA-TLS extension has an unexpected type")
    claims = verify_evidence(value.value, policy, trusted_roots, now=now)
    bound = (claims.evidence_claims or {}).get(CLAIM_PUBKEY_HASH)
    if not isinstance(bound, bytes) or bound != key_hash:
        raise VerificationError("public_key", "evidence claims do not bind the "
                                "certificate's public key")
    return claims


def verify_peer(connection: ssl.SSLSocket, policy: Policy,
                trusted_roots: list[x509.Certificate],
                now: datetime.datetime | None = None) -> Claims:
    """Verify the peer's RA-TLS certificate on a connected socket.

    On failure, closes the connection without telling the peer why, logs
    the failed check and raises VerificationError for the local caller.
    """
    try:
        peer_der = connection.getpeercert(binary_form=True)
        if peer_der is None:
            raise VerificationError("ratls_certificate", "peer sent no certificate")
        return verify_certificate(peer_der, policy, trusted_roots, now=now)
    except VerificationError as exc:
        log.warning("closing TLS connection from %s: %s", _peer_name(connection), exc)
        connection.close()
        raise


def server_context(identity: RatlsIdentity, require_client_attestation: bool) -> ssl.SSLContext:
    """Build a TLS 1.2+ server context that presents `identity`.

    With `require_client_attestation`, the handshake fails unless the client
    presents an RA-TLS certificate. Its evidence still has to be checked
    with `verify_peer` (or use `accept`, which does).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_identity(context, identity)
    if require_client_attestation:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=issuer_certificate_pem().decode())
    return context


def client_context(identity: RatlsIdentity | None = None) -> ssl.SSLContext:
    """Build a TLS 1.2+ client context; the server is checked by `verify_peer`.

    OpenSSL's chain and host name checks are off because the trust comes
    from the evidence, and certificates of other RA-TLS implementations are
    usually self-signed. Pass `identity` for mutual attestation.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if identity is not None:
        _load_identity(context, identity)
    return context


def accept(listener: socket.socket, context: ssl.SSLContext, policy: Policy | None,
           trusted_roots: list[x509.Certificate]) -> tuple[ssl.SSLSocket, Claims | None]:
    """Accept one connection, complete the handshake and verify the client.

    With `policy` None the client is not attested (one-way attestation to an
    ordinary client). Raises VerificationError or ssl.SSLError on failure,
    after closing the connection.
    """
    raw, _ = listener.accept()
    try:
        connection = context.wrap_socket(raw, server_side=True)
    except (ssl.SSLError, OSError):
        raw.close()
        raise
    if policy is None:
        return connection, None
    return connection, verify_peer(connection, policy, trusted_roots)


def connect(address: tuple[str, int], context: ssl.SSLContext, policy: Policy,
            trusted_roots: list[x509.Certificate],
            timeout: float | None = 10.0) -> tuple[ssl.SSLSocket, Claims]:
    """Connect to an RA-TLS server and verify its evidence before returning."""
    raw = socket.create_connection(address, timeout=timeout)
    try:
        connection = context.wrap_socket(raw, server_side=False)
    except (ssl.SSLError, OSError):
        raw.close()
        raise
    return connection, verify_peer(connection, policy, trusted_roots)


def _load_identity(context: ssl.SSLContext, identity: RatlsIdentity) -> None:
    """Load certificate and key without writing the key to a file system if possible."""
    pem = identity.certificate_pem + identity.private_key_pem
    with _private_pem_path(pem) as path:
        context.load_cert_chain(path)


@contextlib.contextmanager
def _private_pem_path(pem: bytes) -> Iterator[str]:
    # ssl only loads keys from paths. An anonymous memory file keeps the key
    # off disk on Linux; elsewhere a 0600 temporary file is removed at once.
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        fd = os.memfd_create("wasmtee-ratls", 0)
        try:
            os.write(fd, pem)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "identity.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        yield path


def _peer_name(connection: ssl.SSLSocket) -> str:
    try:
        host, port = connection.getpeername()[:2]
    except OSError:
        return "an unknown peer"
    return f"{host}:{port}"
