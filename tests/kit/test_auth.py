"""Access tokens: what verifies, and every known way to forge one is refused with a 401.

Tokens for attacks are built by hand (base64url + cryptography), often *correctly signed*
by the real key, so a refusal proves the check itself and not a broken signature.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Annotated, Any

import httpx
import jose.jws
import jose.jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from fastapi import FastAPI
from jose.exceptions import JWSError, JWTClaimsError

from kit.auth import (
    ACCESS_TOKEN_TYPE,
    SERVICE_SCOPES,
    STAFF_ROLE_SCOPES,
    USER_SCOPES,
    InvalidToken,
    JwksClient,
    KeySet,
    Principal,
    Scope,
    SigningKey,
    TokenVerifier,
    generate_signing_key,
    issue_token,
    jwk_thumbprint,
    require,
    service_purpose,
    static_key_source,
    verify_token,
)
from kit.errors import PROBLEM_JSON, ServiceUnavailable, install_problem_handlers

ISSUER = "https://identity.signature.test"
AUDIENCE = "signature-suite"
NOW = 1_800_000_000.0


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def es_key() -> SigningKey:
    return generate_signing_key("ES256")


@pytest.fixture(scope="module")
def rs_key() -> SigningKey:
    return generate_signing_key("RS256")


@pytest.fixture(scope="module")
def keys(es_key: SigningKey, rs_key: SigningKey) -> KeySet:
    return KeySet.of(es_key, rs_key)


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "acct_123",
        "jti": "tok_1",
        "iat": int(NOW),
        "exp": int(NOW) + 300,
        "kind": "user",
        "client_type": "app",
        "scope": "orders:read account:read",
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64json(value: Any) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def header_for(key: SigningKey, **overrides: Any) -> dict[str, Any]:
    header: dict[str, Any] = {"alg": key.alg, "kid": key.kid, "typ": ACCESS_TOKEN_TYPE}
    header.update(overrides)
    return {name: value for name, value in header.items() if value is not None}


def sign_by_hand(header: dict[str, Any], payload: dict[str, Any], key: SigningKey) -> str:
    """A token signed with the real private key, whatever the header says."""
    signing_input = f"{b64json(header)}.{b64json(payload)}"
    private = serialization.load_pem_private_key(key.private_pem, password=None)
    if isinstance(private, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(private.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        assert isinstance(private, rsa.RSAPrivateKey)
        signature = private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"


def verify(token: str, keys: KeySet, **kwargs: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE, "now": NOW}
    options.update(kwargs)
    return verify_token(token, keys=keys, **options)


def refused(token: str, keys: KeySet, reason: str, **kwargs: Any) -> InvalidToken:
    with pytest.raises(InvalidToken) as info:
        verify(token, keys, **kwargs)
    error = info.value
    assert reason in error.detail
    assert error.status == 401 and error.code == "invalid-token"
    assert error.headers == {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    for part in token.split("."):
        if len(part) > 8:
            assert part not in error.detail
    return error


# --------------------------------------------------------------------------- what verifies


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_valid_tokens_verify_and_give_a_principal(
    alg: str, es_key: SigningKey, rs_key: SigningKey, keys: KeySet
) -> None:
    key = es_key if alg == "ES256" else rs_key
    token = issue_token(
        claims(verified=True, purposes=["delivery"], scope="orders:read orders:write"), key=key
    )
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": alg, "kid": key.kid, "typ": "at+jwt"}

    principal = Principal.from_claims(verify(token, keys))
    assert principal.subject == "acct_123" and principal.kind == "user"
    assert principal.has(Scope.ORDERS_WRITE) and not principal.has(Scope.ACCOUNT_READ)
    assert principal.client_type == "app" and principal.verified and not principal.minor
    assert principal.token_id == "tok_1" and principal.expires_at == int(NOW) + 300
    with pytest.raises(ValueError):
        principal.subject = "someone_else"  # type: ignore[misc]


def test_hand_signed_token_verifies_so_refusals_below_are_about_the_header(
    es_key: SigningKey, rs_key: SigningKey, keys: KeySet
) -> None:
    for key in (es_key, rs_key):
        assert verify(sign_by_hand(header_for(key), claims(), key), keys)["sub"] == "acct_123"


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt"])
def test_access_token_type_is_compared_case_insensitively(
    typ: str, es_key: SigningKey, keys: KeySet
) -> None:
    assert verify(sign_by_hand(header_for(es_key, typ=typ), claims(), es_key), keys)


def test_audience_list_containing_ours_and_leeway_are_accepted(
    es_key: SigningKey, keys: KeySet
) -> None:
    token = issue_token(claims(aud=["orders", AUDIENCE]), key=es_key)
    assert verify(token, keys)["aud"] == ["orders", AUDIENCE]
    late = issue_token(claims(exp=int(NOW) - 5), key=es_key)
    assert verify(late, keys, leeway_s=10)
    refused(late, keys, "token expired")


def test_key_ids_are_rfc7638_thumbprints() -> None:
    # RFC 7638 section 3.1 example.
    rfc_key = {
        "kty": "RSA",
        "e": "AQAB",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6t"
        "Soc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YG"
        "jQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-"
        "bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    }
    assert jwk_thumbprint(rfc_key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    key = generate_signing_key()
    assert key.kid == jwk_thumbprint(key.public_jwk())
    assert key.kid != generate_signing_key().kid
    assert "PRIVATE" not in repr(key)
    jwk = key.public_jwk()
    assert jwk["use"] == "sig" and jwk["alg"] == "ES256" and "d" not in jwk


@pytest.mark.obligation("OB-4-7")
def test_issuing_refuses_algorithms_outside_the_allow_list(es_key: SigningKey) -> None:
    for alg in ("HS256", "none", "ES384"):
        with pytest.raises(ValueError):
            SigningKey(kid=es_key.kid, alg=alg, private_pem=es_key.private_pem)
        with pytest.raises(ValueError):
            generate_signing_key(alg)
    with pytest.raises(ValueError):  # an EC key cannot pose as RS256
        SigningKey(kid="k1", alg="RS256", private_pem=es_key.private_pem)


# --------------------------------------------------------------------------- algorithm attacks


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", ["", "c2lnbmF0dXJl"])
@pytest.mark.obligation("OB-4-7")
def test_alg_none_in_any_spelling_is_refused(
    alg: str, signature: str, es_key: SigningKey, keys: KeySet
) -> None:
    token = f"{b64json(header_for(es_key, alg=alg))}.{b64json(claims())}.{signature}"
    refused(token, keys, "algorithm not allowed")


@pytest.mark.parametrize("secret_form", ["pem", "jwk"])
@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
@pytest.mark.obligation("OB-4-7")
def test_hmac_signed_with_the_public_key_is_refused(
    secret_form: str, alg: str, es_key: SigningKey, rs_key: SigningKey, keys: KeySet
) -> None:
    for key in (es_key, rs_key):
        private = serialization.load_pem_private_key(key.private_pem, password=None)
        assert isinstance(private, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
        public_pem = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        secret = public_pem if secret_form == "pem" else json.dumps(key.public_jwk()).encode()
        signing_input = f"{b64json(header_for(key, alg=alg))}.{b64json(claims())}"
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
        mac = hmac.new(secret, signing_input.encode(), digest[alg]).digest()
        refused(f"{signing_input}.{b64(mac)}", keys, "algorithm not allowed")


@pytest.mark.parametrize("alg", ["ES384", "RS512", "PS256", "EdDSA", "", None, 256, ["ES256"]])
@pytest.mark.obligation("OB-4-7")
def test_other_algorithms_are_refused(alg: Any, es_key: SigningKey, keys: KeySet) -> None:
    header = {"alg": alg, "kid": es_key.kid, "typ": "at+jwt"}
    refused(sign_by_hand(header, claims(), es_key), keys, "algorithm not allowed")


@pytest.mark.obligation("OB-4-7")
def test_es256_header_over_an_rsa_key_is_refused(
    es_key: SigningKey, rs_key: SigningKey, keys: KeySet
) -> None:
    es_over_rsa = sign_by_hand(header_for(rs_key, alg="ES256"), claims(), es_key)
    refused(es_over_rsa, keys, "key does not match algorithm")
    rs_over_ec = sign_by_hand(header_for(es_key, alg="RS256"), claims(), rs_key)
    refused(rs_over_ec, keys, "key does not match algorithm")


# --------------------------------------------------------------------------- key attacks


@pytest.mark.obligation("OB-4-7")
def test_token_signed_by_an_unknown_key_is_refused(keys: KeySet) -> None:
    stranger = generate_signing_key()
    refused(issue_token(claims(), key=stranger), keys, "unknown signing key")


@pytest.mark.obligation("OB-4-7")
def test_token_signed_by_another_key_under_a_known_kid_is_refused(
    es_key: SigningKey, keys: KeySet
) -> None:
    stranger = generate_signing_key()
    refused(sign_by_hand(header_for(es_key), claims(), stranger), keys, "invalid signature")


@pytest.mark.parametrize(
    "kid",
    [
        "../../../../../dev/null",
        "/etc/passwd",
        "' OR '1'='1",
        "x'; DROP TABLE keys; --",
        "k" * 129,
        "",
        "kid\u0000",
        "kid with spaces",
        42,
        ["a"],
        None,
    ],
)
@pytest.mark.obligation("OB-4-7")
def test_malicious_or_missing_kid_is_refused(kid: Any, es_key: SigningKey, keys: KeySet) -> None:
    header = header_for(es_key)
    header["kid"] = kid
    if kid is None:
        del header["kid"]
    refused(sign_by_hand(header, claims(), es_key), keys, "invalid key id")


@pytest.mark.parametrize("name", ["jku", "x5u", "jwk", "x5c", "crit"])
@pytest.mark.obligation("OB-4-7")
def test_key_pointing_header_parameters_are_refused(
    name: str, es_key: SigningKey, keys: KeySet
) -> None:
    attacker = generate_signing_key()
    value: Any = {
        "jku": "https://attacker.example/jwks.json",
        "x5u": "https://attacker.example/cert.pem",
        "jwk": attacker.public_jwk(),
        "x5c": ["MIIBszCCAVmgAwIBAgIUQ"],
        "crit": ["exp"],
    }[name]
    # Signed by the real key: the header parameter alone must refuse it.
    token = sign_by_hand(header_for(es_key, **{name: value}), claims(), es_key)
    refused(token, keys, f"'{name}' not allowed")
    # And the classic: embed the attacker's key and sign with it.
    forged = sign_by_hand(header_for(attacker, **{name: value}), claims(), attacker)
    with pytest.raises(InvalidToken):
        verify(forged, keys)


def test_key_set_keeps_only_usable_signature_keys(es_key: SigningKey, rs_key: SigningKey) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    weak_numbers = weak.public_numbers()
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key().public_numbers()
    es_jwk, rs_jwk = es_key.public_jwk(), rs_key.public_jwk()
    jwks = {
        "keys": [
            es_jwk,
            {**rs_jwk, "d": "cHJpdmF0ZQ"},  # private member: dropped, key kept
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0", "alg": "HS256"},
            {**es_jwk, "kid": "enc-key", "use": "enc"},
            {**es_jwk, "kid": "wrong-alg", "alg": "RS256"},
            {**es_jwk, "kid": "es384", "alg": "ES384"},
            {
                "kty": "RSA",
                "kid": "weak",
                "n": b64(weak_numbers.n.to_bytes(128, "big")),
                "e": "AQAB",
            },
            {
                "kty": "EC",
                "kid": "p384",
                "crv": "P-384",
                "x": b64(p384.x.to_bytes(48, "big")),
                "y": b64(p384.y.to_bytes(48, "big")),
            },
            {**es_jwk, "kid": "off-curve", "y": es_jwk["x"]},
            {**es_jwk, "kid": "../escape"},
            {**es_jwk, "kid": "twice"},
            {**rs_jwk, "kid": "twice"},
            "not a key",
        ]
    }
    key_set = KeySet(jwks)
    assert key_set.kids == {es_key.kid, rs_key.kid}
    rs_public = key_set.get(rs_key.kid)
    assert rs_public is not None and "d" not in rs_public
    assert key_set.get("hmac") is None
    assert KeySet(key_set.to_jwks()).kids == key_set.kids
    with pytest.raises(ValueError):
        KeySet({"not": "a jwks"})


# --------------------------------------------------------------------------- claims


@pytest.mark.obligation("OB-4-7")
def test_expired_token_is_refused(es_key: SigningKey, keys: KeySet) -> None:
    refused(issue_token(claims(exp=int(NOW) - 1), key=es_key), keys, "token expired")
    refused(issue_token(claims(exp=int(NOW)), key=es_key), keys, "token expired")


@pytest.mark.obligation("OB-4-7")
def test_not_yet_valid_token_is_refused(es_key: SigningKey, keys: KeySet) -> None:
    refused(issue_token(claims(nbf=int(NOW) + 60), key=es_key), keys, "not yet valid")
    assert verify(issue_token(claims(nbf=int(NOW)), key=es_key), keys)


@pytest.mark.obligation("OB-4-7")
def test_token_issued_in_the_future_is_refused(es_key: SigningKey, keys: KeySet) -> None:
    refused(issue_token(claims(iat=int(NOW) + 60), key=es_key), keys, "issued in the future")


@pytest.mark.obligation("OB-4-7")
def test_wrong_issuer_is_refused(es_key: SigningKey, keys: KeySet) -> None:
    refused(issue_token(claims(iss="https://evil.example"), key=es_key), keys, "wrong issuer")
    refused(issue_token(claims(iss=[ISSUER]), key=es_key), keys, "wrong issuer")


@pytest.mark.obligation("OB-4-7")
def test_wrong_audience_is_refused(es_key: SigningKey, keys: KeySet) -> None:
    refused(issue_token(claims(aud="other-suite"), key=es_key), keys, "wrong audience")
    refused(issue_token(claims(aud=["a", "b"]), key=es_key), keys, "wrong audience")


@pytest.mark.parametrize("name", ["exp", "jti", "iat", "sub", "iss", "aud"])
@pytest.mark.obligation("OB-4-7")
def test_token_missing_a_required_claim_is_refused(
    name: str, es_key: SigningKey, keys: KeySet
) -> None:
    refused(issue_token(claims(**{name: None}), key=es_key), keys, f"missing claim: {name}")


@pytest.mark.parametrize(
    ("name", "value"),
    [("exp", "1900000000"), ("exp", True), ("iat", "now"), ("nbf", [1]), ("jti", 7), ("sub", 1)],
)
@pytest.mark.obligation("OB-4-7")
def test_token_with_a_malformed_claim_is_refused(
    name: str, value: Any, es_key: SigningKey, keys: KeySet
) -> None:
    with pytest.raises(InvalidToken):
        verify(issue_token(claims(**{name: value}), key=es_key), keys)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"aud": "other-suite"}, "wrong audience"),
        ({"iss": "https://elsewhere.test"}, "wrong issuer"),
        ({"sub": None}, "missing claim: sub"),
        ({"sub": 1}, "invalid claim: sub"),
        ({"jti": ""}, "invalid claim: jti"),
        ({"exp": int(NOW) - 1}, "token expired"),
    ],
)
def test_reasons_come_from_the_kits_checks_not_python_joses_messages(
    overrides: dict[str, Any],
    reason: str,
    es_key: SigningKey,
    keys: KeySet,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """python-jose rewording (or dropping) its error messages changes no reason: the kit
    names each failure by its own check. Every python-jose claim check here says the same
    meaningless thing, and a bad signature is reworded too."""

    def reworded_claims(*args: Any, **kwargs: Any) -> None:
        raise JWTClaimsError("something about the claims")

    original = jose.jws._verify_signature

    def reworded_signature(*args: Any, **kwargs: Any) -> None:
        try:
            original(*args, **kwargs)
        except JWSError:
            raise JWSError("something about the signature") from None

    monkeypatch.setattr(jose.jwt, "_validate_claims", reworded_claims)
    monkeypatch.setattr(jose.jws, "_verify_signature", reworded_signature)
    refused(issue_token(claims(**overrides), key=es_key), keys, reason)
    stranger = generate_signing_key()
    refused(sign_by_hand(header_for(es_key), claims(), stranger), keys, "invalid signature")


@pytest.mark.obligation("OB-4-7")
def test_tampered_payload_is_refused(es_key: SigningKey, rs_key: SigningKey, keys: KeySet) -> None:
    for key in (es_key, rs_key):
        header, _, signature = issue_token(claims(), key=key).split(".")
        escalated = b64json(claims(sub="acct_999", scope="orders:read orders:write"))
        refused(f"{header}.{escalated}.{signature}", keys, "invalid signature")


# --------------------------------------------------------------------------- shape


@pytest.mark.obligation("OB-4-7")
def test_oversized_token_is_refused(es_key: SigningKey, keys: KeySet) -> None:
    big = issue_token(claims(padding="x" * 9000), key=es_key)
    refused(big, keys, "token too long")
    refused("a." * 5_000_000 + "a", keys, "token too long")


@pytest.mark.parametrize("typ", ["JWT", "jwt", "refresh+jwt", "rt+jwt", "id_token", "", None, 1])
@pytest.mark.obligation("OB-4-7")
def test_wrong_token_type_is_refused(typ: Any, es_key: SigningKey, keys: KeySet) -> None:
    header = header_for(es_key)
    header["typ"] = typ
    if typ is None:
        del header["typ"]
    refused(sign_by_hand(header, claims(), es_key), keys, "wrong token type")


@pytest.mark.obligation("OB-4-7")
def test_tokens_with_the_wrong_number_of_parts_are_refused(
    es_key: SigningKey, keys: KeySet
) -> None:
    header, payload, signature = issue_token(claims(), key=es_key).split(".")
    for token in (
        f"{header}.{payload}",
        f"{header}.{payload}.{signature}.{signature}",
        f"{header}.{payload}.{signature}.{signature}.{signature}",  # JWE shape
        header,
        "",
    ):
        refused(token, keys, "malformed token")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda h, p, s: f"{h}.{p}.{s}=",  # padding
        lambda h, p, s: f"{h}.{p}+/.{s}",  # base64, not base64url
        lambda h, p, s: f"{h} .{p}.{s}",
        lambda h, p, s: f"{b64(b'not json')}.{p}.{s}",
        lambda h, p, s: f"{b64json(['alg', 'ES256'])}.{p}.{s}",
        lambda h, p, s: f"{h}..{s}",
        lambda h, p, s: f"{h}.{p}.",
    ],
)
@pytest.mark.obligation("OB-4-7")
def test_malformed_tokens_are_refused(
    mangle: Callable[[str, str, str], str], es_key: SigningKey, keys: KeySet
) -> None:
    token = mangle(*issue_token(claims(), key=es_key).split("."))
    with pytest.raises(InvalidToken):
        verify(token, keys)


@pytest.mark.obligation("OB-4-7")
def test_duplicate_header_members_are_refused(es_key: SigningKey, keys: KeySet) -> None:
    header = f'{{"alg":"HS256","alg":"ES256","kid":"{es_key.kid}","typ":"at+jwt"}}'
    signing_input = f"{b64(header.encode())}.{b64json(claims())}"
    token = sign_by_hand(header_for(es_key), claims(), es_key)
    refused(f"{signing_input}.{token.split('.')[2]}", keys, "malformed token header")


# --------------------------------------------------------------------------- principal


@pytest.mark.obligation("OB-4-7")
def test_scopes_foreign_to_the_kind_refuse_the_token() -> None:
    with pytest.raises(InvalidToken, match="scope not allowed"):
        Principal.from_claims(claims(scope="orders:read admin:staff"))
    with pytest.raises(InvalidToken, match="scope not allowed"):
        Principal.from_claims(claims(kind="staff", scope="orders:read"))
    with pytest.raises(InvalidToken, match="invalid claim: kind"):
        Principal.from_claims(claims(kind="root"))
    with pytest.raises(InvalidToken, match="invalid claim: verified"):
        Principal.from_claims(claims(verified="yes"))
    staff = Principal.from_claims(
        claims(kind="staff", client_type="web", scope=" ".join(STAFF_ROLE_SCOPES["security"]))
    )
    assert staff.has(Scope.SECURITY_READ) and not staff.has(Scope.SUPPORT_READ)
    assert Scope.ORDERS_READ in USER_SCOPES and Scope.ADMIN_STAFF not in USER_SCOPES


# --------------------------------------------------------------------------- JWKS client


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Identity:
    """A JWKS endpoint on httpx.MockTransport that counts its requests."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.requests = 0
        self.down = False

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.down:
            return httpx.Response(503)
        return httpx.Response(200, json={"keys": [key.public_jwk() for key in self.keys]})

    def client(self, clock: FakeClock, **kwargs: Any) -> JwksClient:
        http = httpx.AsyncClient(transport=httpx.MockTransport(self.handler))
        return JwksClient(
            "http://identity/.well-known/jwks.json", client=http, clock=clock, **kwargs
        )


