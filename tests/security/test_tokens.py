"""Token attacks (issue 9, OB-4-7): every forged, stale, misdirected or oversized token is
refused with 401 by the gateway before any service sees the request, and refused with 401
by a service that verifies tokens itself (orders, called directly).

Attack tokens are built by hand (base64url + cryptography). Many are *correctly signed*
by the trusted key, so the refusal proves the check that names them, not a broken
signature. :data:`ATTACKS` is the catalogue; the first test shows the same target
answers a genuine token, so the 401s below mean the attack was caught.

A token of a revoked partner or a closed account is still in date when the revocation
happens: identity refuses the partner a new token at once, and the gateway refuses the
token it holds from the moment identity's event reaches it (fed here from identity's
outbox, as the broker would). A refresh token is not an access token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from kit.auth import ACCESS_TOKEN_TYPE, SigningKey, generate_signing_key
from kit.testing import TEST_ISSUER, bearer, new_subject
from services.identity.rights.service import ACCOUNT_CLOSED
from tests.gateway.conftest import KEY
from tests.security.conftest import Suite, deliver_identity_events, partner_registration

pytestmark = pytest.mark.security

AUDIENCE = "signature-api"  # ServiceSettings.auth_audience, the suite's default
GATEWAY_TARGET = "/orders/orders"  # a user route: orders:read, purpose order.query
SERVICE_TARGET = "/orders"  # the same route at the orders service itself

OTHER_KEY: SigningKey = generate_signing_key("ES256")
OTHER_RSA_KEY: SigningKey = generate_signing_key("RS256")


# --------------------------------------------------------------------------- building


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64json(value: Any) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def claims(**overrides: Any) -> dict[str, Any]:
    """A user's access claims as identity issues them; ``None`` removes a claim."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": TEST_ISSUER,
        "aud": AUDIENCE,
        "sub": "acc_attacker",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "tok_attack",
        "scope": "orders:read orders:write account:read",
        "kind": "user",
        "client_type": "app",
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def header(key: SigningKey = KEY, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"alg": key.alg, "kid": key.kid, "typ": ACCESS_TOKEN_TYPE}
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def signed(head: dict[str, Any], payload: dict[str, Any], key: SigningKey = KEY) -> str:
    """Signed with ``key``'s private key, whatever ``head`` says."""
    signing_input = f"{b64json(head)}.{b64json(payload)}"
    private = serialization.load_pem_private_key(key.private_pem, password=None)
    if isinstance(private, ec.EllipticCurvePrivateKey):
        der = private.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        assert isinstance(private, rsa.RSAPrivateKey)
        signature = private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"


