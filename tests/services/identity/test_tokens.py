"""Login, tokens and keys as a client sees them: claims without personal data, refresh
rotation with reuse detection, logout, throttled failures that do not tell whether a phone
exists, key rotation that keeps old tokens valid until they expire."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import col

from kit.auth import KeySet, generate_signing_key, issue_token, verify_token
from kit.models import utcnow
from kit.testing import bearer
from services.identity.models import RefreshToken, SigningKeyRecord
from services.identity.tokens.service import active_signing_key, rotate_signing_key
from tests.services.identity.conftest import ISSUER, Identity


def header_of(token: str) -> dict[str, str]:
    head = token.split(".", maxsplit=1)[0]
    decoded: dict[str, str] = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    return decoded


async def jwks(identity: Identity) -> KeySet:
    response = await identity.client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    return KeySet(response.json())


@pytest.mark.obligation("OB-1-1")
async def test_access_tokens_carry_a_pseudonym_not_the_phone(identity: Identity) -> None:
    phone = identity.new_phone()
    account_id = await identity.register(phone)
    tokens = await identity.login(phone, client_type="mini_program")
    claims = verify_token(
        tokens["access_token"],
        keys=await jwks(identity),
        issuer=ISSUER,
        audience=identity.settings.auth_audience,
    )
    assert claims["sub"] == account_id and account_id.startswith("acc_")
    assert claims["client_type"] == "mini_program"
    assert claims["verified"] is False and claims["kind"] == "user"
    assert {"account:read", "orders:write"} <= set(claims["scope"].split())
    for key in ("iss", "aud", "exp", "iat", "jti"):
        assert key in claims
    assert phone not in json.dumps(claims)
    assert tokens["expires_in"] == identity.settings.access_token_ttl_s


async def test_issuer_metadata_and_jwks_are_public(identity: Identity) -> None:
    metadata = (await identity.client.get("/.well-known/oauth-authorization-server")).json()
    assert metadata["issuer"] == ISSUER
    assert metadata["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
    keys = await jwks(identity)
    assert len(keys) == 1
    assert all("d" not in key for key in keys.to_jwks()["keys"]), "no private parts"


async def test_refresh_rotates_and_reuse_revokes_the_family(identity: Identity) -> None:
    phone = identity.new_phone()
    await identity.register(phone)
    first = await identity.login(phone)
    second = (
        await identity.client.post("/token/refresh", json={"refresh_token": first["refresh_token"]})
    ).json()
    assert second["refresh_token"] != first["refresh_token"]
    third = await identity.client.post(
        "/token/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert third.status_code == 200

    reused = await identity.client.post(
        "/token/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert reused.status_code == 401
    assert "already used" in reused.json()["detail"]
    latest = await identity.client.post(
        "/token/refresh", json={"refresh_token": third.json()["refresh_token"]}
    )
    assert latest.status_code == 401, "reuse revokes every token of the family"


async def test_logout_ends_the_login(identity: Identity) -> None:
    phone = identity.new_phone()
    await identity.register(phone)
    tokens = await identity.login(phone)
    response = await identity.client.post(
        "/logout",
        headers=bearer(tokens["access_token"]),
        json={"refresh_token": tokens["refresh_token"]},
    )
    assert response.status_code == 204
    again = await identity.client.post(
        "/token/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert again.status_code == 401


async def test_failed_logins_look_the_same_and_are_throttled(identity: Identity) -> None:
    phone = identity.new_phone()
    await identity.register(phone)
    wrong_password = await identity.client.post(
        "/login", json={"phone": phone, "password": "not the password"}
    )
    unknown_phone = await identity.client.post(
        "/login", json={"phone": identity.new_phone(), "password": "not the password"}
    )
    assert wrong_password.status_code == unknown_phone.status_code == 401
    assert wrong_password.json()["detail"] == unknown_phone.json()["detail"]

    for _ in range(identity.settings.login_max_failures - 1):
        await identity.client.post("/login", json={"phone": phone, "password": "nope nope"})
    blocked = await identity.client.post(
        "/login", json={"phone": phone, "password": "correct horse battery"}
    )
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0


async def test_rotation_keeps_old_tokens_until_they_expire(identity: Identity) -> None:
    _, old_token = await identity.user()
    old_kid = header_of(old_token)["kid"]
    context = identity.context
    async with context.database.session() as session:
        new_key = await rotate_signing_key(
            session, cipher=context.cipher, settings=identity.settings
        )
    assert new_key.kid != old_kid
    _, new_token = await identity.user()
    assert header_of(new_token)["kid"] == new_key.kid
    keys = await jwks(identity)
    assert {old_kid, new_key.kid} <= keys.kids
    for token in (old_token, new_token):
        me = await identity.client.get("/accounts/me", headers=bearer(token))
        assert me.status_code == 200, me.text

    async with context.database.session() as session:  # long after the old tokens expired
        await session.execute(
            update(SigningKeyRecord)
            .where(col(SigningKeyRecord.kid) == old_kid)
            .values(retired_at=utcnow() - timedelta(days=1))
        )
    assert old_kid not in (await jwks(identity)).kids


@pytest.mark.obligation("OB-4-7")
@pytest.mark.parametrize("attack", ["alg_none", "wrong_audience", "expired", "foreign_key"])
async def test_forged_or_stale_tokens_are_refused(identity: Identity, attack: str) -> None:
    _, token = await identity.user()
    claims = verify_token(
        token, keys=await jwks(identity), issuer=ISSUER, audience=identity.settings.auth_audience
    )
    context = identity.context
    async with context.database.session() as session:  # the real key: only the claim is off
        real_key = await active_signing_key(
            session, cipher=context.cipher, settings=identity.settings
        )
    if attack == "alg_none":
        head = base64.urlsafe_b64encode(b'{"alg":"none","typ":"at+jwt"}').rstrip(b"=")
        body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
        forged = f"{head.decode()}.{body.decode()}."
    elif attack == "wrong_audience":
        forged = issue_token({**claims, "aud": "someone-else"}, key=real_key)
    elif attack == "expired":
        forged = issue_token({**claims, "exp": claims["iat"] - 1}, key=real_key)
    else:
        forged = issue_token(claims, key=generate_signing_key("ES256"))
    response = await identity.client.get("/accounts/me", headers=bearer(forged))
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


def _claims(token: str) -> dict[str, object]:
    body = token.split(".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return decoded


@pytest.mark.obligation("OB-L-4")
async def test_a_refreshed_token_keeps_its_logins_auth_time_so_it_never_counts_as_signing_in(
    identity: Identity,
) -> None:
    phone = identity.new_phone()
    await identity.register(phone)
    first = await identity.login(phone)
    signed_in = _claims(first["access_token"])["auth_time"]
    assert signed_in == _claims(first["access_token"])["iat"]
    # The family's first token is backdated: a refresh must still name that sign-in.
    async with identity.context.database.session() as session:
        await session.execute(
            update(RefreshToken).values(created_at=utcnow() - timedelta(minutes=30))
        )
    refreshed = (
        await identity.client.post("/token/refresh", json={"refresh_token": first["refresh_token"]})
    ).json()
    claims = _claims(refreshed["access_token"])
    assert claims["auth_time"] != claims["iat"]
    assert isinstance(claims["auth_time"], int) and isinstance(signed_in, int)
    assert claims["auth_time"] <= signed_in - 29 * 60
