"""The package sent abroad: a de-identified waybill, encrypted for its recipient alone
(policy 4, OB-4-4).

- :func:`load_recipient_key` accepts a recipient's public key as PEM: X25519, or RSA of at
  least 2048 bits; anything else is :class:`InvalidPublicKey`.
- :func:`waybill_id` is the waybill's pseudonym: a keyed hash of the order and recipient
  (HMAC under this deployment's master key), so the recipient can neither recover the
  order number nor link two recipients' waybills; the same order gives the same recipient
  the same waybill id. Letters only, so it can never look like a phone or ID number.
- :func:`encrypt_package` is hybrid encryption with ``cryptography``:

  * X25519: an ephemeral key pair, ECDH with the recipient's key, HKDF-SHA256 (salt: the
    ephemeral and the recipient's public keys; info ``signature.transfer.package.v1``) to
    a 256-bit AES-GCM key (``alg`` ``X25519-HKDF-SHA256+A256GCM``, ``epk`` the ephemeral
    public key);
  * RSA: a random 256-bit AES-GCM key wrapped with RSA-OAEP (SHA-256, MGF1-SHA-256)
    (``alg`` ``RSA-OAEP-256+A256GCM``, ``ek`` the wrapped key).

  The envelope is JSON: ``v``, ``alg``, ``kid`` (the recipient key's SHA-256 fingerprint,
  base64url: a hex digest may hold digit runs the event guard takes for phone numbers),
  the header (transfer, recipient and waybill ids), ``epk`` or ``ek``, ``nonce`` and
  ``ciphertext`` (base64url, unpadded). Every member but ``ciphertext`` is the AES-GCM
  associated data (canonical JSON), so a header cannot be swapped onto another package.
- :func:`decrypt_package` is the recipient's side (and the tests'): the envelope and the
  private key PEM give back the plaintext.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kit.crypto import FieldCipher

__all__ = [
    "ALG_RSA",
    "ALG_X25519",
    "InvalidPublicKey",
    "KeyType",
    "RecipientKey",
    "decrypt_package",
    "encrypt_package",
    "load_recipient_key",
    "waybill_id",
]

KeyType = Literal["x25519", "rsa"]

PACKAGE_VERSION: Final = 1
ALG_X25519: Final = "X25519-HKDF-SHA256+A256GCM"
ALG_RSA: Final = "RSA-OAEP-256+A256GCM"
MIN_RSA_BITS: Final = 2048
MAX_PEM_CHARS: Final = 16_000
HKDF_INFO: Final = b"signature.transfer.package.v1"
KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
WAYBILL_CONTEXT: Final = "transfer.waybill"
WAYBILL_LETTERS: Final = 24
_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyz"


class InvalidPublicKey(ValueError):
    """Not a usable recipient key: not PEM, or not X25519 / RSA >= 2048 bits."""


@dataclass(frozen=True)
class RecipientKey:
    key_type: KeyType
    public_key: x25519.X25519PublicKey | rsa.RSAPublicKey
    fingerprint: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _canonical(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def load_recipient_key(pem: str) -> RecipientKey:
    """The recipient's public key from PEM (``SubjectPublicKeyInfo``)."""
    if not pem.strip() or len(pem) > MAX_PEM_CHARS:
        raise InvalidPublicKey("the public key must be a PEM SubjectPublicKeyInfo")
    try:
        key = serialization.load_pem_public_key(pem.strip().encode("ascii"))
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise InvalidPublicKey("the public key is not a readable PEM public key") from exc
    key_type: KeyType
    if isinstance(key, x25519.X25519PublicKey):
        key_type = "x25519"
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise InvalidPublicKey(f"an RSA key needs at least {MIN_RSA_BITS} bits")
        key_type = "rsa"
    else:
        raise InvalidPublicKey("the public key must be X25519 or RSA")
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fingerprint = _b64(hashlib.sha256(der).digest())
    return RecipientKey(key_type=key_type, public_key=key, fingerprint=fingerprint)


def waybill_id(cipher: FieldCipher, *, order_id: str, recipient_id: str) -> str:
    """The pseudonymous waybill id of ``order_id`` for ``recipient_id``."""
    digest = bytes.fromhex(
        cipher.blind_index(f"{order_id}|{recipient_id}", context=WAYBILL_CONTEXT)
    )
    return "wb_" + "".join(_ALPHABET[byte % len(_ALPHABET)] for byte in digest[:WAYBILL_LETTERS])


def _x25519_key(shared: bytes, epk: bytes, recipient_public: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=KEY_BYTES, salt=epk + recipient_public, info=HKDF_INFO
    ).derive(shared)


def _raw(public_key: x25519.X25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


_OAEP: Final = padding.OAEP(
    mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None
)


def encrypt_package(
    plaintext: bytes, *, key: RecipientKey, header: Mapping[str, str]
) -> dict[str, str | int]:
    """``plaintext`` encrypted for the holder of ``key``'s private half, as an envelope."""
    envelope: dict[str, str | int] = {"v": PACKAGE_VERSION, "kid": key.fingerprint, **header}
    if isinstance(key.public_key, x25519.X25519PublicKey):
        ephemeral = x25519.X25519PrivateKey.generate()
        epk = _raw(ephemeral.public_key())
        content_key = _x25519_key(ephemeral.exchange(key.public_key), epk, _raw(key.public_key))
        envelope.update(alg=ALG_X25519, epk=_b64(epk))
    else:
        content_key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
        envelope.update(alg=ALG_RSA, ek=_b64(key.public_key.encrypt(content_key, _OAEP)))
    nonce = os.urandom(NONCE_BYTES)
    envelope["nonce"] = _b64(nonce)
    ciphertext = AESGCM(content_key).encrypt(nonce, plaintext, _canonical(envelope))
    envelope["ciphertext"] = _b64(ciphertext)
    return envelope


def decrypt_package(envelope: Mapping[str, Any], private_key_pem: bytes) -> bytes:
    """The plaintext of ``envelope`` (the recipient's side). ``ValueError`` or
    ``cryptography.exceptions.InvalidTag`` if it is not for this key or was altered."""
    private_key = serialization.load_pem_private_key(private_key_pem, password=None)
    associated = {name: value for name, value in envelope.items() if name != "ciphertext"}
    alg = envelope.get("alg")
    if alg == ALG_X25519 and isinstance(private_key, x25519.X25519PrivateKey):
        epk = _unb64(str(envelope["epk"]))
        shared = private_key.exchange(x25519.X25519PublicKey.from_public_bytes(epk))
        content_key = _x25519_key(shared, epk, _raw(private_key.public_key()))
    elif alg == ALG_RSA and isinstance(private_key, rsa.RSAPrivateKey):
        content_key = private_key.decrypt(_unb64(str(envelope["ek"])), _OAEP)
    else:
        raise ValueError("the envelope's algorithm does not fit this private key")
    return AESGCM(content_key).decrypt(
        _unb64(str(envelope["nonce"])),
        _unb64(str(envelope["ciphertext"])),
        _canonical(associated),
    )