def hmac_signed(head: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    signing_input = f"{b64json(head)}.{b64json(payload)}"
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
    mac = hmac.new(secret, signing_input.encode(), digest[head["alg"]]).digest()
    return f"{signing_input}.{b64(mac)}"


def hmac_with(alg: str, secret: bytes) -> str:
    return hmac_signed(header(alg=alg), claims(), secret)


def signed_with_kid(kid: str) -> str:
    return signed(header(kid=kid), claims())


def unsigned(alg: str, *, signature: str = "") -> str:
    return f"{b64json(header(alg=alg))}.{b64json(claims())}.{signature}"


def public_pem(key: SigningKey) -> bytes:
    private = serialization.load_pem_private_key(key.private_pem, password=None)
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def tampered(field: str, value: Any) -> str:
    """A genuine token whose payload was changed after signing."""
    head, _, signature = signed(header(), claims()).split(".")
    return f"{head}.{b64json(claims(**{field: value}))}.{signature}"


def partner_claims(scope: str) -> dict[str, Any]:
    return claims(
        sub="ptn_attacker",
        kind="partner",
        client_type="server",
        scope=scope,
        purposes=["logistics.delivery"],
    )


@dataclass(frozen=True)
class Attack:
    name: str
    make: Callable[[], str]


def _attacks() -> list[Attack]:
    now = int(time.time())
    pem = public_pem(KEY)
    jwk_json = json.dumps(KEY.public_jwk(), separators=(",", ":")).encode()
    attacker_jwk = OTHER_KEY.public_jwk()
    attacks = [
        *(
            Attack(f"alg {alg!r}, empty signature", partial(unsigned, alg))
            for alg in ("none", "None", "NONE", "nOnE", "", " none")
        ),
        *(
            Attack(f"alg {alg!r} with a signature", partial(unsigned, alg, signature="c2ln"))
            for alg in ("none", "NoNe")
        ),
        Attack(
            "alg none with the trusted key's signature kept",
            lambda: unsigned("none", signature=signed(header(), claims()).split(".")[2]),
        ),
        *(
            Attack(
                f"{alg} signed with the public key as PEM",
                partial(hmac_with, alg, pem),
            )
            for alg in ("HS256", "HS384", "HS512")
        ),
        Attack(
            "HS256 signed with the public key as PEM, no trailing newline",
            lambda: hmac_signed(header(alg="HS256"), claims(), pem.strip()),
        ),
        Attack(
            "HS256 signed with the public key as JWK",
            lambda: hmac_signed(header(alg="HS256"), claims(), jwk_json),
        ),
        Attack(
            "HS256 signed with the JWK's x coordinate",
            lambda: hmac_signed(header(alg="HS256"), claims(), KEY.public_jwk()["x"].encode()),
        ),
        Attack(
            "signed by an unknown key under its own kid",
            lambda: signed(header(OTHER_KEY), claims(), OTHER_KEY),
        ),
        Attack(
            "signed by an unknown key under the trusted kid",
            lambda: signed(header(), claims(), OTHER_KEY),
        ),
        Attack(
            "signed by an unknown RSA key under the trusted kid",
            lambda: signed(header(alg="RS256"), claims(), OTHER_RSA_KEY),
        ),
        *(
            Attack(f"kid {kid!r}", partial(signed_with_kid, kid))
            for kid in (
                "../../../../../../dev/null",
                "../../keys/" + KEY.kid,
                "/etc/passwd",
                "' OR '1'='1",
                "x' UNION SELECT 'secret' --",
                "1; DROP TABLE signing_key;--",
                "unknown-kid",
                "",
                "k" * 129,
                "http://attacker.example/key.pem",
            )
        ),
        Attack("kid missing", lambda: signed(header(kid=None), claims())),
        Attack("kid a number", lambda: signed(header(kid=7), claims())),
        Attack("kid a list", lambda: signed(header(kid=[KEY.kid]), claims())),
        Attack(
            "jku to the attacker's JWKS",
            lambda: signed(
                header(OTHER_KEY, jku="http://127.0.0.1:9/jwks.json"), claims(), OTHER_KEY
            ),
        ),
        Attack(
            "x5u to the attacker's certificate",
            lambda: signed(
                header(OTHER_KEY, x5u="http://127.0.0.1:9/cert.pem"), claims(), OTHER_KEY
            ),
        ),
        Attack(
            "jwk: the attacker's own key embedded",
            lambda: signed(header(OTHER_KEY, jwk=attacker_jwk), claims(), OTHER_KEY),
        ),
        Attack(
            "jku beside the trusted kid, correctly signed",
            lambda: signed(header(jku="http://127.0.0.1:9/jwks.json"), claims()),
        ),
        Attack("x5c embedded", lambda: signed(header(x5c=["MIIB"]), claims())),
        Attack("crit header", lambda: signed(header(crit=["exp"]), claims())),
        Attack(
            "typ JWT (an ID token, not an access token)",
            lambda: signed(header(typ="JWT"), claims()),
        ),
        Attack("typ missing", lambda: signed(header(typ=None), claims())),
        Attack(
            "expired", lambda: signed(header(), claims(iat=now - 900, nbf=now - 900, exp=now - 1))
        ),
        Attack("nbf in the future", lambda: signed(header(), claims(nbf=now + 3600))),
        Attack("iat in the future", lambda: signed(header(), claims(iat=now + 3600))),
        Attack("exp missing", lambda: signed(header(), claims(exp=None))),
        Attack("exp a string", lambda: signed(header(), claims(exp="9999999999"))),
        Attack("wrong iss", lambda: signed(header(), claims(iss="http://attacker.example"))),
        Attack("iss missing", lambda: signed(header(), claims(iss=None))),
        Attack("wrong aud", lambda: signed(header(), claims(aud="another-api"))),
        Attack("aud list without ours", lambda: signed(header(), claims(aud=["a", "b"]))),
        Attack("aud missing", lambda: signed(header(), claims(aud=None))),
        Attack("sub missing", lambda: signed(header(), claims(sub=None))),
        Attack("jti missing", lambda: signed(header(), claims(jti=None))),
        Attack(
            "partner token with a user scope it was not granted",
            lambda: signed(header(), partner_claims("partner:logistics orders:read")),
        ),
        Attack(
            "partner token with an admin scope",
            lambda: signed(header(), partner_claims("partner:logistics admin:partners")),
        ),
        Attack(
            "partner token with a service scope",
            lambda: signed(header(), partner_claims("service:rights.access")),
        ),
        Attack(
            "user token with an admin scope",
            lambda: signed(header(), claims(scope="orders:read admin:partners")),
        ),
        Attack(
            "user token with a partner scope",
            lambda: signed(header(), claims(scope="orders:read partner:logistics")),
        ),
        Attack("unknown kind", lambda: signed(header(), claims(kind="admin"))),
        Attack("verified flag as a string", lambda: signed(header(), claims(verified="true"))),
        Attack(
            "service token for a non-server client",
            lambda: signed(
                header(), claims(kind="service", scope="service:rights.access", client_type="app")
            ),
        ),
        Attack(
            "tampered payload: scope widened", lambda: tampered("scope", "orders:read admin:staff")
        ),
        Attack("tampered payload: another subject", lambda: tampered("sub", "acc_victim")),
        Attack("tampered payload: later exp", lambda: tampered("exp", now + 86_400)),
        Attack("signature stripped", lambda: signed(header(), claims()).rsplit(".", 1)[0] + "."),
        Attack("signature truncated", lambda: signed(header(), claims())[:-10]),
        Attack(
            "oversized token (past 8192 characters)",
            lambda: signed(header(), claims(pad="x" * 9000)),
        ),
        Attack(
            "oversized token header",
            lambda: signed(header(pad="x" * 9000), claims()),
        ),
        Attack("two parts", lambda: ".".join(signed(header(), claims()).split(".")[:2])),
        Attack("four parts", lambda: signed(header(), claims()) + ".e30"),
        Attack("not base64url", lambda: "eyJ@.eyJ@.c2ln"),
        Attack("JWE-shaped", lambda: f"{b64json({'alg': 'RSA-OAEP', 'enc': 'A256GCM'})}.a.b.c.d"),
    ]
    return attacks


ATTACKS = _attacks()


async def _refused_everywhere(suite: Suite, authorization: str) -> None:
    """401 at the gateway with nothing forwarded, and 401 at orders itself."""
    before = suite.calls()
    answer = await suite.client.get(GATEWAY_TARGET, headers={"Authorization": authorization})
    assert answer.status_code == 401, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert suite.calls() == before, "the request reached a service"
    token = authorization.partition(" ")[2].strip()
    if len(token) > 8:
        assert token not in answer.text  # never echoed
    direct = await suite.clients["orders"].get(
        SERVICE_TARGET, headers={"Authorization": authorization}
    )
    assert direct.status_code == 401, direct.text
    assert "items" not in direct.json()


@pytest.mark.obligation("OB-4-7")
async def test_a_genuine_token_passes_both_targets(suite: Suite) -> None:
    """The control: the target routes answer a correctly issued token, so each 401 below
    is the attack being caught."""
    token = signed(header(), claims(sub=new_subject()))
    before = suite.calls()
    answer = await suite.client.get(GATEWAY_TARGET, headers=bearer(token))
    assert answer.status_code == 200, answer.text
    assert suite.calls() == before + 1
    direct = await suite.clients["orders"].get(SERVICE_TARGET, headers=bearer(token))
    assert direct.status_code == 200, direct.text


@pytest.mark.parametrize("attack", ATTACKS, ids=[attack.name for attack in ATTACKS])
@pytest.mark.obligation("OB-4-7")
async def test_an_attack_token_is_401_and_reaches_no_service(suite: Suite, attack: Attack) -> None:
    await _refused_everywhere(suite, f"Bearer {attack.make()}")


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer  ",
        "Token " + "a.b.c",
        "Bearer a.b.c extra",
        # Past any token's size, within the gateway's header limit (past it: 431, see
        # test_headers.py).
        "Bearer " + "A" * 16_000,
    ],
    ids=["basic", "empty", "blank", "other-scheme", "two-words", "oversized-header"],
)
@pytest.mark.obligation("OB-4-7")
async def test_malformed_authorization_headers_are_401(suite: Suite, authorization: str) -> None:
    await _refused_everywhere(suite, authorization)


