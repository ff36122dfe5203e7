"""The simulated SGX platform behind the `sim` backend.

It keeps in software what SGX hardware and Intel's quoting infrastructure
keep: a platform root key for EGETKEY, a quoting enclave with an ECDSA
attestation key, and a certificate chain (root CA, then a PCK-like
certificate that signs the QE report). Everything it produces says that it
is simulated: its QE vendor id is not Intel's, its certificate subjects
contain "Simulated", and enclaves built on it have the DEBUG attribute.

The state lives in a directory (default ~/.local/state/wasmtee/sim), with
the directory at mode 0700 and every file at 0600. Anyone who can read that
directory or this process's memory can forge quotes and unseal data.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from wasmtee.tee import ecdsa, kdf
from wasmtee.tee.errors import TeeError
from wasmtee.tee.measure import EnclaveIdentity, signer_measurement
from wasmtee.tee.quote import (
    ATTESTATION_KEY_TYPE_ECDSA_P256,
    ATTRIBUTE_DEBUG,
    ATTRIBUTE_INIT,
    ATTRIBUTE_MODE64BIT,
    CERTIFICATION_DATA_PCK_CHAIN,
    QUOTE_VERSION,
    SIM_QE_VENDOR_ID,
    TEE_TYPE_SGX,
    QuoteHeader,
    QuoteSignatureData,
    ReportBody,
    encode_quote,
)

log = logging.getLogger(__name__)

SIMULATED_MARKER = "Simulated"
ROOT_CA_NAME = f"wasmtee {SIMULATED_MARKER} SGX Root CA"
PCK_NAME = f"wasmtee {SIMULATED_MARKER} SGX PCK Certificate"
DEFAULT_CPU_SVN = bytes([2] * 16)
QE_SVN = 1
PCE_SVN = 1
# The identity of the simulated quoting enclave, as its QE report shows it.
QE_MR_ENCLAVE = hashlib.sha256(b"wasmtee simulated quoting enclave").digest()
QE_MR_SIGNER = hashlib.sha256(b"wasmtee simulated platform signer").digest()
QE_PROD_ID = 1
# Intel's QE fills its authentication data with the bytes 0..31.
QE_AUTH_DATA = bytes(range(32))
MAX_COUNTER = 2**63 - 1


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    return Path(base) / "wasmtee" / "sim"


class SimPlatform:
    """A software stand-in for SGX hardware and the DCAP quoting enclave.

    Raises TeeError when the state directory cannot be created or contains
    files that cannot be loaded.
    """

    backend = "sim"
    simulated = True

    def __init__(self, state_dir: str | os.PathLike[str] | None = None,
                 cpu_svn: bytes = DEFAULT_CPU_SVN) -> None:
        if len(cpu_svn) != 16:
            raise ValueError(f"cpu_svn must be 16 bytes, not {len(cpu_svn)}")
        self.state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
        self.cpu_svn = bytes(cpu_svn)
        try:
            self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            if self.state_dir.stat().st_mode & 0o077:
                log.warning("sim platform state directory %s is open to other users; "
                            "run chmod 700 on it", self.state_dir)
            with self._locked():
                self._load_or_create()
        except OSError as exc:
            raise TeeError(f"cannot open the sim platform state in {self.state_dir}: {exc}") from exc

    # -- state ---------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.state_dir / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _load_or_create(self) -> None:
        root_key_path = self.state_dir / "root_key.bin"
        if not root_key_path.exists():
            log.info("creating a simulated SGX platform in %s", self.state_dir)
            self._create()
        self._root_key = root_key_path.read_bytes()
        if len(self._root_key) != 32:
            raise TeeError(f"{root_key_path} must hold 32 bytes, not {len(self._root_key)}")
        self._attestation_key = self._load_private_key("attestation_key.pem")
        self._pck_key = self._load_private_key("pck_key.pem")
        self._signer_key = self._load_private_key("signer_key.pem")
        self.root_certificate = x509.load_pem_x509_certificate(
            (self.state_dir / "root_ca.pem").read_bytes()
        )
        self.pck_certificate = x509.load_pem_x509_certificate(
            (self.state_dir / "pck.pem").read_bytes()
        )

    def _load_private_key(self, name: str) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key((self.state_dir / name).read_bytes(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TeeError(f"{self.state_dir / name} does not hold an EC private key")
        return key

    def _write_private(self, name: str, data: bytes) -> None:
        path = self.state_dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(path, 0o600)

    def _create(self) -> None:
        now = datetime.datetime.now(datetime.timezone.utc)
        keys = {name: ec.generate_private_key(ec.SECP256R1())
                for name in ("root_ca_key", "pck_key", "attestation_key", "signer_key")}
        root_name = _name(ROOT_CA_NAME)
        root = _certificate(root_name, root_name, keys["root_ca_key"].public_key(),
                            keys["root_ca_key"], now, days=7300, ca=True)
        pck = _certificate(_name(PCK_NAME), root_name, keys["pck_key"].public_key(),
                           keys["root_ca_key"], now, days=3650, ca=False)
        for name, key in keys.items():
            pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            self._write_private(f"{name}.pem", pem)
        self._write_private("root_ca.pem", root.public_bytes(serialization.Encoding.PEM))
        self._write_private("pck.pem", pck.public_bytes(serialization.Encoding.PEM))
        # The root key is written last: its presence marks a complete state.
        self._write_private("root_key.bin", os.urandom(32))

    # -- identity, quotes and keys --------------------------------------------

    @property
    def mr_signer(self) -> bytes:
        """The MRSIGNER of enclaves this platform signs: SHA-256 of the signer key."""
        der = self._signer_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return signer_measurement(der)

    def bind_identity(self, measured: EnclaveIdentity) -> EnclaveIdentity:
        """Return the identity this platform reports for a measured enclave.

        A simulated enclave always has the DEBUG attribute.
        """
        return dataclasses.replace(
            measured, attributes_flags=measured.attributes_flags | ATTRIBUTE_DEBUG
        )

    def pck_chain_pem(self) -> bytes:
        """Return the certification data of type 5: PCK certificate, then the root CA."""
        return (self.pck_certificate.public_bytes(serialization.Encoding.PEM)
                + self.root_certificate.public_bytes(serialization.Encoding.PEM))

    def quote(self, identity: EnclaveIdentity, report_data: bytes) -> bytes:
        """Produce a signed DCAP v3 quote for an enclave with `identity`.

        The enclave's DEBUG attribute is always set, whatever `identity`
        contains, because a simulated enclave's memory is open to the host.
        """
        if len(report_data) > 64:
            raise ValueError(f"report data is {len(report_data)} bytes, max 64")
        body = ReportBody(
            cpu_svn=self.cpu_svn,
            misc_select=identity.misc_select,
            attributes_flags=identity.attributes_flags | ATTRIBUTE_DEBUG,
            attributes_xfrm=identity.attributes_xfrm,
            mr_enclave=identity.mr_enclave,
            mr_signer=identity.mr_signer,
            isv_prod_id=identity.isv_prod_id,
            isv_svn=identity.isv_svn,
            report_data=report_data.ljust(64, b"\x00"),
        )
        header = QuoteHeader(
            version=QUOTE_VERSION,
            attestation_key_type=ATTESTATION_KEY_TYPE_ECDSA_P256,
            tee_type=TEE_TYPE_SGX,
            qe_svn=QE_SVN,
            pce_svn=PCE_SVN,
            qe_vendor_id=SIM_QE_VENDOR_ID,
            user_data=b"wasmtee-sim".ljust(20, b"\x00"),
        )
        attestation_key_raw = ecdsa.public_key_to_raw(self._attestation_key.public_key())
        binding = hashlib.sha256(attestation_key_raw + QE_AUTH_DATA).digest()
        qe_report = ReportBody(
            cpu_svn=self.cpu_svn,
            misc_select=0,
            attributes_flags=ATTRIBUTE_INIT | ATTRIBUTE_MODE64BIT | ATTRIBUTE_DEBUG,
            attributes_xfrm=0x3,
            mr_enclave=QE_MR_ENCLAVE,
            mr_signer=QE_MR_SIGNER,
            isv_prod_id=QE_PROD_ID,
            isv_svn=QE_SVN,
            report_data=binding + bytes(32),
        )
        qe_report_bytes = qe_report.encode()
        signed = header.encode() + body.encode()
        signature_data = QuoteSignatureData(
            quote_signature=ecdsa.sign_raw(self._attestation_key, signed),
            attestation_key=attestation_key_raw,
            qe_report=qe_report,
            qe_report_signature=ecdsa.sign_raw(self._pck_key, qe_report_bytes),
            qe_auth_data=QE_AUTH_DATA,
            certification_data_type=CERTIFICATION_DATA_PCK_CHAIN,
            certification_data=self.pck_chain_pem(),
            qe_report_bytes=qe_report_bytes,
        )
        return encode_quote(header, body, signature_data)

    def get_key(self, identity: EnclaveIdentity, request: kdf.KeyRequest) -> bytes:
        """Derive a key as EGETKEY does, for the enclave with `identity`.

        Raises TeeError when the request names an ISVSVN or CPUSVN above
        the current one, as EGETKEY fails with SGX_INVALID_ISVSVN/CPUSVN.
        """
        if request.isv_svn > identity.isv_svn:
            raise TeeError(
                f"key request ISVSVN {request.isv_svn} is above the enclave's "
                f"ISVSVN {identity.isv_svn}"
            )
        if not kdf.svn_at_least(self.cpu_svn, request.cpu_svn):
            raise TeeError(
                f"key request CPUSVN {request.cpu_svn.hex()} is above the "
                f"platform's CPUSVN {self.cpu_svn.hex()}"
            )
        dependencies = kdf.key_dependencies(
            request, identity.mr_enclave, identity.mr_signer, identity.isv_prod_id,
            identity.attributes_flags,
        )
        return kdf.derive_key(self._root_key, dependencies)

    # -- monotonic counters ---------------------------------------------------

    def read_counter(self, name: str) -> int:
        """Return the current value of the monotonic counter `name` (0 if new)."""
        with self._locked():
            return self._load_counters().get(name, 0)

    def increment_counter(self, name: str) -> int:
        """Increment the monotonic counter `name` and return its new value."""
        with self._locked():
            counters = self._load_counters()
            value = counters.get(name, 0) + 1
            if value > MAX_COUNTER:
                raise TeeError(f"monotonic counter {name!r} is exhausted")
            counters[name] = value
            temporary = self.state_dir / "counters.json.tmp"
            self._write_private(temporary.name, json.dumps(counters, sort_keys=True).encode())
            os.replace(temporary, self.state_dir / "counters.json")
            return value

    def _load_counters(self) -> dict[str, int]:
        path = self.state_dir / "counters.json"
        if not path.exists():
            return {}
        try:
            counters = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise TeeError(f"cannot read monotonic counters from {path}: {exc}") from exc
        if not isinstance(counters, dict) or not all(
            isinstance(key, str) and isinstance(value, int) for key, value in counters.items()
        ):
            raise TeeError(f"{path} does not hold a map of counter names to integers")
        return counters


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"wasmtee ({SIMULATED_MARKER})"),
    ])


def _certificate(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
                 signing_key: ec.EllipticCurvePrivateKey, now: datetime.datetime,
                 days: int, ca: bool) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=ca,
                crl_sign=ca, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
    )
    return builder.sign(signing_key, hashes.SHA256())