async def test_jwks_client_caches_for_its_ttl(es_key: SigningKey) -> None:
    identity, clock = Identity(es_key), FakeClock()
    client = identity.client(clock, ttl_s=300)
    assert es_key.kid in await client.key_set(es_key.kid)
    clock.now += 299
    await client.key_set(es_key.kid)
    await client.key_set()
    assert identity.requests == 1
    clock.now += 2
    await client.key_set(es_key.kid)
    assert identity.requests == 2


async def test_jwks_client_refreshes_on_an_unknown_kid(es_key: SigningKey) -> None:
    identity, clock = Identity(es_key), FakeClock()
    client = identity.client(clock, min_refresh_interval_s=30)
    await client.key_set(es_key.kid)
    rotated = generate_signing_key()
    identity.keys.append(rotated)
    clock.now += 31
    assert rotated.kid in await client.key_set(rotated.kid)
    assert identity.requests == 2


async def test_a_burst_of_unknown_kids_fetches_at_most_once_per_interval(
    es_key: SigningKey,
) -> None:
    identity, clock = Identity(es_key), FakeClock()
    client = identity.client(clock, min_refresh_interval_s=30)
    await client.key_set(es_key.kid)
    clock.now += 31
    burst = [client.key_set(f"random-{n}") for n in range(200)]
    results = await asyncio.gather(*burst)
    assert identity.requests == 2
    assert all(es_key.kid in result for result in results)
    clock.now += 10
    await asyncio.gather(*(client.key_set(f"again-{n}") for n in range(200)))
    assert identity.requests == 2
    clock.now += 30
    await asyncio.gather(*(client.key_set(f"later-{n}") for n in range(200)))
    assert identity.requests == 3


