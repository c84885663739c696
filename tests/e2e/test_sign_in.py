"""Signing in the way Chinese apps and mini-programs do (issue 26), through the gateway of
the running suite, as the app or the mini-program drives it, against the stand-ins that
``make run`` starts too: the SMS gateway (its outbox is what the phone shows) and the
mini-program platform (``deploy/mini_platform``: what ``wx.login`` and ``getPhoneNumber``
give the mini-program on the phone).

1. A new user asks for an SMS code and signs in with it: the account is opened, the policy
   version agreed on the sign-in screen is recorded by the privacy center, and the user
   can shop; an account registered with a password signs in with a code too.
2. A mini-program user signs in with the platform's login code: the token says
   ``client_type=mini_program`` and the same APIs serve it; signing in again is the same
   account; a code used twice or expired is refused.
3. The mini-program binds the user's phone with the ``getPhoneNumber`` code, no SMS; the
   ledger records it under its purpose.
4. Logout drops the platform's session key; deletion drops the platform identity.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx
import pytest
from jose import jwt

from tests.e2e.suite import OTHER_ALIPAY_APP_ID, Person, Suite, bearer


async def _policy_version(suite: Suite) -> str:
    version: str = (await suite.call("GET", "/consent/policy"))["version"]
    return version


async def _sms_sign_in(suite: Suite, phone: str) -> dict[str, Any]:
    sent = await suite.call("POST", "/identity/sms/codes", json={"phone": phone}, expect=202)
    assert sent == {"expires_in": 300, "resend_after": 60}  # the code itself: by SMS only
    signed_in: dict[str, Any] = await suite.call(
        "POST",
        "/identity/sms/sign-in",
        json={
            "phone": phone,
            "code": suite.sms_code(phone),
            "policy_version": await _policy_version(suite),
        },
    )
    return signed_in


async def _mini_program_sign_in(suite: Suite, user: str) -> dict[str, Any]:
    signed_in: dict[str, Any] = await suite.call(
        "POST",
        "/identity/mini-program/sign-in",
        json={
            "code": await suite.platform_code(user),
            "policy_version": await _policy_version(suite),
        },
    )
    return signed_in


async def test_a_new_user_registers_with_an_sms_code_agreeing_to_the_policy(suite: Suite) -> None:
    person = Person.new()
    suite.people.append(person)
    signed_in = await _sms_sign_in(suite, person.phone)
    assert signed_in["new_account"] is True
    user = bearer(signed_in["access_token"])
    me = await suite.call("GET", "/identity/accounts/me", headers=user)
    assert me["phone"] == person.phone
    # the agreement made on the sign-in screen reaches the privacy center, then the gateway
    await suite.eventually("GET", "/orders/cart/shares", lambda _: True, headers=user)
    agreements = await suite.call("GET", "/consent/policy/agreements/me", headers=user)
    assert not agreements["renewal_required"]
    assert [(a["version"], a["channel"]) for a in agreements["agreements"]] == [
        (await _policy_version(suite), "app")
    ]


async def test_an_account_with_a_password_signs_in_with_an_sms_code_too(suite: Suite) -> None:
    person = Person.new()
    account_id, _ = await suite.register(person)
    signed_in = await _sms_sign_in(suite, person.phone)
    assert signed_in["new_account"] is False
    me = await suite.call("GET", "/identity/accounts/me", headers=bearer(signed_in["access_token"]))
    assert me["account_id"] == account_id


@pytest.mark.obligation("OB-1-1")
async def test_a_mini_program_signs_in_with_the_platform_code_on_the_same_apis(
    suite: Suite,
) -> None:
    wechat_user = f"wx-user-{secrets.token_hex(4)}"
    first = await _mini_program_sign_in(suite, wechat_user)
    assert first["new_account"] is True
    claims = jwt.get_unverified_claims(first["access_token"])
    assert claims["client_type"] == "mini_program"
    user = bearer(first["access_token"])
    me = await suite.call("GET", "/identity/accounts/me", headers=user)
    assert me["phone"] is None  # no number until the user gives one
    await suite.eventually(
        "GET", "/orders/cart", lambda cart: cart["item_count"] == 0, headers=user
    )
    again = await _mini_program_sign_in(suite, wechat_user)
    assert again["new_account"] is False
    assert jwt.get_unverified_claims(again["access_token"])["sub"] == claims["sub"]


async def test_a_platform_code_signs_in_once_and_never_once_expired(suite: Suite) -> None:
    version = await _policy_version(suite)
    code = await suite.platform_code(f"wx-user-{secrets.token_hex(4)}")
    body = {"code": code, "policy_version": version}
    await suite.call("POST", "/identity/mini-program/sign-in", json=body)
    replayed = await suite.call("POST", "/identity/mini-program/sign-in", json=body, expect=401)
    assert replayed["type"].endswith("/platform-code-rejected")
    stale = await suite.platform_code(f"wx-user-{secrets.token_hex(4)}")
    async with httpx.AsyncClient(base_url=suite.platform_url) as platform:
        assert (await platform.post(f"/stand-in/codes/{stale}/expire")).status_code == 204
    await suite.call(
        "POST",
        "/identity/mini-program/sign-in",
        json={"code": stale, "policy_version": version},
        expect=401,
    )


async def test_a_mini_program_binds_the_phone_by_platform_code(suite: Suite) -> None:
    person = Person.new()
    suite.people.append(person)
    wechat_user = f"wx-user-{secrets.token_hex(4)}"
    user = bearer((await _mini_program_sign_in(suite, wechat_user))["access_token"])
    # the gateway lets the user on once it learns the agreement made at sign-in
    await suite.eventually("GET", "/orders/cart/shares", lambda _: True, headers=user)
    code = await suite.platform_code(wechat_user, phone=person.phone)
    bound = await suite.call(
        "POST", "/identity/mini-program/phone", headers=user, json={"code": code}
    )
    assert bound["phone"] == person.phone
    me = await suite.call("GET", "/identity/accounts/me", headers=user)
    assert me["phone"] == person.phone
    await suite.eventually(
        "GET",
        "/consent/ledger/me?limit=100",
        lambda page: any(
            entry["action"] == "write"
            and entry["purpose"] == "account"
            and "user.contact.phone_number" in [c["id"] for c in entry["categories"]]
            for entry in page["entries"]
        ),
        headers=user,
    )


async def test_logout_drops_the_session_key_and_deletion_the_platform_identity(
    suite: Suite,
) -> None:
    signed_in = await _mini_program_sign_in(suite, f"wx-user-{secrets.token_hex(4)}")
    user = bearer(signed_in["access_token"])
    account_id = jwt.get_unverified_claims(signed_in["access_token"])["sub"]
    query = "SELECT session_key_encrypted FROM mini_program_identity WHERE account_id = $1"
    [row] = await suite.sql("identity", query, account_id)
    assert row["session_key_encrypted"]
    await suite.call(
        "POST",
        "/identity/logout",
        headers=user,
        json={"refresh_token": signed_in["refresh_token"]},
        expect=204,
    )
    [row] = await suite.sql("identity", query, account_id)
    assert row["session_key_encrypted"] is None

    again = await _mini_program_sign_in(suite, f"wx-user-{secrets.token_hex(4)}")
    user = bearer(again["access_token"])
    account_id = jwt.get_unverified_claims(again["access_token"])["sub"]
    await suite.call(
        "POST", "/consent/rights-requests", headers=user, json={"kind": "deletion"}, expect=202
    )
    for _ in range(100):  # identity answers the request once it reads it from Kafka
        if not await suite.sql("identity", query, account_id):
            break
        await asyncio.sleep(0.3)
    assert await suite.sql("identity", query, account_id) == []


async def test_the_privacy_guide_follows_the_policy_in_force_and_the_catalogue(
    suite: Suite,
) -> None:
    guide = await suite.call("GET", "/consent/mini-program/privacy-guide")
    lists = await suite.call("GET", "/consent/lists")
    assert guide["policy_version"] == lists["policy_version"] == await _policy_version(suite)
    assert guide["list_version"] == lists["number"]
    assert guide["requiredPrivateInfos"] == ["chooseAddress", "getLocation"]
    items = {item["category"]: item for item in guide["items"]}
    phone = items["user.contact.phone_number"]
    assert phone["interfaces"] == ["getPhoneNumber"]
    assert "account" in [purpose["id"] for purpose in phone["purposes"]]
    assert items["user.location.precise"]["sensitive"] is True
    assert "location" in [p["id"] for p in items["user.location.precise"]["purposes"]]
    page = await suite.client.get("/consent/mini-program/privacy-guide.html")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert f"policy version {guide['policy_version']}" in page.text


async def _alipay_sign_in(suite: Suite, code: str, *, expect: int = 200) -> dict[str, Any]:
    answer: dict[str, Any] = await suite.call(
        "POST",
        "/identity/mini-program/sign-in",
        json={
            "platform": "alipay",
            "code": code,
            "policy_version": await _policy_version(suite),
        },
        expect=expect,
    )
    return answer


@pytest.mark.obligation("OB-1-1")
async def test_an_alipay_mini_program_signs_in_with_the_auth_code(suite: Suite) -> None:
    alipay_user = f"ali-user-{secrets.token_hex(4)}"
    first = await _alipay_sign_in(suite, await suite.alipay_code(alipay_user))
    assert first["new_account"] is True
    claims = jwt.get_unverified_claims(first["access_token"])
    assert claims["client_type"] == "mini_program"
    user = bearer(first["access_token"])
    me = await suite.call("GET", "/identity/accounts/me", headers=user)
    assert me["phone"] is None
    again = await _alipay_sign_in(suite, await suite.alipay_code(alipay_user))
    assert again["new_account"] is False
    assert jwt.get_unverified_claims(again["access_token"])["sub"] == claims["sub"]
    # the same name on WeChat is another person's platform id: another account
    wechat = await _mini_program_sign_in(suite, alipay_user)
    assert jwt.get_unverified_claims(wechat["access_token"])["sub"] != claims["sub"]

    # the user id is stored as a blind index and ciphertext, the access token encrypted
    query = (
        "SELECT platform, openid_encrypted, session_key_encrypted FROM mini_program_identity "
        "WHERE account_id = $1"
    )
    [row] = await suite.sql("identity", query, claims["sub"])
    assert row["platform"] == "alipay"
    async with httpx.AsyncClient(base_url=suite.platform_url) as platform:
        issued = (await platform.get("/stand-in/issued")).json()["session_keys"]
    stored = f"{row['openid_encrypted']} {row['session_key_encrypted']}"
    assert row["session_key_encrypted"]
    assert not [token for token in issued if token in stored]
    await suite.call(
        "POST",
        "/identity/logout",
        headers=bearer(again["access_token"]),
        json={"refresh_token": again["refresh_token"]},
        expect=204,
    )
    [row] = await suite.sql("identity", query, claims["sub"])
    assert row["session_key_encrypted"] is None


async def test_an_alipay_code_reused_expired_or_of_another_app_is_refused(
    suite: Suite,
) -> None:
    code = await suite.alipay_code(f"ali-user-{secrets.token_hex(4)}")
    await _alipay_sign_in(suite, code)
    replayed = await _alipay_sign_in(suite, code, expect=401)
    assert replayed["type"].endswith("/platform-code-rejected")
    stale = await suite.alipay_code(f"ali-user-{secrets.token_hex(4)}")
    async with httpx.AsyncClient(base_url=suite.platform_url) as platform:
        assert (await platform.post(f"/stand-in/codes/{stale}/expire")).status_code == 204
    expired = await _alipay_sign_in(suite, stale, expect=401)
    assert expired["type"].endswith("/platform-code-rejected")
    foreign = await suite.alipay_code(f"ali-user-{secrets.token_hex(4)}", appid=OTHER_ALIPAY_APP_ID)
    other_app = await _alipay_sign_in(suite, foreign, expect=401)
    assert other_app["type"].endswith("/platform-code-rejected")
    # a WeChat code is no Alipay code
    wechat_code = await suite.platform_code(f"ali-user-{secrets.token_hex(4)}")
    crossed = await _alipay_sign_in(suite, wechat_code, expect=401)
    assert crossed["type"].endswith("/platform-code-rejected")
