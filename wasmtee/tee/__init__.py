"""Trusted execution for wasmtee: enclaves, attestation, sealing and RA-TLS.

Most callers need only the names exported here:

    with Enclave(backend="sim") as enclave:
        evidence = enclave.get_evidence(b"user data", nonce=nonce)
    claims = verify_evidence(evidence, Policy(mr_enclave=expected, nonce=nonce), roots)

The low-level modules are `quote` (the DCAP v3 byte layout), `kdf` (the
EGETKEY-like key derivation), `evidence`, `protocol` (the ECALL wire
format), and the backends `sim` and `gramine`. See docs/security.md for
what each backend protects.
"""

from wasmtee.tee.attester import Attester
from wasmtee.tee.enclave import Enclave, EnclaveCallError, LoadedModule, WasiResult
from wasmtee.tee.errors import (
    EnclaveError,
    ProtocolError,
    QuoteFormatError,
    RollbackError,
    SealingError,
    TeeError,
    VerificationError,
)
from wasmtee.tee.measure import EnclaveConfig, EnclaveIdentity, measure_module, measure_runtime
from wasmtee.tee.sealing import Sealer, SealPolicy
from wasmtee.tee.sim import SimPlatform
from wasmtee.tee.verify import Claims, Policy, verify_evidence, verify_quote

__all__ = [
    "Attester",
    "Claims",
    "Enclave",
    "EnclaveCallError",
    "EnclaveConfig",
    "EnclaveError",
    "EnclaveIdentity",
    "LoadedModule",
    "Policy",
    "ProtocolError",
    "QuoteFormatError",
    "RollbackError",
    "SealPolicy",
    "Sealer",
    "SealingError",
    "SimPlatform",
    "TeeError",
    "VerificationError",
    "WasiResult",
    "measure_module",
    "measure_runtime",
    "verify_evidence",
    "verify_quote",
]
