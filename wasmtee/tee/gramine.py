"""The gramine backend: hardware identity, quotes and keys from /dev/attestation.

Inside a `gramine-sgx` enclave, Gramine exposes SGX through pseudo-files
(Gramine documentation, "Attestation and Secret Provisioning"):

    attestation_type     "dcap" when the manifest sets sgx.remote_attestation
    user_report_data     write 64 bytes, the REPORTDATA of the next report/quote
    report               read the 432-byte SGX REPORT (body, KEYID, MAC)
    quote                read a DCAP quote over the last user_report_data
    keys/_sgx_mrenclave  read the 16-byte EGETKEY seal key, MRENCLAVE policy
    keys/_sgx_mrsigner   read the 16-byte EGETKEY seal key, MRSIGNER policy

Gramine's documentation warns that a key read from keys/_sgx_* and also
used by an encrypted mount must go through a KDF before other use. wasmtee
never uses these keys directly: each sealing key is AES-CMAC(key, key
dependencies) with a fresh KEYID. The tests emulate this interface in a
temporary directory.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import logging
import os
from pathlib import Path

from wasmtee.tee import kdf
from wasmtee.tee.errors import QuoteFormatError, TeeError
from wasmtee.tee.measure import EnclaveIdentity
from wasmtee.tee.quote import REPORT_BODY_SIZE, ReportBody, parse_quote

log = logging.getLogger(__name__)

SGX_REPORT_SIZE = REPORT_BODY_SIZE + 32 + 16
SEAL_KEY_FILES = {
    kdf.KEY_POLICY_MRENCLAVE: "_sgx_mrenclave",
    kdf.KEY_POLICY_MRSIGNER: "_sgx_mrsigner",
}


class GraminePlatform:
    """SGX through Gramine's /dev/attestation pseudo-files.

    `state_dir` contains the monotonic counters, so point it at an encrypted
    mount. Raises TeeError if the directory is missing or Gramine was not
    configured for DCAP attestation.
    """

    backend = "gramine"
    simulated = False

    def __init__(self, attestation_dir: str | os.PathLike[str] = "/dev/attestation",
                 state_dir: str | os.PathLike[str] | None = None) -> None:
        self.attestation_dir = Path(attestation_dir)
        self.state_dir = Path(state_dir) if state_dir is not None else None
        try:
            kind = (self.attestation_dir / "attestation_type").read_text().strip()
        except OSError as exc:
            raise TeeError(
                f"cannot read {self.attestation_dir}/attestation_type ({exc.strerror}); "
                "is this process running under gramine-sgx?"
            ) from None
        if kind != "dcap":
            raise TeeError(f"Gramine attestation type is {kind!r}, expected 'dcap'; set "
                           'sgx.remote_attestation = "dcap" in the manifest')
        self._report = self._read_report(bytes(64))
        self.cpu_svn = self._report.cpu_svn

    @property
    def mr_signer(self) -> bytes:
        return self._report.mr_signer

    def bind_identity(self, measured: EnclaveIdentity) -> EnclaveIdentity:
        """Return the hardware identity; the software measurement is replaced.

        Under Gramine, MRENCLAVE covers the manifest and every trusted file,
        including the wasmtee code, so it subsumes the software measurement.
        """
        report = self._report
        if measured.isv_prod_id != report.isv_prod_id or measured.isv_svn != report.isv_svn:
            log.warning("enclave configuration asks for ISVPRODID %d / ISVSVN %d but the "
                        "signed enclave has %d / %d; using the hardware values",
                        measured.isv_prod_id, measured.isv_svn, report.isv_prod_id,
                        report.isv_svn)
        return dataclasses.replace(
            measured,
            mr_enclave=report.mr_enclave,
            mr_signer=report.mr_signer,
            isv_prod_id=report.isv_prod_id,
            isv_svn=report.isv_svn,
            attributes_flags=report.attributes_flags,
            attributes_xfrm=report.attributes_xfrm,
            misc_select=report.misc_select,
        )

    def quote(self, identity: EnclaveIdentity, report_data: bytes) -> bytes:
        """Write REPORTDATA to user_report_data and read the quote Gramine produces."""
        padded = report_data.ljust(64, b"\x00")
        self._write("user_report_data", padded)
        quote = self._read("quote")
        try:
            unverified_quote = parse_quote(quote)
        except QuoteFormatError as exc:
            raise TeeError(f"Gramine returned an invalid quote: {exc}") from None
        if not hmac.compare_digest(unverified_quote.body.report_data, padded):
            raise TeeError("Gramine returned a quote for other report data")
        return quote

    def get_key(self, identity: EnclaveIdentity, request: kdf.KeyRequest) -> bytes:
        """Derive a sealing key from Gramine's EGETKEY key for the request's policy.

        Raises TeeError for a request at an SVN other than the current one.
        """
        if request.isv_svn != identity.isv_svn or request.cpu_svn != self.cpu_svn:
            # TODO: Gramine exposes seal keys only for the current ISVSVN and
            # CPUSVN, so blobs sealed before an SVN upgrade cannot be unsealed.
            raise TeeError(
                f"the gramine backend derives keys only for the current ISVSVN "
                f"{identity.isv_svn} and CPUSVN, not ISVSVN {request.isv_svn}"
            )
        hardware_key = self._read(f"keys/{SEAL_KEY_FILES[request.key_policy]}")
        if len(hardware_key) != 16:
            raise TeeError(f"Gramine seal key is {len(hardware_key)} bytes, expected 16")
        dependencies = kdf.key_dependencies(request, identity.mr_enclave, identity.mr_signer,
                                            identity.isv_prod_id, identity.attributes_flags)
        return kdf.derive_key(hardware_key, dependencies)

    # NOTE: SGX has no usable hardware monotonic counter under Gramine, so the
    # counters live in a file. An encrypted mount stops tampering, but a host
    # that restores an old copy of the file rolls the counters back.
    def read_counter(self, name: str) -> int:
        return self._load_counters().get(name, 0)

    def increment_counter(self, name: str) -> int:
        counters = self._load_counters()
        counters[name] = counters.get(name, 0) + 1
        path = self._counter_path()
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(counters, sort_keys=True))
        os.replace(temporary, path)
        return counters[name]

    def _counter_path(self) -> Path:
        if self.state_dir is None:
            raise TeeError("the gramine backend needs a state directory for sealed state "
                           "counters; pass state_dir on an encrypted mount")
        return self.state_dir / "counters.json"

    def _load_counters(self) -> dict[str, int]:
        path = self._counter_path()
        if not path.exists():
            return {}
        try:
            counters = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise TeeError(f"cannot read monotonic counters from {path}: {exc}") from None
        if not isinstance(counters, dict) or not all(
            isinstance(value, int) for value in counters.values()
        ):
            raise TeeError(f"{path} does not hold a map of counter names to integers")
        return counters

    def _read_report(self, report_data: bytes) -> ReportBody:
        self._write("user_report_data", report_data)
        report = self._read("report")
        if len(report) != SGX_REPORT_SIZE:
            raise TeeError(f"Gramine report is {len(report)} bytes, expected {SGX_REPORT_SIZE}")
        return ReportBody.decode(report)

    def _read(self, name: str) -> bytes:
        try:
            return (self.attestation_dir / name).read_bytes()
        except OSError as exc:
            raise TeeError(f"cannot read {self.attestation_dir / name}: {exc.strerror}") from None

    def _write(self, name: str, data: bytes) -> None:
        try:
            with open(self.attestation_dir / name, "wb") as handle:
                handle.write(data)
        except OSError as exc:
            raise TeeError(f"cannot write {self.attestation_dir / name}: {exc.strerror}") from None