async def test_jwks_client_serves_the_last_set_while_identity_is_down(es_key: SigningKey) -> None:
    identity, clock = Identity(es_key), FakeClock()
    client = identity.client(clock, ttl_s=300, max_stale_s=3600)
    await client.key_set()
    identity.down = True
    clock.now += 400
    assert es_key.kid in await client.key_set(es_key.kid)
    clock.now += 3600
    with pytest.raises(ServiceUnavailable):
        await client.key_set(es_key.kid)
    garbage = Identity(es_key)
    garbage.handler = lambda request: httpx.Response(200, json=[1, 2])  # type: ignore[method-assign]
    with pytest.raises(ServiceUnavailable):
        await garbage.client(FakeClock()).key_set()
    cold = Identity(es_key)
    cold.down = True
    with pytest.raises(ServiceUnavailable):
        await cold.client(FakeClock()).key_set()


# --------------------------------------------------------------------------- verifier


class CountingSource:
    def __init__(self, keys: KeySet) -> None:
        self.keys, self.calls = keys, 0

    async def __call__(self, kid: str | None) -> KeySet:
        self.calls += 1
        return self.keys


@pytest.mark.obligation("OB-4-7")
async def test_verifier_cache_never_accepts_a_token_after_its_exp(
    es_key: SigningKey, keys: KeySet
) -> None:
    clock, source = FakeClock(NOW), CountingSource(keys)
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, key_source=source, clock=clock)
    token = issue_token(claims(exp=int(NOW) + 60), key=es_key)
    assert (await verifier.verify(token))["sub"] == "acct_123"
    clock.now = NOW + 59.5
    assert (await verifier.principal(f"Bearer {token}")).subject == "acct_123"
    assert source.calls == 1  # served from the cache
    clock.now = NOW + 60
    with pytest.raises(InvalidToken, match="token expired"):
        await verifier.verify(token)
    with pytest.raises(InvalidToken, match="token expired"):
        await verifier.principal(f"Bearer {token}")


