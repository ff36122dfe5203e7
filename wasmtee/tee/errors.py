"""Exceptions of the trusted-execution layer.

Local callers and logs get errors that name the failed check. Code that
answers a remote peer must send only `VerificationError.public_message`,
so that the answer gives an attacker no oracle.
"""

from __future__ import annotations

from wasmtee.errors import WasmteeError


class TeeError(WasmteeError):
    """Base class of the trusted-execution errors."""


class QuoteFormatError(TeeError):
    """A quote, report or evidence blob whose bytes do not follow the layout.

    `offset` is the byte offset of the offending field, or None.
    """

    def __init__(self, message: str, offset: int | None = None) -> None:
        self.message = message
        self.offset = offset
        if offset is not None:
            message = f"{message} (at byte 0x{offset:x})"
        super().__init__(message)


class VerificationError(TeeError):
    """Evidence that failed one check of quote verification or of the policy.

    `check` is a stable name of the failed check (for example
    "quote_signature" or "mr_enclave"), for logs and operators. Never send
    the message or the check to a remote peer; send `public_message`.
    """

    public_message = "attestation failed"

    def __init__(self, check: str, detail: str) -> None:
        self.check = check
        self.detail = detail
        super().__init__(f"attestation check {check!r} failed: {detail}")


class SealingError(TeeError):
    """A sealed blob that is malformed, tampered with or bound to another identity."""


class RollbackError(SealingError):
    """A sealed blob whose version is older than the monotonic counter."""


class EnclaveError(TeeError):
    """A failure reported by the enclave, or a broken enclave process."""


class ProtocolError(EnclaveError):
    """An ECALL or OCALL message that is malformed, oversized, replayed or reordered."""