@pytest.mark.obligation("OB-4-7")
async def test_no_token_and_two_tokens_are_401(suite: Suite) -> None:
    before = suite.calls()
    missing = await suite.client.get(GATEWAY_TARGET)
    assert missing.status_code == 401
    good = bearer(signed(header(), claims()))["Authorization"]
    twice = await suite.client.get(
        GATEWAY_TARGET, headers=[("Authorization", good), ("Authorization", good)]
    )
    assert twice.status_code == 401, twice.text
    assert suite.calls() == before


PHONE = "13900001234"
PASSWORD = "correct horse battery"


@pytest.mark.obligation("OB-4-7")
async def test_a_refresh_token_is_not_an_access_token(suite: Suite) -> None:
    """A real refresh token from identity's login is refused as a bearer token."""
    identity = suite.clients["identity"]
    created = await identity.post("/accounts", json={"phone": PHONE, "password": PASSWORD})
    assert created.status_code == 201, created.text
    login = await identity.post("/login", json={"phone": PHONE, "password": PASSWORD})
    assert login.status_code == 200, login.text
    refresh = login.json()["refresh_token"]
    assert refresh
    await _refused_everywhere(suite, f"Bearer {refresh}")
    # identity's own verifier (its own keys) refuses it too.
    own = await identity.get("/accounts/me", headers=bearer(refresh))
    assert own.status_code == 401