async def test_verifier_cache_is_bounded(es_key: SigningKey, keys: KeySet) -> None:
    source = CountingSource(keys)
    verifier = TokenVerifier(
        issuer=ISSUER, audience=AUDIENCE, key_source=source, cache_size=2, clock=FakeClock(NOW)
    )
    tokens = [issue_token(claims(jti=f"tok_{n}"), key=es_key) for n in range(3)]
    for token in tokens:
        await verifier.verify(token)
    await verifier.verify(tokens[2])
    assert source.calls == 3
    await verifier.verify(tokens[0])  # evicted, verified again
    assert source.calls == 4


@pytest.mark.parametrize("header", [None, "", "Basic YWxpY2U6c2VjcmV0", "Bearer", "Bearer a b"])
@pytest.mark.obligation("OB-4-7")
async def test_principal_needs_a_bearer_token(header: str | None, keys: KeySet) -> None:
    verifier = TokenVerifier(
        issuer=ISSUER, audience=AUDIENCE, key_source=static_key_source(keys), clock=FakeClock(NOW)
    )
    with pytest.raises(InvalidToken) as info:
        await verifier.principal(header)
    assert info.value.headers["WWW-Authenticate"].startswith("Bearer")


# --------------------------------------------------------------------------- FastAPI


def make_app(keys: KeySet) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.state.token_verifier = TokenVerifier(
        issuer=ISSUER, audience=AUDIENCE, key_source=static_key_source(keys), clock=FakeClock(NOW)
    )

    @app.get("/orders")
    async def orders(
        principal: Annotated[Principal, require(Scope.ORDERS_READ)],
    ) -> dict[str, str]:
        return {"subject": principal.subject}

    @app.get("/deliveries")
    async def deliveries(
        principal: Annotated[Principal, require(Scope.PARTNER_LOGISTICS)],
    ) -> dict[str, list[str]]:
        return {"purposes": sorted(principal.purposes)}

    return app


