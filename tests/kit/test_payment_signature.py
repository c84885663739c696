"""Signed payment messages (``kit.payment_signature``): WeChat Pay v3's form, RSA-SHA256 and
Ed25519, and everything else a verifier must say no to."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kit.payment_signature import (
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    PrivateKey,
    algorithm_of,
    load_private_key,
    load_public_key,
    new_ed25519_key,
    private_key_pem,
    public_key_pem,
    serial_of,
    sign_headers,
    signed_message,
    verify,
)

BODY = b'{"id":"ntf1","order_id":"ord_1","amount":{"total":"88.00","currency":"CNY"}}'


KEYS: list[tuple[PrivateKey, str]] = [
    (new_ed25519_key(), "Ed25519"),
    (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RSA-SHA256"),
]


def test_the_signed_message_is_timestamp_nonce_and_body_each_on_its_line() -> None:
    assert signed_message("1733390000", "abc", b"{}") == b"1733390000\nabc\n{}\n"


@pytest.mark.parametrize(("key", "algorithm"), KEYS, ids=["Ed25519", "RSA-SHA256"])
def test_a_signature_verifies_with_the_public_key_and_nothing_else(
    key: PrivateKey, algorithm: str
) -> None:
    headers = sign_headers(key, BODY)
    public = load_public_key(public_key_pem(key))
    stamp, nonce, signature = (
        headers[TIMESTAMP_HEADER],
        headers[NONCE_HEADER],
        headers[SIGNATURE_HEADER],
    )
    assert verify(public, stamp, nonce, BODY, signature)
    assert not verify(public, stamp, nonce, BODY.replace(b"88.00", b"0.01"), signature)
    assert not verify(public, str(int(stamp) + 1), nonce, BODY, signature)
    assert not verify(public, stamp, nonce + "x", BODY, signature)
    other = load_public_key(public_key_pem(new_ed25519_key()))
    assert not verify(other, stamp, nonce, BODY, signature)
    assert not verify(public, stamp, nonce, BODY, "not base64!")
    assert not verify(public, stamp, nonce, BODY, base64.b64encode(b"x" * 64).decode())
    assert algorithm_of(public) == algorithm_of(key) == algorithm
    assert serial_of(public) == serial_of(key) == headers["Payment-Serial"]
    assert load_private_key(private_key_pem(key)) is not None


def test_weak_or_other_keys_are_refused() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ValueError, match="2048"):
        load_public_key(public_key_pem(weak))
    curve = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = public_key_pem(curve)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="RSA"):
        load_public_key(pem)
    with pytest.raises(ValueError, match="PEM"):
        load_public_key("-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n")
