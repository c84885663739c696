"""The mini-program platform, behind one adapter (built as the real-name authority is,
see ``services.identity.verification.authority``).

- :class:`MiniProgramPlatform` is the protocol: ``exchange_login_code(code)`` answers the
  platform's :class:`PlatformSession` for the code ``wx.login`` gave the mini-program;
  ``exchange_phone_code(code)`` the phone number for the code ``getPhoneNumber`` gave it.
  A code the platform refuses (unknown, used, expired, of another app) raises
  :class:`PlatformCodeRejected`; a platform that cannot answer
  :class:`~services.identity.verification.authority.ProviderUnavailable`.
- :class:`WeChatPlatform` speaks WeChat's server API over HTTP(S) (``/sns/jscode2session``,
  ``/cgi-bin/token``, ``/wxa/business/getuserphonenumber``) with the app's id and secret;
  ``make run`` and the tests point it at the stand-in platform (``deploy/mini_platform``).
- :class:`AlipayPlatform` speaks Alipay's open API gateway (``alipay.system.oauth.token``:
  the ``my.getAuthCode`` code -> ``user_id`` and ``access_token``), requests signed RSA2
  with the app's private key when one is set, answers verified with Alipay's public key
  when one is set (the ``sign`` over the answer's JSON member exactly as sent: a forged or
  altered answer cannot sign anyone in); the ``user_id`` plays the openid's part and the
  ``access_token`` the ``session_key``'s. It has no phone-number exchange here.
- :func:`platform_from_settings` builds the WeChat one from ``IDENTITY_WECHAT_*``,
  :func:`platforms_from_settings` every platform (``IDENTITY_ALIPAY_*`` too) by name.

The ``session_key`` (and Alipay's access token) is a secret between the platform and
identity: no adapter logs it, nor a code, an openid or a phone number (logs carry status
and error codes only).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Final, Protocol

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from kit.errors import DomainError
from services.identity.config import Settings
from services.identity.verification.authority import ProviderUnavailable

__all__ = [
    "AlipayPlatform",
    "MiniProgramPlatform",
    "PlatformCodeRejected",
    "PlatformSession",
    "WeChatPlatform",
    "platform_from_settings",
    "platforms_from_settings",
]

logger = logging.getLogger("services.identity.mini_program.platform")

#: WeChat's error codes for a code it will not exchange (invalid, used, of another app,
#: risky user): the caller's code is refused; any other error means the platform failed.
REFUSED_CODES: Final = frozenset({40029, 40163, 40226})
ACCESS_TOKEN_EXPIRED: Final = frozenset({40001, 42001})
#: Alipay's ``sub_code`` for an auth code it will not exchange (unknown, used, expired,
#: of another app): any other error means the platform failed.
ALIPAY_REFUSED: Final = frozenset(
    {"isv.code-invalid", "isv.code-expired", "isv.code-used", "isv.invalid-app-id"}
)
ALIPAY_METHOD: Final = "alipay.system.oauth.token"
ALIPAY_ANSWER: Final = "alipay_system_oauth_token_response"
ALIPAY_ERROR: Final = "error_response"
BEIJING: Final = timezone(timedelta(hours=8))


class PlatformCodeRejected(DomainError):
    """The platform refused the code (unknown, used, expired or issued to another app)."""

    status, code, title = 401, "platform-code-rejected", "Platform code rejected"


@dataclass(frozen=True)
class PlatformSession:
    openid: str
    unionid: str | None
    session_key: str = field(repr=False)


class MiniProgramPlatform(Protocol):
    platform: str
    app_id: str

    async def exchange_login_code(self, code: str) -> PlatformSession: ...

    async def exchange_phone_code(self, code: str) -> str: ...


class WeChatPlatform:
    platform = "wechat"

    def __init__(
        self,
        url: str,
        *,
        app_id: str,
        app_secret: str,
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.app_id = app_id
        self._secret = app_secret
        self.timeout_s = timeout_s
        self._transport = transport
        self._access_token: tuple[str, float] | None = None

    def __repr__(self) -> str:  # never the secret
        return f"WeChatPlatform(url={self.url!r}, app_id={self.app_id!r})"

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        async with httpx.AsyncClient(transport=self._transport, timeout=self.timeout_s) as client:
            try:
                response = await client.request(method, f"{self.url}{path}", **kwargs)
            except httpx.TransportError as exc:
                logger.warning("platform call %s failed: %s", path, type(exc).__name__)
                raise ProviderUnavailable("the mini-program platform did not answer") from exc
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code != 200 or not isinstance(payload, dict):
            logger.warning("platform call %s answered %d", path, response.status_code)
            raise ProviderUnavailable("the mini-program platform gave no usable answer")
        return payload

    @staticmethod
    def _refused(path: str, payload: dict[str, Any]) -> int:
        errcode = payload.get("errcode", 0)
        errcode = errcode if isinstance(errcode, int) else -1
        if errcode:
            logger.info("platform call %s: errcode %d", path, errcode)
        return errcode

    async def exchange_login_code(self, code: str) -> PlatformSession:
        path = "/sns/jscode2session"
        payload = await self._call(
            "GET",
            path,
            params={
                "appid": self.app_id,
                "secret": self._secret,
                "js_code": code,
                "grant_type": "authorization_code",
            },
        )
        errcode = self._refused(path, payload)
        if errcode in REFUSED_CODES:
            raise PlatformCodeRejected("the platform refused the login code")
        openid, session_key = payload.get("openid"), payload.get("session_key")
        unionid = payload.get("unionid")
        if errcode or not isinstance(openid, str) or not isinstance(session_key, str):
            raise ProviderUnavailable("the mini-program platform could not exchange the code")
        if not openid or not session_key or len(openid) > 128:
            raise ProviderUnavailable("the mini-program platform gave a malformed answer")
        return PlatformSession(
            openid=openid,
            unionid=unionid if isinstance(unionid, str) and unionid else None,
            session_key=session_key,
        )

    async def _token(self, *, fresh: bool = False) -> str:
        if not fresh and self._access_token and self._access_token[1] > time.monotonic():
            return self._access_token[0]
        path = "/cgi-bin/token"
        payload = await self._call(
            "GET",
            path,
            params={
                "grant_type": "client_credential",
                "appid": self.app_id,
                "secret": self._secret,
            },
        )
        token, expires_in = payload.get("access_token"), payload.get("expires_in", 7200)
        if self._refused(path, payload) or not isinstance(token, str) or not token:
            raise ProviderUnavailable("the mini-program platform gave no access token")
        ttl = expires_in if isinstance(expires_in, int) else 7200
        self._access_token = (token, time.monotonic() + max(60, ttl - 300))
        return token

    async def exchange_phone_code(self, code: str) -> str:
        path = "/wxa/business/getuserphonenumber"
        for fresh in (False, True):
            token = await self._token(fresh=fresh)
            payload = await self._call(
                "POST", path, params={"access_token": token}, json={"code": code}
            )
            errcode = self._refused(path, payload)
            if errcode in ACCESS_TOKEN_EXPIRED and not fresh:
                continue
            if errcode in REFUSED_CODES:
                raise PlatformCodeRejected("the platform refused the phone-number code")
            info = payload.get("phone_info")
            number = info.get("purePhoneNumber") if isinstance(info, dict) else None
            country = info.get("countryCode") if isinstance(info, dict) else None
            if errcode or not isinstance(number, str) or str(country) != "86":
                raise ProviderUnavailable("the mini-program platform gave no mainland number")
            return number
        raise ProviderUnavailable("the mini-program platform refused the access token")


class AlipayPlatform:
    platform = "alipay"

    def __init__(
        self,
        url: str,
        *,
        app_id: str,
        private_key: str,
        timeout_s: float,
        alipay_public_key: str = "",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self.app_id = app_id
        self._key: rsa.RSAPrivateKey | None = None
        if private_key:
            key = serialization.load_pem_private_key(private_key.encode(), password=None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ValueError("the Alipay app key must be an RSA private key")
            self._key = key
        self._alipay_key: rsa.RSAPublicKey | None = None
        if alipay_public_key:
            public = serialization.load_pem_public_key(alipay_public_key.encode())
            if not isinstance(public, rsa.RSAPublicKey):
                raise ValueError("Alipay's public key must be an RSA public key")
            self._alipay_key = public
        self.timeout_s = timeout_s
        self._transport = transport

    def __repr__(self) -> str:  # never the key
        return f"AlipayPlatform(url={self.url!r}, app_id={self.app_id!r})"

    def _signed(self, params: dict[str, str]) -> dict[str, str]:
        """The common parameters, signed RSA2 (SHA256withRSA over the sorted ``k=v`` pairs)
        when the app has a key; the stand-in takes unsigned requests."""
        params = {
            **params,
            "app_id": self.app_id,
            "method": ALIPAY_METHOD,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": datetime.now(BEIJING).strftime("%Y-%m-%d %H:%M:%S"),
            "version": "1.0",
        }
        if self._key is not None:
            content = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if v)
            signature = self._key.sign(content.encode(), padding.PKCS1v15(), hashes.SHA256())
            params["sign"] = base64.b64encode(signature).decode()
        return params

    async def exchange_login_code(self, code: str) -> PlatformSession:
        params = self._signed({"grant_type": "authorization_code", "code": code})
        async with httpx.AsyncClient(transport=self._transport, timeout=self.timeout_s) as client:
            try:
                response = await client.post(self.url, data=params)
            except httpx.TransportError as exc:
                logger.warning("alipay %s failed: %s", ALIPAY_METHOD, type(exc).__name__)
                raise ProviderUnavailable("the mini-program platform did not answer") from exc
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code != 200 or not isinstance(payload, dict):
            logger.warning("alipay %s answered %d", ALIPAY_METHOD, response.status_code)
            raise ProviderUnavailable("the mini-program platform gave no usable answer")
        if self._alipay_key is not None and not self._signed_by_alipay(response.text, payload):
            logger.warning("alipay %s answer not signed by Alipay's key", ALIPAY_METHOD)
            raise ProviderUnavailable("the mini-program platform's answer is not signed")
        error = payload.get(ALIPAY_ERROR)
        if isinstance(error, dict):
            sub_code = str(error.get("sub_code", ""))
            logger.info("alipay %s: %s %s", ALIPAY_METHOD, error.get("code"), sub_code[:64])
            if sub_code in ALIPAY_REFUSED:
                raise PlatformCodeRejected("the platform refused the login code")
            raise ProviderUnavailable("the mini-program platform could not exchange the code")
        answer = payload.get(ALIPAY_ANSWER)
        user_id = answer.get("user_id") if isinstance(answer, dict) else None
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(user_id, str) or not isinstance(token, str):
            raise ProviderUnavailable("the mini-program platform gave a malformed answer")
        if not user_id or not token or len(user_id) > 128:
            raise ProviderUnavailable("the mini-program platform gave a malformed answer")
        return PlatformSession(openid=user_id, unionid=None, session_key=token)

    def _signed_by_alipay(self, text: str, payload: dict[str, Any]) -> bool:
        """Whether ``sign`` is Alipay's RSA2 signature over the answer's (or the error's)
        JSON member exactly as it stands in the body."""
        assert self._alipay_key is not None
        signature = payload.get("sign")
        member = ALIPAY_ANSWER if ALIPAY_ANSWER in payload else ALIPAY_ERROR
        signed = _raw_member(text, member)
        if not isinstance(signature, str) or signed is None:
            return False
        try:
            self._alipay_key.verify(
                base64.b64decode(signature, validate=True),
                signed.encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True

    async def exchange_phone_code(self, code: str) -> str:
        raise ProviderUnavailable("binding the phone by Alipay code is not offered")


def _raw_member(text: str, name: str) -> str | None:
    """The JSON text of the top-level member ``name`` of the object ``text``, as sent; None
    when ``text`` is not one object or names the member twice (which one would count?)."""
    decoder, blank = json.JSONDecoder(), " \t\r\n"

    def skip(at: int) -> int:
        while at < len(text) and text[at] in blank:
            at += 1
        return at

    found: list[str] = []
    at = skip(0)
    if not text.startswith("{", at):
        return None
    at = skip(at + 1)
    try:
        while not text.startswith("}", at):
            key, at = decoder.raw_decode(text, at)
            at = skip(at)
            if not text.startswith(":", at):
                return None
            start = skip(at + 1)
            _, at = decoder.raw_decode(text, start)
            if key == name:
                found.append(text[start:at])
            at = skip(at)
            if text.startswith(",", at):
                at = skip(at + 1)
            elif not text.startswith("}", at):
                return None
    except ValueError:
        return None
    return found[0] if len(found) == 1 else None


def platforms_from_settings(settings: Settings) -> dict[str, MiniProgramPlatform]:
    """Every mini-program platform identity serves, by the name a sign-in gives."""
    key = settings.alipay_app_private_key.get_secret_value()
    if settings.environment == "production" and not (key and settings.alipay_public_key):
        raise ValueError(
            "the stand-in Alipay platform cannot serve production: set "
            "IDENTITY_ALIPAY_GATEWAY_URL, IDENTITY_ALIPAY_APP_ID, "
            "IDENTITY_ALIPAY_APP_PRIVATE_KEY and IDENTITY_ALIPAY_PUBLIC_KEY"
        )
    alipay = AlipayPlatform(
        settings.alipay_gateway_url,
        app_id=settings.alipay_app_id,
        private_key=key,
        timeout_s=settings.alipay_timeout_s,
        alipay_public_key=settings.alipay_public_key,
    )
    return {"wechat": platform_from_settings(settings), "alipay": alipay}


def platform_from_settings(settings: Settings) -> MiniProgramPlatform:
    """The WeChat platform ``IDENTITY_WECHAT_*`` names (the stand-in's by default, which a
    production start refuses: its secret is public)."""
    secret = settings.wechat_app_secret.get_secret_value()
    if settings.environment == "production" and secret == "standin-app-secret":
        raise ValueError(
            "the stand-in mini-program platform cannot serve production: set "
            "IDENTITY_WECHAT_API_URL, IDENTITY_WECHAT_APP_ID and IDENTITY_WECHAT_APP_SECRET"
        )
    return WeChatPlatform(
        settings.wechat_api_url,
        app_id=settings.wechat_app_id,
        app_secret=secret,
        timeout_s=settings.wechat_timeout_s,
    )