async def call(app: FastAPI, path: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path, headers=headers)


@pytest.mark.obligation("OB-4-7")
async def test_require_gives_403_naming_the_missing_scope(es_key: SigningKey, keys: KeySet) -> None:
    app = make_app(keys)
    allowed = await call(app, "/orders", issue_token(claims(), key=es_key))
    assert allowed.status_code == 200 and allowed.json() == {"subject": "acct_123"}

    response = await call(app, "/orders", issue_token(claims(scope="account:read"), key=es_key))
    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM_JSON
    problem = response.json()
    assert problem["type"].endswith("/insufficient-scope")
    assert "orders:read" in problem["detail"]
    assert problem["missing_scopes"] == ["orders:read"]
    assert response.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="orders:read"'
    )


@pytest.mark.obligation("OB-4-7")
async def test_routes_refuse_missing_and_forged_tokens_with_401(
    es_key: SigningKey, keys: KeySet
) -> None:
    app = make_app(keys)
    forged = f"{b64json(header_for(es_key, alg='none'))}.{b64json(claims())}."
    for token in (None, forged, issue_token(claims(exp=int(NOW)), key=es_key)):
        response = await call(app, "/orders", token)
        assert response.status_code == 401
        assert response.json()["type"].endswith("/invalid-token")


@pytest.mark.obligation("OB-3-1")
async def test_partner_tokens_carry_only_partner_scopes_and_their_purposes(
    es_key: SigningKey, keys: KeySet
) -> None:
    app = make_app(keys)
    partner = claims(
        sub="partner_sf",
        kind="partner",
        client_type="server",
        scope="partner:logistics",
        purposes=["delivery"],
    )
    token = issue_token(partner, key=es_key)
    assert (await call(app, "/deliveries", token)).json() == {"purposes": ["delivery"]}
    refused_orders = await call(app, "/orders", token)
    assert refused_orders.status_code == 403
    assert refused_orders.json()["missing_scopes"] == ["orders:read"]
    # A partner token that claims a user's scope is not trusted at all.
    greedy = issue_token({**partner, "scope": "partner:logistics orders:read"}, key=es_key)
    assert (await call(app, "/orders", greedy)).status_code == 401


