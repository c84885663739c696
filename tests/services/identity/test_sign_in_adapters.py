"""The adapters of issue 26 and what identity keeps of a mini-program user:

- the WeChat platform adapter against the stand-in platform (``deploy/mini_platform``):
  the session it gives, the codes it refuses (used, expired, of another app), a platform
  that is down or answers nonsense (503, nothing decided), the phone number by code;
- the HTTP SMS sender: what it posts, a provider failing (503), nothing logged of the
  phone or the code;
- the access export holds the platform identity (the openid, the session key only as set).
"""

from __future__ import annotations

import base64
import json
import logging
from urllib.parse import parse_qsl

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from jose import jwt

from deploy.mini_platform.main import create_app as create_platform
from kit.payment_signature import public_key_pem
from services.identity.mini_program.platform import (
    AlipayPlatform,
    PlatformCodeRejected,
    WeChatPlatform,
)
from services.identity.sms.sender import HttpSmsSender
from services.identity.verification.authority import ProviderUnavailable
from tests.services.identity.conftest import Identity
from tests.services.identity.test_rights import _trusting, service_headers

APP_ID, SECRET, OTHER_APP_ID = "wx0standin0000001", "standin-app-secret", "wx0otherapp000002"


@pytest.fixture
def platform_app() -> httpx.ASGITransport:
    return httpx.ASGITransport(app=create_platform())


def wechat(transport: httpx.AsyncBaseTransport, secret: str = SECRET) -> WeChatPlatform:
    return WeChatPlatform(
        "http://platform", app_id=APP_ID, app_secret=secret, timeout_s=5.0, transport=transport
    )


async def phone_code(transport: httpx.ASGITransport, user: str, **extra: str) -> str:
    async with httpx.AsyncClient(transport=transport, base_url="http://platform") as phone:
        path = "/stand-in/getPhoneNumber" if "phone" in extra else "/stand-in/wx.login"
        answer = await phone.post(path, json={"appid": APP_ID, "user": user, **extra})
        assert answer.status_code == 200, answer.text
        code: str = answer.json()["code"]
        return code


async def test_a_login_code_gives_one_stable_openid_and_a_fresh_session_key(
    platform_app: httpx.ASGITransport,
) -> None:
    adapter = wechat(platform_app)
    first = await adapter.exchange_login_code(await phone_code(platform_app, "alice"))
    again = await adapter.exchange_login_code(await phone_code(platform_app, "alice"))
    other = await adapter.exchange_login_code(await phone_code(platform_app, "bob"))
    assert first.openid == again.openid != other.openid
    assert first.session_key != again.session_key
    assert first.session_key not in repr(first)


async def test_used_expired_and_other_app_codes_are_refused(
    platform_app: httpx.ASGITransport,
) -> None:
    adapter = wechat(platform_app)
    used = await phone_code(platform_app, "carol")
    await adapter.exchange_login_code(used)
    with pytest.raises(PlatformCodeRejected):
        await adapter.exchange_login_code(used)
    expired = await phone_code(platform_app, "carol")
    async with httpx.AsyncClient(transport=platform_app, base_url="http://platform") as phone:
        assert (await phone.post(f"/stand-in/codes/{expired}/expire")).status_code == 204
        foreign = (
            await phone.post("/stand-in/wx.login", json={"appid": OTHER_APP_ID, "user": "carol"})
        ).json()["code"]
    for code in (expired, foreign):
        with pytest.raises(PlatformCodeRejected):
            await adapter.exchange_login_code(code)


async def test_a_wrong_secret_a_dead_or_confused_platform_decide_nothing(
    platform_app: httpx.ASGITransport,
) -> None:
    code = await phone_code(platform_app, "dave")
    with pytest.raises(ProviderUnavailable):  # the operator's mistake, not the user's code
        await wechat(platform_app, secret="wrong").exchange_login_code(code)

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(ProviderUnavailable):
        await wechat(httpx.MockTransport(down)).exchange_login_code("abc")
    nonsense = httpx.MockTransport(lambda request: httpx.Response(200, text="<html>"))
    with pytest.raises(ProviderUnavailable):
        await wechat(nonsense).exchange_login_code("abc")


async def test_a_phone_code_gives_the_number_once(platform_app: httpx.ASGITransport) -> None:
    adapter = wechat(platform_app)
    code = await phone_code(platform_app, "erin", phone="13700001111")
    assert await adapter.exchange_phone_code(code) == "13700001111"
    with pytest.raises(PlatformCodeRejected):
        await adapter.exchange_phone_code(code)


