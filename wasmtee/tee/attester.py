"""The enclave side of attestation: quotes and evidence for one enclave identity."""

from __future__ import annotations

import time
from typing import Any, Protocol

from wasmtee.tee.evidence import CLAIM_ISSUED_AT, claims_report_data, encode_evidence
from wasmtee.tee.measure import EnclaveIdentity


class QuotingPlatform(Protocol):
    """A backend that signs quotes (the sim platform or Gramine's /dev/attestation)."""

    def quote(self, identity: EnclaveIdentity, report_data: bytes) -> bytes: ...


class Attester:
    """Produce quotes and evidence for the enclave with `identity`.

    `clock` returns Unix seconds for the "iat" claim. In an enclave it is
    the host's clock, so a verifier's freshness check is only as good as
    the host's honesty about time.
    """

    def __init__(self, platform: QuotingPlatform, identity: EnclaveIdentity,
                 clock: Any = time.time) -> None:
        self.platform = platform
        self.identity = identity
        self._clock = clock

    def quote(self, report_data: bytes) -> bytes:
        """Return a quote whose REPORTDATA is `report_data` padded to 64 bytes."""
        if not isinstance(report_data, (bytes, bytearray)):
            raise TypeError(f"report data must be bytes, not {type(report_data).__name__}")
        if len(report_data) > 64:
            raise ValueError(f"report data is {len(report_data)} bytes, max 64")
        return self.platform.quote(self.identity, bytes(report_data))

    def evidence(self, claims: dict[str, Any]) -> bytes:
        """Return CBOR `[quote, claims]`, adding an "iat" claim if `claims` has none."""
        claims = dict(claims)
        claims.setdefault(CLAIM_ISSUED_AT, int(self._clock()))
        return encode_evidence(self.quote(claims_report_data(claims)), claims)