# --------------------------------------------------------------------------- service tokens


def service_claims(**overrides: Any) -> dict[str, Any]:
    service: dict[str, Any] = {
        "sub": "svc_transfer",
        "kind": "service",
        "client_type": "server",
        "scope": "service:cross_border.transfer",
        "purposes": ["cross_border.transfer"],
    }
    return claims(**{**service, **overrides})


def test_service_scopes_name_the_purpose_they_serve() -> None:
    expected = {Scope.SERVICE_CROSS_BORDER_TRANSFER, Scope.SERVICE_RIGHTS_ACCESS}
    assert expected == SERVICE_SCOPES
    assert service_purpose(Scope.SERVICE_CROSS_BORDER_TRANSFER) == "cross_border.transfer"
    assert service_purpose("service:rights.access") == "rights.access"
    with pytest.raises(ValueError, match="not a service scope"):
        service_purpose(Scope.ORDERS_READ)


@pytest.mark.obligation("OB-3-1")
async def test_a_service_token_verifies_and_holds_only_service_scopes(
    es_key: SigningKey, keys: KeySet
) -> None:
    verifier = TokenVerifier(
        issuer=ISSUER, audience=AUDIENCE, key_source=static_key_source(keys), clock=FakeClock(NOW)
    )
    token = issue_token(service_claims(), key=es_key)
    principal = await verifier.principal(f"Bearer {token}")
    assert principal.kind == "service" and principal.client_type == "server"
    assert principal.has(Scope.SERVICE_CROSS_BORDER_TRANSFER)
    assert principal.purposes == {"cross_border.transfer"}
    # A service token with a user's scope, a user token with a service scope: not trusted.
    for bad in (
        service_claims(scope="service:cross_border.transfer orders:read"),
        claims(scope="orders:read service:cross_border.transfer"),
        claims(kind="partner", client_type="server", scope="service:rights.access"),
    ):
        with pytest.raises(InvalidToken, match="scope not allowed"):
            await verifier.principal(f"Bearer {issue_token(bad, key=es_key)}")


@pytest.mark.obligation("OB-4-7")
def test_a_service_token_is_a_server_s_and_names_only_its_scopes_purposes() -> None:
    with pytest.raises(InvalidToken, match="server client"):
        Principal.from_claims(service_claims(client_type="app"))
    with pytest.raises(InvalidToken, match="purposes not named"):
        Principal.from_claims(service_claims(purposes=["cross_border.transfer", "marketing"]))
    with pytest.raises(InvalidToken, match="purposes not named"):
        Principal.from_claims(service_claims(purposes=["rights.access"]))


@pytest.mark.obligation("OB-4-7")
async def test_a_user_route_refuses_a_service_token_with_403(
    es_key: SigningKey, keys: KeySet
) -> None:
    app = make_app(keys)
    response = await call(app, "/orders", issue_token(service_claims(), key=es_key))
    assert response.status_code == 403
    assert response.json()["missing_scopes"] == ["orders:read"]
