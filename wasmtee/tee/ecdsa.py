"""ECDSA P-256 in the raw forms SGX quotes use: r||s signatures and x||y keys."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

COORDINATE_SIZE = 32


def sign_raw(private_key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """Sign `data` with ECDSA-SHA256 and return the 64-byte r||s form."""
    der = private_key.sign(data, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return r.to_bytes(COORDINATE_SIZE, "big") + s.to_bytes(COORDINATE_SIZE, "big")


def verify_raw(public_key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> bool:
    """Return whether `signature` (r||s) is a valid ECDSA-SHA256 signature of `data`."""
    if len(signature) != 2 * COORDINATE_SIZE:
        return False
    r = int.from_bytes(signature[:COORDINATE_SIZE], "big")
    s = int.from_bytes(signature[COORDINATE_SIZE:], "big")
    if r == 0 or s == 0:
        return False
    try:
        public_key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def public_key_to_raw(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """Return the 64-byte x||y form of a P-256 public key."""
    point = public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return point[1:]


def public_key_from_raw(raw: bytes) -> ec.EllipticCurvePublicKey:
    """Load a P-256 public key from x||y; raise ValueError if it is not on the curve."""
    if len(raw) != 2 * COORDINATE_SIZE:
        raise ValueError(f"raw P-256 public key must be 64 bytes, not {len(raw)}")
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + raw)