@pytest.mark.obligation("OB-4-7")
async def test_a_revoked_partner_gets_no_new_token(suite: Suite) -> None:
    """Revocation stops the partner at the issuer: the client-credentials grant is refused
    (its access tokens then end within ``partner_token_ttl_s``)."""
    admin = suite.staff(new_subject("stf"))
    registered = await suite.client.post(
        "/identity/partners", json=partner_registration("Courier Revoked Ltd"), headers=admin
    )
    assert registered.status_code == 201, registered.text
    partner = registered.json()
    form = {
        "grant_type": "client_credentials",
        "client_id": partner["client_id"],
        "client_secret": partner["client_secret"],
        "scope": "partner:logistics",
    }
    before = await suite.client.post("/identity/oauth2/token", data=form)
    assert before.status_code == 200, before.text  # the control: it worked until now
    revoked = await suite.client.post(
        f"/identity/partners/{partner['client_id']}/revoke", headers=admin
    )
    assert revoked.status_code == 200, revoked.text
    grant = await suite.client.post("/identity/oauth2/token", data=form)
    assert grant.status_code == 401, grant.text
    assert grant.json()["error"] == "invalid_client"


@pytest.mark.obligation("OB-4-7")
async def test_a_revoked_partners_token_in_date_is_401_and_reaches_no_service(
    suite: Suite,
) -> None:
    admin = suite.staff(new_subject("stf"))
    registered = await suite.client.post(
        "/identity/partners", json=partner_registration("Courier Gone Ltd"), headers=admin
    )
    assert registered.status_code == 201, registered.text
    client_id = registered.json()["client_id"]
    token = suite.partner(client_id, "partner:logistics", ["logistics.delivery"])
    before = await suite.client.get("/orders/partner/orders", headers=token)
    assert before.status_code == 200, before.text  # the control: the token works
    revoked = await suite.client.post(f"/identity/partners/{client_id}/revoke", headers=admin)
    assert revoked.status_code == 200, revoked.text
    await deliver_identity_events(suite)
    calls = suite.calls()
    after = await suite.client.get("/orders/partner/orders", headers=token)
    assert after.status_code == 401, after.text
    assert suite.calls() == calls


@pytest.mark.obligation("OB-4-7")
async def test_a_closed_accounts_token_in_date_is_401_and_reaches_no_service(
    suite: Suite,
) -> None:
    subject = new_subject()
    token = suite.user(subject)
    before = await suite.client.get(GATEWAY_TARGET, headers=token)
    assert before.status_code == 200, before.text
    identity = suite.services["identity"].state.context
    async with identity.database.session() as session:  # as identity's deletion does
        identity.events.add(session, type=ACCOUNT_CLOSED, subject=subject, purpose="account")
    await deliver_identity_events(suite)
    calls = suite.calls()
    after = await suite.client.get(GATEWAY_TARGET, headers=token)
    assert after.status_code == 401, after.text
    assert suite.calls() == calls
    other = await suite.client.get(GATEWAY_TARGET, headers=suite.user(new_subject()))
    assert other.status_code == 200  # only that account is refused
