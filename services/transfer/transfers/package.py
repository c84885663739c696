"""The package sent abroad: a de-identified waybill, encrypted for its recipient alone
(policy 4, OB-4-4), as a standard JWE (RFC 7516) any JOSE library opens.

- :func:`load_recipient_key` accepts a recipient's public key as PEM: X25519, or RSA of at
  least 2048 bits; anything else is :class:`InvalidPublicKey`.
- :func:`waybill_id` is the waybill's pseudonym: a keyed hash of the order and recipient
  (HMAC under this deployment's master key), so the recipient can neither recover the
  order number nor link two recipients' waybills; the same order gives the same recipient
  the same waybill id. Letters only, so it can never look like a phone or ID number.
- :func:`encrypt_package` makes a JWE in compact serialization with joserfc: ``enc``
  ``A256GCM``; ``alg`` ``ECDH-ES+A256KW`` for an X25519 key (RFC 8037, the ephemeral key in
  ``epk``) or ``RSA-OAEP-256`` for an RSA key. The protected header also holds ``kid``
  (the recipient key's SHA-256 fingerprint of its DER SubjectPublicKeyInfo, base64url),
  ``cty`` (``application/json``) and the transfer, recipient and waybill ids; being the
  AES-GCM associated data, none of it can be swapped onto another package.
- :func:`decrypt_package` is the recipient's side with joserfc (and the tests'); README
  shows the same with jwcrypto, a second implementation (``tests/services/transfer/
  test_package_jwe.py`` runs it).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa, x25519
from joserfc import jwe
from joserfc.jwe import JWERegistry
from joserfc.jwk import OKPKey, RSAKey
from joserfc.registry import HeaderParameter

from kit.crypto import FieldCipher

__all__ = [
    "ALG_RSA",
    "ALG_X25519",
    "ENC",
    "MEDIA_TYPE",
    "InvalidPublicKey",
    "KeyType",
    "RecipientKey",
    "decrypt_package",
    "encrypt_package",
    "load_recipient_key",
    "protected_header",
    "waybill_id",
]

KeyType = Literal["x25519", "rsa"]

ALG_X25519: Final = "ECDH-ES+A256KW"
ALG_RSA: Final = "RSA-OAEP-256"
ENC: Final = "A256GCM"
#: How an HTTPS recipient receives it: the compact serialization (RFC 7516 section 9).
MEDIA_TYPE: Final = "application/jose"
HEADER_IDS: Final = ("transfer_id", "recipient_id", "waybill_id")
MIN_RSA_BITS: Final = 2048
MAX_PEM_CHARS: Final = 16_000
WAYBILL_CONTEXT: Final = "transfer.waybill"
WAYBILL_LETTERS: Final = 24
_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyz"
#: Only these algorithms, and the package's own header members, are accepted.
_REGISTRY: Final = JWERegistry(
    header_registry={name: HeaderParameter(name, "str", True) for name in HEADER_IDS},
    algorithms=[ALG_X25519, ALG_RSA, ENC],
)


class InvalidPublicKey(ValueError):
    """Not a usable recipient key: not PEM, or not X25519 / RSA >= 2048 bits."""


@dataclass(frozen=True)
class RecipientKey:
    key_type: KeyType
    public_key: x25519.X25519PublicKey | rsa.RSAPublicKey
    fingerprint: str
    jwk: OKPKey | RSAKey


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_recipient_key(pem: str) -> RecipientKey:
    """The recipient's public key from PEM (``SubjectPublicKeyInfo``)."""
    if not pem.strip() or len(pem) > MAX_PEM_CHARS:
        raise InvalidPublicKey("the public key must be a PEM SubjectPublicKeyInfo")
    try:
        key = serialization.load_pem_public_key(pem.strip().encode("ascii"))
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise InvalidPublicKey("the public key is not a readable PEM public key") from exc
    key_type: KeyType
    jwk: OKPKey | RSAKey
    if isinstance(key, x25519.X25519PublicKey):
        key_type, jwk = "x25519", OKPKey.import_key(key)
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise InvalidPublicKey(f"an RSA key needs at least {MIN_RSA_BITS} bits")
        key_type, jwk = "rsa", RSAKey.import_key(key)
    else:
        raise InvalidPublicKey("the public key must be X25519 or RSA")
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fingerprint = _b64(hashlib.sha256(der).digest())
    return RecipientKey(key_type=key_type, public_key=key, fingerprint=fingerprint, jwk=jwk)


def waybill_id(cipher: FieldCipher, *, order_id: str, recipient_id: str) -> str:
    """The pseudonymous waybill id of ``order_id`` for ``recipient_id``."""
    digest = bytes.fromhex(
        cipher.blind_index(f"{order_id}|{recipient_id}", context=WAYBILL_CONTEXT)
    )
    return "wb_" + "".join(_ALPHABET[byte % len(_ALPHABET)] for byte in digest[:WAYBILL_LETTERS])


def encrypt_package(plaintext: bytes, *, key: RecipientKey, header: Mapping[str, str]) -> str:
    """``plaintext`` encrypted for the holder of ``key``'s private half: a compact JWE
    whose protected header names the key and carries ``header`` (the package's ids)."""
    protected: dict[str, Any] = {
        "alg": ALG_X25519 if key.key_type == "x25519" else ALG_RSA,
        "enc": ENC,
        "kid": key.fingerprint,
        "cty": "application/json",
        **{name: header[name] for name in HEADER_IDS},
    }
    return jwe.encrypt_compact(protected, plaintext, key.jwk, registry=_REGISTRY)


def protected_header(package: str) -> dict[str, Any]:
    """The package's protected header, read without decrypting (it is not secret)."""
    header: dict[str, Any] = json.loads(_unb64(package.split(".", 1)[0]))
    return header


def decrypt_package(package: str, private_key_pem: bytes) -> bytes:
    """The plaintext of ``package`` (the recipient's side). ``joserfc.errors.JoseError``
    (or ``ValueError``) if it is not for this key or was altered."""
    private_key = serialization.load_pem_private_key(private_key_pem, password=None)
    key: OKPKey | RSAKey
    if isinstance(private_key, x25519.X25519PrivateKey):
        key = OKPKey.import_key(private_key)
    elif isinstance(private_key, rsa.RSAPrivateKey):
        key = RSAKey.import_key(private_key)
    else:
        raise ValueError("not an X25519 or RSA private key")
    return jwe.decrypt_compact(package, key, registry=_REGISTRY).plaintext or b""
