"""Quote and evidence verification: every check accepts good input and rejects bad."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from wasmtee.errors import UsageError
from wasmtee.tee import ecdsa
from wasmtee.tee.errors import VerificationError
from wasmtee.tee.evidence import claims_report_data, encode_evidence
from wasmtee.tee.measure import EnclaveIdentity
from wasmtee.tee.quote import (
    INTEL_QE_VENDOR_ID,
    QuoteSignatureData,
    encode_quote,
    parse_quote,
)
from wasmtee.tee.sim import SimPlatform
from wasmtee.tee.verify import Policy, verify_evidence, verify_quote

MR_ENCLAVE = hashlib.sha256(b"test enclave").digest()
REPORT_DATA = b"report data for the test".ljust(64, b"\x00")


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    return SimPlatform(tmp_path_factory.mktemp("sim"))


@pytest.fixture(scope="module")
def identity(platform):
    return EnclaveIdentity(MR_ENCLAVE, platform.mr_signer, 7, 3, 0x5)


@pytest.fixture(scope="module")
def quote(platform, identity):
    return platform.quote(identity, REPORT_DATA)


@pytest.fixture
def policy(platform):
    return Policy(mr_enclave=MR_ENCLAVE, mr_signer=platform.mr_signer, isv_prod_id=7,
                  min_isv_svn=3, allow_debug=True, allow_simulation=True,
                  report_data=REPORT_DATA)


def resign(platform, quote, header=None, body=None, vendor_id=None, **signature_changes):
    """Rebuild a quote with changed parts and valid signatures from the sim keys."""
    parsed = parse_quote(quote)
    header = header or parsed.header
    if vendor_id is not None:
        header = dataclasses.replace(header, qe_vendor_id=vendor_id)
    body = body or parsed.body
    signature_data = dataclasses.replace(parsed.signature_data, **signature_changes)
    signed = header.encode() + body.encode()
    signature_data = dataclasses.replace(
        signature_data, quote_signature=ecdsa.sign_raw(platform._attestation_key, signed)
    )
    return encode_quote(header, body, signature_data)


def expect_check(check, quote, policy, roots, now=None):
    with pytest.raises(VerificationError) as info:
        verify_quote(quote, policy, roots, now=now)
    assert info.value.check == check, str(info.value)
    return info.value


def test_verify_accepts_sim_quote(platform, quote, policy):
    claims = verify_quote(quote, policy, [platform.root_certificate])
    assert claims.mr_enclave == MR_ENCLAVE
    assert claims.mr_signer == platform.mr_signer
    assert claims.isv_prod_id == 7
    assert claims.isv_svn == 3
    assert claims.simulated
    assert claims.debug
    assert claims.report_data == REPORT_DATA


# Flip one byte in each field group; the check that must catch it.
TAMPER_CASES = [
    ("header qe_svn", 8, "quote_signature"),
    ("header vendor id", 20, "quote_signature"),
    ("header user data", 30, "quote_signature"),
    ("body cpu_svn", 48, "quote_signature"),
    ("body misc_select", 64, "quote_signature"),
    ("body attributes", 96, "quote_signature"),
    ("body mr_enclave", 112, "quote_signature"),
    ("body mr_signer", 176, "quote_signature"),
    ("body isv_prod_id", 304, "quote_signature"),
    ("body isv_svn", 306, "quote_signature"),
    ("body reserved", 320, "quote_signature"),
    ("body report_data", 368, "quote_signature"),
    ("quote signature", 436 + 5, "quote_signature"),
    ("attestation key", 436 + 64 + 5, "qe_report_data"),
    ("qe report body", 436 + 128 + 112, "qe_report_signature"),
    ("qe report data", 436 + 128 + 368, "qe_report_signature"),
    ("qe report signature", 436 + 128 + 384 + 7, "qe_report_signature"),
    ("qe auth data", 436 + 128 + 384 + 64 + 2 + 3, "qe_report_data"),
    ("certification type", 436 + 128 + 384 + 64 + 2 + 32, "certification_data"),
    ("certificate body", 436 + 128 + 384 + 64 + 2 + 32 + 6 + 200, "certificate_chain"),
]


@pytest.mark.parametrize(("field", "offset", "check"), TAMPER_CASES,
                         ids=[case[0] for case in TAMPER_CASES])
def test_tampered_quote_rejected(platform, quote, policy, field, offset, check):
    tampered = bytearray(quote)
    tampered[offset] ^= 0x01
    expect_check(check, bytes(tampered), policy, [platform.root_certificate])


def test_truncated_quote_rejected(platform, quote, policy):
    expect_check("quote_format", quote[:-10], policy, [platform.root_certificate])
    expect_check("quote_format", b"", policy, [platform.root_certificate])


def test_untrusted_root_rejected(platform, quote, policy, tmp_path):
    other = SimPlatform(tmp_path)
    # Both sim roots have the same subject, so the check finds a bad signature.
    error = expect_check("certificate_chain", quote, policy, [other.root_certificate])
    assert "is not signed by its issuer: InvalidSignature" in str(error)
    expect_check("certificate_chain", quote, policy, [])


def test_chain_signed_by_other_key_rejected(platform, quote, policy, tmp_path):
    # A chain whose PCK certificate names the trusted root but was signed by
    # another platform's root key with the same subject.
    other = SimPlatform(tmp_path)
    forged = resign(platform, quote, certification_data=other.pck_chain_pem()[
        : other.pck_chain_pem().index(b"-----END CERTIFICATE-----") + 26
    ])
    expect_check("certificate_chain", forged, policy, [platform.root_certificate])


def test_expired_chain_rejected(platform, quote, policy):
    future = datetime.datetime(2200, 1, 1, tzinfo=datetime.timezone.utc)
    error = expect_check("certificate_chain", quote, policy, [platform.root_certificate], future)
    assert "is not valid at" in str(error)
    past = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
    expect_check("certificate_chain", quote, policy, [platform.root_certificate], past)


def test_qe_report_data_binding_checked(platform, quote, policy):
    # A valid PCK signature over a QE report that does not bind the key.
    parsed = parse_quote(quote)
    qe_report = dataclasses.replace(parsed.signature_data.qe_report, report_data=bytes(64))
    qe_bytes = qe_report.encode()
    forged = resign(platform, quote, qe_report=qe_report, qe_report_bytes=qe_bytes,
                    qe_report_signature=ecdsa.sign_raw(platform._pck_key, qe_bytes))
    expect_check("qe_report_data", forged, policy, [platform.root_certificate])


def test_foreign_attestation_key_rejected(platform, quote, policy):
    # An attacker's key signs the quote, but the QE report binds the real key.
    attacker = ec.generate_private_key(ec.SECP256R1())
    parsed = parse_quote(quote)
    signature_data = dataclasses.replace(
        parsed.signature_data,
        attestation_key=ecdsa.public_key_to_raw(attacker.public_key()),
        quote_signature=ecdsa.sign_raw(attacker, parsed.signed_bytes),
    )
    forged = encode_quote(parsed.header, parsed.body, signature_data)
    expect_check("qe_report_data", forged, policy, [platform.root_certificate])


def test_policy_identity_checks(platform, quote, policy):
    roots = [platform.root_certificate]
    cases = {
        "mr_enclave": dataclasses.replace(policy, mr_enclave=bytes(32)),
        "mr_signer": dataclasses.replace(policy, mr_signer=bytes(32)),
        "isv_prod_id": dataclasses.replace(policy, isv_prod_id=8),
        "isv_svn": dataclasses.replace(policy, min_isv_svn=4),
        "report_data": dataclasses.replace(policy, report_data=b"other"),
    }
    for check, bad_policy in cases.items():
        expect_check(check, quote, bad_policy, roots)


def test_strict_policy_rejects_simulation_and_debug(platform, quote, identity):
    roots = [platform.root_certificate]
    strict = Policy(mr_enclave=MR_ENCLAVE)
    assert not strict.allow_simulation
    assert not strict.allow_debug
    expect_check("simulation", quote, strict, roots)
    expect_check("debug", quote, Policy(mr_enclave=MR_ENCLAVE, allow_simulation=True), roots)
    # A quote that claims Intel's vendor id still carries the simulated chain.
    intel_vendor = resign(platform, quote, vendor_id=INTEL_QE_VENDOR_ID)
    expect_check("simulation", intel_vendor, strict, roots)


def test_policy_requires_identity():
    with pytest.raises(UsageError, match="must set mr_enclave or mr_signer"):
        Policy()
    with pytest.raises(UsageError, match="mr_enclave must be 32 bytes"):
        Policy(mr_enclave=b"short")


def test_policy_from_json():
    policy = Policy.from_json(
        '{"mr_enclave": "' + MR_ENCLAVE.hex() + '", "min_isv_svn": 2, "allow_debug": true}'
    )
    assert policy.mr_enclave == MR_ENCLAVE
    assert policy.min_isv_svn == 2
    assert policy.allow_debug
    with pytest.raises(UsageError, match="unknown policy keys"):
        Policy.from_json('{"mrenclave": "00"}')
    with pytest.raises(UsageError, match="must be a hex string"):
        Policy.from_json('{"mr_enclave": "zz"}')
    with pytest.raises(UsageError, match="not valid JSON"):
        Policy.from_json("{")


@pytest.mark.parametrize("freshness", [{"nonce": b"n" * 16}, {"max_age": 30.0},
                                       {"nonce": b"n", "max_age": 1.0}])
def test_bare_quote_fails_freshness_policy(platform, quote, policy, freshness):
    # A quote has no nonce and no issue time, so it cannot prove freshness.
    fresh_policy = dataclasses.replace(policy, **freshness)
    error = expect_check("freshness", quote, fresh_policy, [platform.root_certificate])
    assert "verify evidence instead" in str(error)


def test_bare_quote_passes_without_freshness(platform, quote, policy):
    assert policy.nonce is None
    assert policy.max_age is None
    claims = verify_quote(quote, policy, [platform.root_certificate])
    assert claims.report_data == REPORT_DATA


def test_public_message_names_no_check(platform, quote):
    with pytest.raises(VerificationError) as info:
        verify_quote(quote, Policy(mr_enclave=MR_ENCLAVE), [platform.root_certificate])
    assert info.value.public_message == "attestation failed"
    assert "simulation" not in info.value.public_message


# -- evidence ------------------------------------------------------------------

def make_evidence(platform, identity, claims):
    return encode_evidence(platform.quote(identity, claims_report_data(claims)), claims)


def test_evidence_accepted_with_fresh_nonce(platform, identity):
    now = datetime.datetime.now(datetime.timezone.utc)
    claims = {"nonce": b"n" * 16, "iat": int(now.timestamp()), "user-data": b"x"}
    evidence = make_evidence(platform, identity, claims)
    policy = Policy(mr_enclave=MR_ENCLAVE, allow_debug=True, allow_simulation=True,
                    nonce=b"n" * 16, max_age=30)
    verified = verify_evidence(evidence, policy, [platform.root_certificate], now=now)
    assert verified.evidence_claims == claims


def test_evidence_stale_nonce_rejected(platform, identity):
    now = datetime.datetime.now(datetime.timezone.utc)
    claims = {"nonce": b"old nonce", "iat": int(now.timestamp())}
    evidence = make_evidence(platform, identity, claims)
    policy = Policy(mr_enclave=MR_ENCLAVE, allow_debug=True, allow_simulation=True,
                    nonce=b"new nonce", max_age=30)
    with pytest.raises(VerificationError) as info:
        verify_evidence(evidence, policy, [platform.root_certificate], now=now)
    assert info.value.check == "nonce"
    later = now + datetime.timedelta(seconds=31)
    fresh_nonce = dataclasses.replace(policy, nonce=b"old nonce")
    with pytest.raises(VerificationError) as info:
        verify_evidence(evidence, fresh_nonce, [platform.root_certificate], now=later)
    assert info.value.check == "freshness"


def test_evidence_claims_swap_rejected(platform, identity):
    claims = {"nonce": b"a", "iat": 1}
    quote = platform.quote(identity, claims_report_data(claims))
    swapped = encode_evidence(quote, {"nonce": b"b", "iat": 1})
    policy = Policy(mr_enclave=MR_ENCLAVE, allow_debug=True, allow_simulation=True)
    with pytest.raises(VerificationError) as info:
        verify_evidence(swapped, policy, [platform.root_certificate])
    assert info.value.check == "report_data"


def test_evidence_policy_identity_checks(platform, identity):
    now = datetime.datetime.now(datetime.timezone.utc)
    claims = {"nonce": b"n", "iat": int(now.timestamp())}
    evidence = make_evidence(platform, identity, claims)
    roots = [platform.root_certificate]
    policy = Policy(mr_enclave=MR_ENCLAVE, mr_signer=platform.mr_signer, isv_prod_id=7,
                    min_isv_svn=3, allow_debug=True, allow_simulation=True,
                    nonce=b"n", max_age=30)
    assert verify_evidence(evidence, policy, roots, now=now).isv_svn == 3
    cases = {
        "simulation": dataclasses.replace(policy, allow_simulation=False),
        "debug": dataclasses.replace(policy, allow_debug=False),
        "mr_enclave": dataclasses.replace(policy, mr_enclave=bytes(32)),
        "mr_signer": dataclasses.replace(policy, mr_signer=bytes(32)),
        "isv_prod_id": dataclasses.replace(policy, isv_prod_id=8),
        "isv_svn": dataclasses.replace(policy, min_isv_svn=4),
        "nonce": dataclasses.replace(policy, nonce=b"m"),
    }
    for check, bad_policy in cases.items():
        with pytest.raises(VerificationError) as info:
            verify_evidence(evidence, bad_policy, roots, now=now)
        assert info.value.check == check, str(info.value)
    with pytest.raises(UsageError, match="report_data cannot be used with evidence"):
        verify_evidence(evidence, dataclasses.replace(policy, report_data=b"x"), roots, now=now)


def test_evidence_without_freshness_claims_rejected(platform, identity):
    evidence = make_evidence(platform, identity, {"user-data": b"x"})
    roots = [platform.root_certificate]
    policy = Policy(mr_enclave=MR_ENCLAVE, allow_debug=True, allow_simulation=True)
    with pytest.raises(VerificationError) as info:
        verify_evidence(evidence, dataclasses.replace(policy, nonce=b"n"), roots)
    assert info.value.check == "nonce"
    with pytest.raises(VerificationError) as info:
        verify_evidence(evidence, dataclasses.replace(policy, max_age=30), roots)
    assert info.value.check == "freshness"


@pytest.mark.parametrize("blob", [b"", b"\x80", b"\x82\x01\x02", b"\x82\x40\xa1\x01\x01",
                                  b"\x82\x40\xa0\x00"])
def test_malformed_evidence_rejected(platform, blob):
    policy = Policy(mr_enclave=MR_ENCLAVE, allow_debug=True, allow_simulation=True)
    with pytest.raises(VerificationError) as info:
        verify_evidence(blob, policy, [platform.root_certificate])
    assert info.value.check == "evidence_format"


def test_pck_key_serialization_roundtrip(platform):
    der = platform.pck_certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert len(der) == 91


def test_intel_root_pin_rejects_other_roots(quote):
    from wasmtee.tee.verify import intel_root_from_quote

    with pytest.raises(VerificationError) as info:
        intel_root_from_quote(quote)
    assert info.value.check == "certificate_chain"
    assert "not at the Intel SGX Root CA" in str(info.value)
    with pytest.raises(VerificationError) as info:
        intel_root_from_quote(b"short")
    assert info.value.check == "quote_format"


def make_cert(subject, issuer, public_key, signing_key, ca, path_length=None, cert_sign=True):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None),
                       critical=True)
    )
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
            crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
    return builder.sign(signing_key, hashes.SHA256())


def pem(*certificates):
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certificates)


def test_path_length_constraint_enforced(platform, quote, policy):
    root_key = ec.generate_private_key(ec.SECP256R1())
    middle_key = ec.generate_private_key(ec.SECP256R1())
    root = make_cert("root", "root", root_key.public_key(), root_key, ca=True, path_length=0)
    middle = make_cert("middle", "root", middle_key.public_key(), root_key, ca=True)
    leaf = make_cert("pck", "middle", platform._pck_key.public_key(), middle_key, ca=False)
    forged = resign(platform, quote, certification_data=pem(leaf, middle, root))
    error = expect_check("certificate_chain", forged, policy, [root])
    assert "allows 0 intermediate CAs below it, the chain has 1" in str(error)
    # The same chain under a root without the constraint is accepted.
    open_root = make_cert("root", "root", root_key.public_key(), root_key, ca=True)
    middle = make_cert("middle", "root", middle_key.public_key(), root_key, ca=True)
    accepted = resign(platform, quote, certification_data=pem(leaf, middle, open_root))
    assert verify_quote(accepted, policy, [open_root]).mr_enclave == MR_ENCLAVE


def test_issuer_without_cert_sign_rejected(platform, quote, policy):
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = make_cert("root", "root", root_key.public_key(), root_key, ca=True, cert_sign=False)
    leaf = make_cert("pck", "root", platform._pck_key.public_key(), root_key, ca=False)
    forged = resign(platform, quote, certification_data=pem(leaf, root))
    error = expect_check("certificate_chain", forged, policy, [root])
    assert "may not sign certificates" in str(error)


def test_leaf_as_issuer_rejected(platform, quote, policy):
    root_key = ec.generate_private_key(ec.SECP256R1())
    fake_ca_key = ec.generate_private_key(ec.SECP256R1())
    root = make_cert("root", "root", root_key.public_key(), root_key, ca=True)
    not_ca = make_cert("end entity", "root", fake_ca_key.public_key(), root_key, ca=False)
    leaf = make_cert("pck", "end entity", platform._pck_key.public_key(), fake_ca_key, ca=False)
    forged = resign(platform, quote, certification_data=pem(leaf, not_ca, root))
    error = expect_check("certificate_chain", forged, policy, [root])
    assert "is not a CA certificate" in str(error)


@pytest.mark.parametrize("text", [
    '{"mr_enclave": "%s", "max_age": "soon"}',
    '{"mr_enclave": "%s", "max_age": -1}',
    '{"mr_enclave": "%s", "min_isv_svn": 70000}',
    '{"mr_enclave": "%s", "isv_prod_id": "1"}',
    '{"mr_enclave": "%s", "allow_debug": 1}',
    '{"mr_enclave": "%s", "report_data": "%s"}',
])
def test_policy_json_rejects_bad_values(text):
    values = (MR_ENCLAVE.hex(),) if text.count("%s") == 1 else (MR_ENCLAVE.hex(), "00" * 65)
    with pytest.raises(UsageError):
        Policy.from_json(text % values)


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_mutated_quotes_only_raise_verification_error(platform, quote, data):
    policy = Policy(mr_enclave=MR_ENCLAVE, allow_debug=True, allow_simulation=True)
    mutated = bytearray(quote)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(mutated) - 1))
        mutated[position] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        cut = data.draw(st.integers(0, len(mutated)))
        mutated = mutated[:cut]
    try:
        claims = verify_quote(bytes(mutated), policy, [platform.root_certificate])
    except VerificationError as exc:
        assert exc.check
        return
    # Only a mutation that changed nothing (or only the unsigned PEM text
    # in a way that still parses to the same certificates) may pass.
    assert claims.mr_enclave == MR_ENCLAVE


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.binary(max_size=3000), keep=st.integers(0, 1200))
def test_fuzz_random_bytes_never_crash_parser(quote, blob, keep):
    from wasmtee.tee.errors import QuoteFormatError

    # A genuine prefix gets the parser past the header into the signature data.
    candidate = quote[:keep] + blob
    try:
        parsed = parse_quote(candidate)
    except QuoteFormatError:
        return
    assert parsed.raw == candidate


def test_unknown_key_algorithm_in_chain_rejected(platform, quote):
    # A damaged algorithm OID in the chain's root certificate: cryptography
    # loads the certificate and fails only when its key is first read.
    begin = quote.index(b"-----BEGIN CERTIFICATE-----", quote.index(b"-----END CERTIFICATE-----"))
    end = quote.index(b"-----END CERTIFICATE-----", begin) + len(b"-----END CERTIFICATE-----")
    der = x509.load_pem_x509_certificate(quote[begin:end]).public_bytes(serialization.Encoding.DER)
    ec_public_key_oid = bytes.fromhex("06072a8648ce3d0201")
    assert ec_public_key_oid in der
    damaged = x509.load_der_x509_certificate(
        der.replace(ec_public_key_oid, bytes.fromhex("06072a8648ce3d0209"))
    ).public_bytes(serialization.Encoding.PEM)
    assert len(damaged) == end - begin + 1  # PEM output ends with a newline
    mutated = quote[:begin] + damaged[:-1] + quote[end:]
    policy = Policy(mr_enclave=MR_ENCLAVE, allow_debug=True, allow_simulation=True)
    with pytest.raises(VerificationError, match="malformed certificate") as info:
        verify_quote(mutated, policy, [platform.root_certificate])
    assert info.value.check == "certificate_chain"
