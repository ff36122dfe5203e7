"""End to end on the sim backend: an attested job over RA-TLS on loopback.

The enclave process listens on 127.0.0.1 with a fresh RA-TLS certificate.
The client verifies that certificate against a Policy, sends a WASI module
and its input over the channel, and receives the result that the module
wrote to a protected file. Forged and mismatched certificates are rejected.
"""

from __future__ import annotations

import datetime
import hashlib
import socket
import ssl
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from wasmtee.tee import ratls
from wasmtee.tee.enclave import Enclave
from wasmtee.tee.errors import VerificationError
from wasmtee.tee.measure import EnclaveConfig, measure_runtime
from wasmtee.tee.ratls_service import send_request
from wasmtee.tee.sim import SimPlatform
from wasmtee.tee.verify import Policy

# Reads stdin, writes "sum=<total> of <count> numbers" to /data/result, prints "done".
JOB_C = r"""
#include <stdio.h>

int main(void) {
    long total = 0, value;
    int count = 0;
    while (scanf("%ld", &value) == 1) { total += value; count++; }
    FILE *result = fopen("/data/result", "w");
    if (!result) { perror("fopen /data/result"); return 3; }
    fprintf(result, "sum=%ld of %d numbers, confidential marker QX7", total, count);
    fclose(result);
    printf("done\n");
    return 0;
}
"""
JOB_INPUT = b"17 25 1000 -2\n"
# The python tier starts jobs faster than the default, which compiles with LLVM first.
CONFIG = EnclaveConfig(tier="python")
CLIENT_TIMEOUT = 60.0
EXPECTED_RESULT = b"sum=1040 of 4 numbers, confidential marker QX7"


@pytest.fixture(scope="module")
def job_module(tmp_path_factory) -> bytes:
    directory = tmp_path_factory.mktemp("job")
    (directory / "job.c").write_text(JOB_C)
    subprocess.run([sys.executable, "-m", "ziglang", "cc", "--target=wasm32-wasi", "-O2",
                    str(directory / "job.c"), "-o", str(directory / "job.wasm")],
                   check=True, capture_output=True)
    return (directory / "job.wasm").read_bytes()


