"""Measurement: the MRENCLAVE-equivalent of the runtime, and module hashes.

The sim backend has no hardware that measures pages as they are added, so
wasmtee measures its own code. The digest is SHA-256 over every `.py` file of
the wasmtee package in sorted relative path order, each framed with its
length, and then over the canonical CBOR encoding of the enclave
configuration. Two installs
with the same code and configuration produce the same value. Under Gramine
the hardware MRENCLAVE covers the manifest's trusted files instead.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cbor2

from wasmtee.tee.quote import ATTRIBUTE_DEBUG, ATTRIBUTE_INIT, ATTRIBUTE_MODE64BIT

# The wasmtee package directory (this file is wasmtee/tee/measure.py).
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
MEASUREMENT_LABEL = b"wasmtee runtime measurement v1\x00"

# XFRM value of an enclave with x87 and SSE state enabled, the SGX minimum.
DEFAULT_XFRM = 0x3


@dataclass(frozen=True)
class EnclaveConfig:
    """Settings of one enclave that are part of its measurement.

    `isv_prod_id` and `isv_svn` are the product id and security version the
    enclave reports. `tier` selects the execution tier ("auto", "python" or
    "llvm") that runs modules inside the enclave. `debug` sets the DEBUG attribute; the sim backend always
    sets it because its memory is readable by the host.
    """

    isv_prod_id: int = 0
    isv_svn: int = 0
    debug: bool = True
    max_message_size: int = 32 * 1024 * 1024
    tier: str = "auto"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("isv_prod_id", "isv_svn"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFFFF:
                raise ValueError(f"{name} must be an integer in 0..65535, not {value!r}")
        if self.tier not in ("auto", "python", "llvm"):
            raise ValueError(f"tier must be 'auto', 'python' or 'llvm', not {self.tier!r}")
        if not isinstance(self.max_message_size, int) or self.max_message_size < 4096:
            raise ValueError(
                f"max_message_size must be an integer >= 4096, not {self.max_message_size!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "isv_prod_id": self.isv_prod_id,
            "isv_svn": self.isv_svn,
            "debug": self.debug,
            "max_message_size": self.max_message_size,
            "tier": self.tier,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EnclaveConfig:
        if not isinstance(values, dict):
            raise ValueError(f"enclave configuration must be a map, not {type(values).__name__}")
        unknown = set(values) - {"isv_prod_id", "isv_svn", "debug", "max_message_size", "tier",
                                 "extra"}
        if unknown:
            raise ValueError(f"unknown enclave configuration keys: {sorted(unknown)}")
        extra = values.get("extra", {})
        if not isinstance(extra, dict):
            raise ValueError("enclave configuration 'extra' must be a map")
        debug = values.get("debug", True)
        if not isinstance(debug, bool):
            raise ValueError(f"enclave configuration 'debug' must be a boolean, not {debug!r}")
        return cls(
            isv_prod_id=values.get("isv_prod_id", 0),
            isv_svn=values.get("isv_svn", 0),
            debug=debug,
            max_message_size=values.get("max_message_size", 32 * 1024 * 1024),
            tier=values.get("tier", "auto"),
            extra=extra,
        )


@dataclass(frozen=True)
class EnclaveIdentity:
    """The identity fields an enclave's report carries."""

    mr_enclave: bytes
    mr_signer: bytes
    isv_prod_id: int
    isv_svn: int
    attributes_flags: int
    attributes_xfrm: int = DEFAULT_XFRM
    misc_select: int = 0

    @property
    def debug(self) -> bool:
        return bool(self.attributes_flags & ATTRIBUTE_DEBUG)


def runtime_files(root: Path | None = None) -> list[Path]:
    """Return the wasmtee package's `.py` files in the order they are measured."""
    package_root = root or PACKAGE_ROOT
    files = [path for path in package_root.rglob("*.py") if "__pycache__" not in path.parts]
    return sorted(files, key=lambda path: path.relative_to(package_root).as_posix())


def measure_runtime(config: EnclaveConfig, root: Path | None = None) -> bytes:
    """Compute the 32-byte MRENCLAVE-equivalent of this runtime and configuration."""
    package_root = root or PACKAGE_ROOT
    digest = hashlib.sha256(MEASUREMENT_LABEL)
    for path in runtime_files(package_root):
        name = path.relative_to(package_root).as_posix().encode()
        content = path.read_bytes()
        digest.update(struct.pack("<I", len(name)) + name)
        digest.update(struct.pack("<Q", len(content)) + content)
    config_bytes = cbor2.dumps(config.to_dict(), canonical=True)
    digest.update(b"config\x00" + struct.pack("<Q", len(config_bytes)) + config_bytes)
    return digest.digest()


def measure_module(module_bytes: bytes) -> bytes:
    """Return the SHA-256 of a WebAssembly module's bytes, as bound into evidence."""
    return hashlib.sha256(module_bytes).digest()


def signer_measurement(signer_public_key_der: bytes) -> bytes:
    """Return the MRSIGNER-equivalent: SHA-256 of the signer's public key (DER)."""
    return hashlib.sha256(signer_public_key_der).digest()


def enclave_attributes(config: EnclaveConfig) -> int:
    flags = ATTRIBUTE_INIT | ATTRIBUTE_MODE64BIT
    if config.debug:
        flags |= ATTRIBUTE_DEBUG
    return flags
