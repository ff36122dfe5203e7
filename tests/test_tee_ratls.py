"""RA-TLS certificates and attested TLS over loopback."""

from __future__ import annotations

import datetime
import hashlib
import socket
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from wasmtee.tee import ratls
from wasmtee.tee.attester import Attester
from wasmtee.tee.errors import VerificationError
from wasmtee.tee.measure import EnclaveIdentity
from wasmtee.tee.sim import SimPlatform
from wasmtee.tee.verify import Policy

SERVER_MR = hashlib.sha256(b"server enclave").digest()
CLIENT_MR = hashlib.sha256(b"client enclave").digest()


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    return SimPlatform(tmp_path_factory.mktemp("sim"))


@pytest.fixture(scope="module")
def roots(platform):
    return [platform.root_certificate]


def attester(platform, mr_enclave):
    return Attester(platform, EnclaveIdentity(mr_enclave, platform.mr_signer, 1, 1, 0x7))


def policy_for(mr_enclave):
    return Policy(mr_enclave=mr_enclave, allow_debug=True, allow_simulation=True, max_age=300)


@pytest.fixture(scope="module")
def server_identity(platform):
    return ratls.create_certificate(attester(platform, SERVER_MR))


@pytest.fixture(scope="module")
def client_identity(platform):
    return ratls.create_certificate(attester(platform, CLIENT_MR))


def serve_once(context, client_policy, roots):
    """Run a server thread for one connection; return (address, thread, result dict)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    result = {}

    def run():
        try:
            connection, claims = ratls.accept(listener, context, client_policy, roots)
            result["claims"] = claims
            with connection:
                data = connection.recv(100)
                connection.sendall(b"echo:" + data)
        except (ssl.SSLError, OSError, VerificationError) as exc:
            result["error"] = exc
        finally:
            listener.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return listener.getsockname(), thread, result


def test_certificate_carries_evidence(server_identity, roots):
    certificate = server_identity.certificate
    extension = certificate.extensions.get_extension_for_oid(ratls.RATLS_OID)
    assert not extension.critical
    assert ratls.RATLS_OID.dotted_string == "2.23.133.5.4.9"
    der = certificate.public_bytes(serialization.Encoding.DER)
    claims = ratls.verify_certificate(der, policy_for(SERVER_MR), roots)
    assert claims.mr_enclave == SERVER_MR
    assert claims.evidence_claims["pubkey-hash"] == ratls.public_key_hash(certificate)


def test_one_way_attestation_to_plain_client(server_identity, roots):
    context = ratls.server_context(server_identity, require_client_attestation=False)
    address, thread, result = serve_once(context, None, roots)
    connection, claims = ratls.connect(address, ratls.client_context(), policy_for(SERVER_MR),
                                       roots)
    with connection:
        connection.sendall(b"hello")
        assert connection.recv(100) == b"echo:hello"
    thread.join(10)
    assert claims.mr_enclave == SERVER_MR
    assert result["claims"] is None
    assert "error" not in result


def test_mutual_attestation(server_identity, client_identity, roots):
    context = ratls.server_context(server_identity, require_client_attestation=True)
    address, thread, result = serve_once(context, policy_for(CLIENT_MR), roots)
    client = ratls.client_context(client_identity)
    connection, claims = ratls.connect(address, client, policy_for(SERVER_MR), roots)
    with connection:
        connection.sendall(b"ping")
        assert connection.recv(100) == b"echo:ping"
    thread.join(10)
    assert claims.mr_enclave == SERVER_MR
    assert "error" not in result
    assert result["claims"].mr_enclave == CLIENT_MR


def test_client_rejects_wrong_server_measurement(server_identity, roots):
    context = ratls.server_context(server_identity, require_client_attestation=False)
    address, thread, result = serve_once(context, None, roots)
    with pytest.raises(VerificationError) as info:
        ratls.connect(address, ratls.client_context(), policy_for(CLIENT_MR), roots)
    assert info.value.check == "mr_enclave"
    thread.join(10)
    # The server sees only a closed connection, no reason.
    assert "claims" in result


def test_server_rejects_unattested_client(server_identity, roots):
    context = ratls.server_context(server_identity, require_client_attestation=True)
    address, thread, result = serve_once(context, policy_for(CLIENT_MR), roots)
    raw = socket.create_connection(address, timeout=10)
    with pytest.raises((ssl.SSLError, OSError)):
        with ratls.client_context().wrap_socket(raw) as connection:
            connection.sendall(b"x")
            connection.recv(10)
    thread.join(10)
    assert isinstance(result.get("error"), ssl.SSLError)


def test_server_rejects_wrong_client_measurement(server_identity, platform, roots):
    impostor = ratls.create_certificate(attester(platform, hashlib.sha256(b"other").digest()))
    context = ratls.server_context(server_identity, require_client_attestation=True)
    address, thread, result = serve_once(context, policy_for(CLIENT_MR), roots)
    connection, _ = ratls.connect(address, ratls.client_context(impostor),
                                  policy_for(SERVER_MR), roots)
    with connection:
        connection.sendall(b"x")
        assert connection.recv(10) == b""
    thread.join(10)
    assert result["error"].check == "mr_enclave"


def test_key_not_bound_by_claims_rejected(server_identity, roots):
    # Evidence copied from a genuine certificate into one with another key.
    genuine = server_identity.certificate
    evidence = genuine.extensions.get_extension_for_oid(ratls.RATLS_OID).value.value
    other_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    forged = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "forged")]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "forged")]))
        .public_key(other_key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.UnrecognizedExtension(ratls.RATLS_OID, evidence), critical=False)
        .sign(other_key, hashes.SHA256())
    )
    der = forged.public_bytes(serialization.Encoding.DER)
    with pytest.raises(VerificationError) as info:
        ratls.verify_certificate(der, policy_for(SERVER_MR), roots)
    assert info.value.check == "public_key"


def test_certificate_without_extension_rejected(roots):
    issuer_der = x509.load_pem_x509_certificate(ratls.issuer_certificate_pem()).public_bytes(
        serialization.Encoding.DER)
    with pytest.raises(VerificationError) as info:
        ratls.verify_certificate(issuer_der, policy_for(SERVER_MR), roots)
    assert info.value.check == "ratls_certificate"
    with pytest.raises(VerificationError) as info:
        ratls.verify_certificate(b"not a certificate", policy_for(SERVER_MR), roots)
    assert info.value.check == "ratls_certificate"


def test_stale_certificate_rejected(server_identity, roots):
    der = server_identity.certificate.public_bytes(serialization.Encoding.DER)
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    with pytest.raises(VerificationError) as info:
        ratls.verify_certificate(der, policy_for(SERVER_MR), roots, now=later)
    assert info.value.check == "freshness"