@pytest.fixture(scope="module")
def sim_state(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("sim")


@pytest.fixture(scope="module")
def storage(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("storage")


@pytest.fixture(scope="module")
def enclave(sim_state, storage):
    with Enclave(backend="sim", state_dir=sim_state, storage_dir=storage,
                 config=CONFIG) as running:
        yield running


@pytest.fixture(scope="module")
def endpoint(enclave):
    return enclave.ratls_listen("127.0.0.1", 0)


@pytest.fixture(scope="module")
def roots(sim_state):
    return [SimPlatform(sim_state).root_certificate]


@pytest.fixture(scope="module")
def executor():
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield pool


def expected_policy() -> Policy:
    return Policy(mr_enclave=measure_runtime(CONFIG), allow_simulation=True,
                  allow_debug=True)


def serve_in_background(executor, enclave) -> Future:
    return executor.submit(enclave.ratls_serve, 30.0)


def test_job_result_over_attested_channel(enclave, endpoint, roots, executor, storage,
                                          job_module):
    outcome = serve_in_background(executor, enclave)
    connection, claims = ratls.connect((endpoint.host, endpoint.port), ratls.client_context(),
                                       expected_policy(), roots, timeout=CLIENT_TIMEOUT)
    with connection:
        assert claims.mr_enclave == enclave.identity["mr_enclave"]
        assert claims.simulated
        response = send_request(connection, job_module, JOB_INPUT)
    assert response["ok"], response
    assert response["exit_code"] == 0
    assert response["result"] == EXPECTED_RESULT
    assert response["stdout"] == b"done\n"
    host_view = outcome.result(timeout=30)
    assert host_view["served"] is True
    assert host_view["ok"] is True
    # The host's outcome names no request or result bytes.
    assert set(host_view) == {"peer", "served", "ok"}

    stored = [path for path in storage.rglob("*") if path.is_file()]
    assert stored, "the protected result file is not in host storage"
    for path in stored:
        data = path.read_bytes()
        assert b"QX7" not in data, path
        assert b"sum=1040" not in data, path


def test_failed_job_error_goes_to_client(enclave, endpoint, roots, executor):
    outcome = serve_in_background(executor, enclave)
    connection, _ = ratls.connect((endpoint.host, endpoint.port), ratls.client_context(),
                                  expected_policy(), roots, timeout=CLIENT_TIMEOUT)
    with connection:
        response = send_request(connection, b"\x00asm\x01\x00\x00\x00\x01\xff")
    assert response["ok"] is False
    assert "Error" in response["error"]
    host_view = outcome.result(timeout=30)
    assert host_view == {"peer": host_view["peer"], "served": True, "ok": False}


def test_endless_job_times_out(enclave, endpoint, roots, executor):
    outcome = executor.submit(enclave.ratls_serve, 30.0, 0.5)
    connection, _ = ratls.connect((endpoint.host, endpoint.port), ratls.client_context(),
                                  expected_policy(), roots, timeout=CLIENT_TIMEOUT)
    with connection:
        response = send_request(connection, b'(module (func (export "_start") (loop (br 0))))')
    assert response["ok"] is False
    assert response["error"].startswith("Trap")
    assert outcome.result(timeout=30)["ok"] is False


def test_wrong_mrenclave_rejected(enclave, endpoint, roots, executor):
    outcome = serve_in_background(executor, enclave)
    policy = Policy(mr_enclave=hashlib.sha256(b"some other enclave").digest(),
                    allow_simulation=True, allow_debug=True)
    with pytest.raises(VerificationError) as info:
        ratls.connect((endpoint.host, endpoint.port), ratls.client_context(), policy, roots)
    assert info.value.check == "mr_enclave"
    assert outcome.result(timeout=30)["served"] is False


def test_simulation_not_allowed_by_default(enclave, endpoint, roots, executor):
    outcome = serve_in_background(executor, enclave)
    policy = Policy(mr_enclave=measure_runtime(CONFIG))
    with pytest.raises(VerificationError):
        ratls.connect((endpoint.host, endpoint.port), ratls.client_context(), policy, roots)
    assert outcome.result(timeout=30)["served"] is False


def test_malformed_request_reported_to_host(enclave, endpoint, roots, executor):
    outcome = serve_in_background(executor, enclave)
    connection, _ = ratls.connect((endpoint.host, endpoint.port), ratls.client_context(),
                                  expected_policy(), roots, timeout=CLIENT_TIMEOUT)
    with connection:
        payload = b"\xff\xff not CBOR"
        connection.sendall(len(payload).to_bytes(4, "big") + payload)
        host_view = outcome.result(timeout=30)
        # The enclave closes the connection without a response.
        assert connection.recv(1) == b""
    assert host_view["served"] is False
    assert host_view["step"] == "request"


def fetch_certificate(enclave, endpoint, executor) -> x509.Certificate:
    outcome = serve_in_background(executor, enclave)
    raw = socket.create_connection((endpoint.host, endpoint.port), timeout=10)
    with ratls.client_context().wrap_socket(raw) as connection:
        der = connection.getpeercert(binary_form=True)
    outcome.result(timeout=30)
    assert der == endpoint.certificate_der
    return x509.load_der_x509_certificate(der)


def forge_certificate(original: x509.Certificate, flip_evidence_byte: bool) -> ratls.RatlsIdentity:
    """Copy the enclave's RA-TLS extension into a certificate for an attacker's key."""
    key = ec.generate_private_key(ec.SECP256R1())
    evidence = bytearray(original.extensions.get_extension_for_oid(ratls.RATLS_OID).value.value)
    if flip_evidence_byte:
        evidence[len(evidence) // 3] ^= 0x01
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(original.subject)
        .issuer_name(original.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.UnrecognizedExtension(ratls.RATLS_OID, bytes(evidence)),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    return ratls.RatlsIdentity(
        certificate.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()),
    )


def serve_forged_once(identity: ratls.RatlsIdentity) -> tuple[int, threading.Thread]:
    """Accept one connection on loopback with `identity`, as a host-side attacker would."""
    listener = socket.create_server(("127.0.0.1", 0))
    context = ratls.server_context(identity, require_client_attestation=False)

    def serve() -> None:
        with listener:
            raw, _ = listener.accept()
            try:
                with context.wrap_socket(raw, server_side=True) as connection:
                    connection.recv(1)
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


@pytest.mark.parametrize("flip, check", [(False, "public_key"), (True, None)])
def test_tampered_certificate_rejected(enclave, endpoint, roots, executor, flip, check):
    forged = forge_certificate(fetch_certificate(enclave, endpoint, executor), flip)
    port, thread = serve_forged_once(forged)
    with pytest.raises(VerificationError) as info:
        ratls.connect(("127.0.0.1", port), ratls.client_context(), expected_policy(), roots)
    if check is not None:
        assert info.value.check == check
    else:
        # A flipped evidence byte breaks a signature or the CBOR structure.
        assert info.value.check != "mr_enclave"
    assert str(info.value)
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_serve_without_client_times_out(enclave):
    from wasmtee.tee.enclave import EnclaveCallError

    with pytest.raises(EnclaveCallError, match="no client connected within"):
        enclave.ratls_serve(timeout=0.2)
