"""A stand-in mini-program platform for development and tests, shaped like WeChat's server
API (the part identity calls) plus what the platform does on the user's phone:

    uvicorn --factory deploy.mini_platform.main:create_app --port 8006

What the phone's mini-program gets from the platform (the stand-in's own routes):

- ``POST /stand-in/wx.login`` ``{"appid", "user"}``: a login code for the mini-program
  ``appid``, as ``wx.login`` gives one to the WeChat user ``user`` (any name: the same name
  is the same person, with the same openid in one app and the same unionid in all);
- ``POST /stand-in/getPhoneNumber`` ``{"appid", "user", "phone"}``: the one-time code
  ``getPhoneNumber`` gives once the user allows the app their (verified) number;
- ``POST /stand-in/codes/{code}/expire``: the code's five minutes are up;
- ``GET /stand-in/issued``: every session key handed out (what the tests' leak scans
  look for).

What identity calls, as on WeChat (errors as ``errcode``/``errmsg``):

- ``GET /sns/jscode2session?appid&secret&js_code&grant_type=authorization_code``:
  ``{"openid", "unionid", "session_key"}``; 40029 for a code unknown, expired or of
  another app, 40163 for a code used before, 40125 for a wrong secret;
- ``GET /cgi-bin/token?grant_type=client_credential&appid&secret``: an access token;
- ``POST /wxa/business/getuserphonenumber?access_token`` ``{"code"}``:
  ``{"errcode": 0, "phone_info": {"phoneNumber", "purePhoneNumber", "countryCode"}}``.

Alipay, the same way: ``POST /stand-in/my.getAuthCode`` ``{"appid", "user"}`` gives the
auth code ``my.getAuthCode`` gives the Alipay user ``user``, and identity calls
``POST /gateway.do`` (form ``app_id``, ``method=alipay.system.oauth.token``,
``grant_type=authorization_code``, ``code``; a ``sign`` is not checked):
``{"alipay_system_oauth_token_response": {"user_id", "access_token", ...}}`` or an
``error_response`` with ``sub_code`` ``isv.code-invalid`` (unknown, expired or of another
app) or ``isv.code-used``. Access tokens count as session keys in ``/stand-in/issued``.

Settings (environment): ``MINI_PLATFORM_APPS``, a JSON object of app id -> secret (two
apps by default, identity's stand-in app and another one), ``MINI_PLATFORM_CODE_TTL_S``
(300). Codes and tokens live in memory only; it logs no code, openid or number.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

INVALID_CODE = {"errcode": 40029, "errmsg": "invalid code"}
CODE_USED = {"errcode": 40163, "errmsg": "code been used"}
INVALID_SECRET = {"errcode": 40125, "errmsg": "invalid appsecret"}
INVALID_TOKEN = {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MINI_PLATFORM_", extra="ignore")

    apps: dict[str, str] = {
        "wx0standin0000001": "standin-app-secret",
        "wx0otherapp000002": "other-app-secret",
    }
    #: Alipay mini-programs by app id (identity's stand-in app and another one)
    alipay_apps: list[str] = ["2021000000000001", "2021000000000002"]
    code_ttl_s: int = Field(default=300, ge=1)


class LoginCodeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    appid: str = Field(min_length=1, max_length=64)
    user: str = Field(min_length=1, max_length=100)


class PhoneCodeRequest(LoginCodeRequest):
    phone: str = Field(pattern=r"^1[3-9]\d{9}$")


class PhoneCode(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=128)


@dataclass
class Code:
    kind: str  # "login" or "phone"
    appid: str
    user: str
    phone: str | None
    expires_at: float
    used: bool = False


@dataclass
class Platform:
    settings: Settings
    key: bytes
    codes: dict[str, Code]
    tokens: dict[str, tuple[str, float]]  # access token -> app id, expiry
    #: every session key handed out, for the tests' leak scans (``GET /stand-in/issued``)
    session_keys: list[str]

    def openid(self, appid: str, user: str) -> str:
        return "o" + hmac.new(self.key, f"{appid}:{user}".encode(), hashlib.sha256).hexdigest()[:27]

    def unionid(self, user: str) -> str:
        return "u" + hmac.new(self.key, f"union:{user}".encode(), hashlib.sha256).hexdigest()[:27]

    def alipay_user_id(self, user: str) -> str:
        digest = hmac.new(self.key, f"alipay:{user}".encode(), hashlib.sha256).digest()
        return "2088" + str(int.from_bytes(digest[:8], "big")).zfill(20)[-12:]

    def new_code(self, kind: str, appid: str, user: str, phone: str | None = None) -> str:
        known = self.settings.alipay_apps if kind == "alipay" else self.settings.apps
        if appid not in known:
            raise HTTPException(404, "no such mini-program")
        code = secrets.token_urlsafe(24)
        expires_at = time.monotonic() + self.settings.code_ttl_s
        self.codes[code] = Code(kind, appid, user, phone, expires_at)
        return code

    def take(self, code: str, kind: str, appid: str) -> Code | dict[str, Any]:
        found = self.codes.get(code)
        if found is None or found.kind != kind or found.appid != appid:
            return INVALID_CODE
        if found.used:
            return CODE_USED
        if found.expires_at <= time.monotonic():
            return INVALID_CODE
        found.used = True
        return found


router = APIRouter()


def _platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


@router.get("/readyz")
async def ready() -> dict[str, str]:
    return {"status": "ready"}


@router.post("/stand-in/wx.login")
async def wx_login(body: LoginCodeRequest, request: Request) -> dict[str, str]:
    return {"code": _platform(request).new_code("login", body.appid, body.user)}


@router.post("/stand-in/my.getAuthCode")
async def my_get_auth_code(body: LoginCodeRequest, request: Request) -> dict[str, str]:
    return {"code": _platform(request).new_code("alipay", body.appid, body.user)}


def _alipay_error(sub_code: str, sub_msg: str) -> dict[str, Any]:
    return {
        "error_response": {
            "code": "40002",
            "msg": "Invalid Arguments",
            "sub_code": sub_code,
            "sub_msg": sub_msg,
        }
    }


@router.post("/gateway.do")
async def alipay_gateway(request: Request) -> dict[str, Any]:
    platform = _platform(request)
    form = await request.form()
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    app_id = fields.get("app_id", "")
    if app_id not in platform.settings.alipay_apps:
        return _alipay_error("isv.invalid-app-id", "invalid app_id")
    if fields.get("method") != "alipay.system.oauth.token":
        return {"error_response": {"code": "40004", "msg": "Business Failed"}}
    if fields.get("grant_type") != "authorization_code":
        return _alipay_error("isv.grant-type-invalid", "invalid grant_type")
    taken = platform.take(fields.get("code", ""), "alipay", app_id)
    if taken == CODE_USED:
        return _alipay_error("isv.code-used", "auth code used")
    if not isinstance(taken, Code):
        return _alipay_error("isv.code-invalid", "invalid auth code")
    token = "authusrB" + secrets.token_hex(16)
    platform.session_keys.append(token)
    return {
        "alipay_system_oauth_token_response": {
            "user_id": platform.alipay_user_id(taken.user),
            "access_token": token,
            "expires_in": 1296000,
            "refresh_token": "authusrB" + secrets.token_hex(16),
            "re_expires_in": 2592000,
        },
        "sign": "stand-in",
    }


@router.post("/stand-in/getPhoneNumber")
async def get_phone_number(body: PhoneCodeRequest, request: Request) -> dict[str, str]:
    return {"code": _platform(request).new_code("phone", body.appid, body.user, body.phone)}


@router.get("/stand-in/issued")
async def issued(request: Request) -> dict[str, list[str]]:
    """Every session key handed out so far (what a leak scan looks for)."""
    return {"session_keys": list(_platform(request).session_keys)}


@router.post("/stand-in/codes/{code}/expire", status_code=204)
async def expire(code: str, request: Request) -> None:
    found = _platform(request).codes.get(code)
    if found is None:
        raise HTTPException(404, "no such code")
    found.expires_at = 0.0


@router.get("/sns/jscode2session")
async def jscode2session(
    request: Request,
    appid: Annotated[str, Query(max_length=64)],
    secret: Annotated[str, Query(max_length=200)],
    js_code: Annotated[str, Query(max_length=200)],
    grant_type: Annotated[str, Query(max_length=40)],
) -> dict[str, Any]:
    platform = _platform(request)
    expected = platform.settings.apps.get(appid)
    if expected is None or not hmac.compare_digest(expected, secret):
        return INVALID_SECRET
    if grant_type != "authorization_code":
        return {"errcode": 40002, "errmsg": "invalid grant_type"}
    taken = platform.take(js_code, "login", appid)
    if not isinstance(taken, Code):
        return taken
    session_key = secrets.token_urlsafe(16)
    platform.session_keys.append(session_key)
    return {
        "openid": platform.openid(appid, taken.user),
        "unionid": platform.unionid(taken.user),
        "session_key": session_key,
    }


@router.get("/cgi-bin/token")
async def access_token(
    request: Request,
    grant_type: Annotated[str, Query(max_length=40)],
    appid: Annotated[str, Query(max_length=64)],
    secret: Annotated[str, Query(max_length=200)],
) -> dict[str, Any]:
    platform = _platform(request)
    expected = platform.settings.apps.get(appid)
    if expected is None or not hmac.compare_digest(expected, secret):
        return INVALID_SECRET
    if grant_type != "client_credential":
        return {"errcode": 40002, "errmsg": "invalid grant_type"}
    token = secrets.token_urlsafe(32)
    platform.tokens[token] = (appid, time.monotonic() + 7200)
    return {"access_token": token, "expires_in": 7200}


@router.post("/wxa/business/getuserphonenumber")
async def user_phone_number(
    body: PhoneCode, request: Request, access_token: Annotated[str, Query(max_length=200)]
) -> dict[str, Any]:
    platform = _platform(request)
    holder = platform.tokens.get(access_token)
    if holder is None or holder[1] <= time.monotonic():
        return INVALID_TOKEN
    taken = platform.take(body.code, "phone", holder[0])
    if not isinstance(taken, Code):
        return taken
    assert taken.phone is not None
    return {
        "errcode": 0,
        "errmsg": "ok",
        "phone_info": {
            "phoneNumber": taken.phone,
            "purePhoneNumber": taken.phone,
            "countryCode": "86",
        },
    }


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(title="Stand-in mini-program platform", docs_url=None, redoc_url=None)
    app.state.platform = Platform(
        settings=settings or Settings(),
        key=secrets.token_bytes(32),
        codes={},
        tokens={},
        session_keys=[],
    )
    app.include_router(router)
    return app
