"""Signed payment messages, the way Chinese payment providers sign them (WeChat Pay v3's
shape, shared by Alipay and UnionPay): the signature covers ``timestamp\\nnonce\\nbody\\n``
and travels in headers beside the body. One home for both directions: the shop's requests
to a provider and the provider's notifications to the shop (and the stand-in provider).

- Keys are RSA (>= 2048 bits, RSA-SHA256 with PKCS#1 v1.5, as WeChat Pay v3) or Ed25519,
  exchanged as PEM (SubjectPublicKeyInfo / PKCS#8). The algorithm follows from the
  registered key, never from the message: there is no algorithm header to confuse.
- A key's *serial* is the first 32 hex digits of the SHA-256 of its public key (DER): the
  message names which registered key signed it, so keys can be rotated.
- :func:`sign_headers` makes the four headers for a body; :func:`verify` checks a
  signature and says only yes or no (every malformed input is a no).

Freshness (the timestamp window) and replay (nonces, notification ids) are the
receiver's to check: they need its clock and its storage.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import time
from typing import Final, Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

__all__ = [
    "NONCE_HEADER",
    "SERIAL_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Algorithm",
    "PrivateKey",
    "PublicKey",
    "algorithm_of",
    "load_private_key",
    "load_public_key",
    "new_ed25519_key",
    "private_key_pem",
    "public_key_pem",
    "serial_of",
    "sign",
    "sign_headers",
    "signed_message",
    "verify",
]

TIMESTAMP_HEADER: Final = "Payment-Timestamp"
NONCE_HEADER: Final = "Payment-Nonce"
SIGNATURE_HEADER: Final = "Payment-Signature"
SERIAL_HEADER: Final = "Payment-Serial"
MIN_RSA_BITS: Final = 2048
MAX_NONCE_LENGTH: Final = 64

Algorithm = Literal["RSA-SHA256", "Ed25519"]
PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey
PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def load_public_key(pem: str) -> PublicKey:
    """An RSA (>= 2048 bits) or Ed25519 public key from PEM; ``ValueError`` otherwise."""
    try:
        key = serialization.load_pem_public_key(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError, UnsupportedAlgorithm) as exc:
        raise ValueError("not a PEM public key") from exc
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RSA keys need at least {MIN_RSA_BITS} bits")
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise ValueError("only RSA (RSA-SHA256) and Ed25519 keys are accepted")


def load_private_key(pem: str) -> PrivateKey:
    """An RSA or Ed25519 private key from unencrypted PKCS#8 PEM; ``ValueError`` otherwise."""
    try:
        key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeEncodeError, UnsupportedAlgorithm) as exc:
        raise ValueError("not an unencrypted PEM private key") from exc
    if isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        return key
    raise ValueError("only RSA and Ed25519 keys are accepted")


def new_ed25519_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def private_key_pem(key: PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def public_key_pem(key: PublicKey | PrivateKey) -> str:
    public = (
        key.public_key() if isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) else key
    )
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def algorithm_of(key: PublicKey | PrivateKey) -> Algorithm:
    return (
        "Ed25519"
        if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey)
        else "RSA-SHA256"
    )


def serial_of(key: PublicKey | PrivateKey) -> str:
    """The key's serial: 32 hex digits of the SHA-256 of its public key (DER)."""
    public = (
        key.public_key() if isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) else key
    )
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()[:32]


def signed_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """What is signed: ``timestamp\\nnonce\\nbody\\n`` (WeChat Pay v3's notification form)."""
    return timestamp.encode("ascii") + b"\n" + nonce.encode("ascii") + b"\n" + body + b"\n"


def sign(key: PrivateKey, timestamp: str, nonce: str, body: bytes) -> str:
    """The base64 signature of the message by ``key``."""
    message = signed_message(timestamp, nonce, body)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.sign(message)
    else:
        raw = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode("ascii")


def sign_headers(
    key: PrivateKey, body: bytes, *, timestamp: int | None = None, nonce: str | None = None
) -> dict[str, str]:
    """The four headers that carry a signature of ``body`` (a fresh nonce and now by default)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    once = nonce or secrets.token_hex(16)
    return {
        TIMESTAMP_HEADER: stamp,
        NONCE_HEADER: once,
        SIGNATURE_HEADER: sign(key, stamp, once, body),
        SERIAL_HEADER: serial_of(key),
    }


def verify(key: PublicKey, timestamp: str, nonce: str, body: bytes, signature: str) -> bool:
    """Whether ``signature`` (base64) signs the message under ``key``; malformed is False."""
    if not timestamp.isascii() or not nonce.isascii() or len(nonce) > MAX_NONCE_LENGTH:
        return False
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    message = signed_message(timestamp, nonce, body)
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(raw, message)
        else:
            key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True