async def test_the_sms_sender_posts_the_code_and_logs_neither_it_nor_the_phone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    received: list[httpx.Request] = []

    def provider(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(200 if len(received) == 1 else 500)

    sender = HttpSmsSender(
        "http://sms/send",
        client_id="shop",
        client_secret="sms-secret",
        timeout_s=5.0,
        transport=httpx.MockTransport(provider),
    )
    await sender.send_code(phone="13900001234", code="482913", ttl_s=300)
    with pytest.raises(ProviderUnavailable):
        await sender.send_code(phone="13900001234", code="551177", ttl_s=300)
    assert json.loads(received[0].content) == {
        "phone": "13900001234",
        "template": "sign_in_code",
        "params": {"code": "482913", "minutes": "5"},
    }
    assert received[0].headers["authorization"].startswith("Basic ")
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert "500" in logged
    assert "13900001234" not in logged and "482913" not in logged and "551177" not in logged
    assert "sms-secret" not in repr(sender)


async def test_the_export_holds_the_platform_identity(
    identity: Identity, platform_app: httpx.ASGITransport
) -> None:
    identity.app.state.mini_program_platforms["wechat"] = wechat(platform_app)
    signed_in = await identity.client.post(
        "/mini-program/sign-in",
        json={"code": await phone_code(platform_app, "frank"), "policy_version": "2026.1"},
    )
    assert signed_in.status_code == 200, signed_in.text
    again = await wechat(platform_app).exchange_login_code(await phone_code(platform_app, "frank"))
    openid, unionid = again.openid, again.unionid
    account_id = jwt.get_unverified_claims(signed_in.json()["access_token"])["sub"]
    await _trusting(identity)
    export = await identity.client.get(
        f"/rights/export/{account_id}", headers=service_headers(identity)
    )
    assert export.status_code == 200, export.text
    [platform_identity] = export.json()["platform_identities"]
    assert platform_identity["platform"] == "wechat" and platform_identity["app_id"] == APP_ID
    assert platform_identity["fields"]["openid"]["value"] == openid
    assert platform_identity["fields"]["openid"]["category"] == "user.account.platform_id"
    assert platform_identity["fields"]["unionid"]["value"] == unionid
    assert platform_identity["fields"]["session_key"]["value"] == "set (never shown)"


async def test_alipay_exchanges_the_auth_code_signed_and_logs_no_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    received: list[dict[str, str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        form = dict(parse_qsl(request.content.decode()))
        received.append(form)
        if form["code"] == "used-code":
            error = {"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.code-used"}
            return httpx.Response(200, json={"error_response": error})
        token = {"user_id": "2088000000000001", "access_token": "authusrBsecret"}
        return httpx.Response(200, json={"alipay_system_oauth_token_response": token})

    alipay = AlipayPlatform(
        "https://alipay.test/gateway.do",
        app_id="2021000000000009",
        private_key=pem,
        timeout_s=5.0,
        transport=httpx.MockTransport(answer),
    )
    caplog.set_level(logging.DEBUG)
    session = await alipay.exchange_login_code("good-code")
    assert (session.openid, session.session_key) == ("2088000000000001", "authusrBsecret")
    with pytest.raises(PlatformCodeRejected):
        await alipay.exchange_login_code("used-code")
    form = received[0]
    assert (form["method"], form["grant_type"], form["app_id"]) == (
        "alipay.system.oauth.token",
        "authorization_code",
        "2021000000000009",
    )
    signed = "&".join(f"{k}={v}" for k, v in sorted(form.items()) if k != "sign")
    key.public_key().verify(
        base64.b64decode(form["sign"]), signed.encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert "isv.code-used" in logged
    assert "authusrBsecret" not in logged and "good-code" not in logged
    assert "2088000000000001" not in logged and "PRIVATE" not in repr(alipay)


async def test_an_alipay_answer_counts_only_when_alipay_signed_it() -> None:
    alipay_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forger_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def signed_body(member: str, *, key: rsa.RSAPrivateKey, sent: str | None = None) -> bytes:
        """Alipay's layout: the member's JSON as sent, and ``sign`` over exactly that."""
        signature = key.sign(member.encode(), padding.PKCS1v15(), hashes.SHA256())
        body = sent if sent is not None else member
        sign = base64.b64encode(signature).decode()
        return f'{{"alipay_system_oauth_token_response": {body}, "sign": "{sign}"}}'.encode()

    genuine = '{"user_id":"2088000000000001","access_token":"authusrB1"}'
    forged = '{"user_id":"2088000000000666","access_token":"authusrB1"}'
    answers = {
        "genuine": signed_body(genuine, key=alipay_key),
        "forger": signed_body(forged, key=forger_key),
        "altered": signed_body(genuine, key=alipay_key, sent=forged),
        "unsigned": json.dumps(
            {"alipay_system_oauth_token_response": json.loads(genuine)}
        ).encode(),
    }

    def answer(request: httpx.Request) -> httpx.Response:
        code = dict(parse_qsl(request.content.decode()))["code"]
        return httpx.Response(200, content=answers[code], headers={"content-type": "text/json"})

    platform = AlipayPlatform(
        "https://alipay.test/gateway.do",
        app_id="2021000000000009",
        private_key="",
        timeout_s=5.0,
        alipay_public_key=public_key_pem(alipay_key),
        transport=httpx.MockTransport(answer),
    )
    session = await platform.exchange_login_code("genuine")
    assert session.openid == "2088000000000001"
    for code in ("forger", "altered", "unsigned"):
        with pytest.raises(ProviderUnavailable):
            await platform.exchange_login_code(code)
