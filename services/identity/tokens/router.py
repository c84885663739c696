"""Token endpoints: the public JWKS and issuer metadata, login, refresh, logout, and the
OAuth2 token endpoint for partners and internal service clients (``svc_...``)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any
from urllib.parse import unquote_plus

from fastapi import APIRouter, Cookie, FastAPI, Form, Header, Request, Response, status
from fastapi.responses import JSONResponse

from kit.app import ContextDep
from kit.auth import Principal, Scope, require
from kit.db import SessionDep
from kit.http_cache import NOT_MODIFIED_RESPONSE, cacheable, json_answer
from services.identity.accounts.service import authenticate
from services.identity.dependencies import ClientAddress, SettingsDep
from services.identity.partners.service import client_credentials_token
from services.identity.service_clients.service import (
    is_service_client_id,
    service_client_token,
)
from services.identity.tokens import service
from services.identity.tokens.schemas import (
    IssuerMetadata,
    Jwks,
    Login,
    OAuthErrorAnswer,
    RefreshRequest,
    TokenResponse,
)
from services.identity.tokens.service import (
    InvalidClient,
    InvalidRequest,
    OAuthError,
    UnsupportedGrantType,
)

router = APIRouter(tags=["tokens"])

TOKEN_PATH = "/oauth2/token"
CLIENT_BASIC = "clientSecretBasic"

DEVICE_COOKIE = "device"


@router.get(
    "/.well-known/jwks.json",
    response_model=Jwks,
    summary="Public signing keys",
    description="Cached for a minute; its `ETag` answers 304 to `If-None-Match` (a key "
    "rotation changes it).",
    responses=NOT_MODIFIED_RESPONSE,
)
async def jwks(session: SessionDep, settings: SettingsDep, request: Request) -> Response:
    keys = await service.published_keys(session, settings=settings)
    answer = json_answer(Jwks(keys=keys.to_jwks()["keys"]))
    return cacheable(request, answer, cache_control="public, max-age=60")


@router.get(
    "/.well-known/oauth-authorization-server",
    response_model=IssuerMetadata,
    response_model_exclude_none=True,
    summary="Issuer metadata (RFC 8414)",
    description="What the token endpoint really does, at the issuer's public address "
    "(`auth_issuer`: the gateway's origin and `/identity`).",
)
async def issuer_metadata(settings: SettingsDep) -> IssuerMetadata:
    return service.issuer_metadata(settings)


@router.post(
    "/login",
    response_model=TokenResponse,
    summary="Log in with phone and password",
    description="Sets the `device` cookie: sent back with later logins, it keeps this "
    "device's way in while the account is locked for devices it never signed in on.",
)
async def login(
    *,
    body: Login,
    session: SessionDep,
    context: ContextDep,
    settings: SettingsDep,
    address: ClientAddress,
    response: Response,
    device: Annotated[str | None, Cookie(max_length=200)] = None,
) -> TokenResponse:
    signed_in = await authenticate(
        session,
        cipher=context.cipher,
        settings=settings,
        phone=body.phone,
        password=body.password,
        client_address=address,
        cookie=device,
        events=context.events,
    )
    response.headers.update(service.TOKEN_ANSWER_HEADERS)
    response.set_cookie(
        DEVICE_COOKIE,
        signed_in.device_cookie,
        max_age=settings.login_device_cookie_days * 86_400,
        path="/",
        secure=True,
        httponly=True,
        samesite="strict",
    )
    return await service.issue_account_tokens(
        session,
        cipher=context.cipher,
        settings=settings,
        account=signed_in.account,
        client_type=body.client_type,
    )


@router.post(
    "/token/refresh",
    response_model=TokenResponse,
    summary="Exchange a refresh token for new tokens (rotation)",
)
async def refresh(
    body: RefreshRequest,
    session: SessionDep,
    context: ContextDep,
    settings: SettingsDep,
    response: Response,
) -> TokenResponse:
    response.headers.update(service.TOKEN_ANSWER_HEADERS)
    return await service.refresh_tokens(
        session, cipher=context.cipher, settings=settings, refresh_token=body.refresh_token
    )


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke this login (its whole refresh-token family)",
)
async def logout(
    body: RefreshRequest,
    session: SessionDep,
    principal: Annotated[Principal, require(Scope.ACCOUNT_READ)],
) -> None:
    await service.log_out(session, refresh_token=body.refresh_token, account_id=principal.subject)


async def oauth_error_answer(request: Request, exc: Exception) -> JSONResponse:
    """The token endpoint's errors as RFC 6749 section 5.2 answers."""
    assert isinstance(exc, OAuthError)
    answer = OAuthErrorAnswer(error=exc.code, error_description=exc.detail)
    return JSONResponse(
        answer.model_dump(exclude_none=True),
        status_code=exc.status,
        headers={**service.TOKEN_ANSWER_HEADERS, **exc.headers},
    )


def token_endpoint_documented(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """``app.openapi`` without the 422 FastAPI adds to the token endpoint: it answers a bad
    request 400 with an RFC 6749 error (:func:`oauth_error_answer`), never 422. Its form
    can be read from HTTP Basic instead of the form, documented as a second scheme."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        documented = app.openapi_schema is not None
        spec: dict[str, Any] = build()
        if not documented:
            operation = spec["paths"][TOKEN_PATH]["post"]
            operation["responses"].pop("422", None)
            spec["components"]["securitySchemes"][CLIENT_BASIC] = {
                "type": "http",
                "scheme": "basic",
                "description": "client_secret_basic: the client id and secret (RFC 6749 2.3.1)",
            }
            # either scheme, or client_id and client_secret in the form (client_secret_post)
            operation["security"] = [{CLIENT_BASIC: []}, {}]
        return spec

    return openapi


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidClient("malformed basic credentials") from exc
    client_id, _, secret = decoded.partition(":")
    # RFC 6749 section 2.3.1: both are form-urlencoded before they are joined
    return unquote_plus(client_id), unquote_plus(secret)


def _client_credentials(
    authorization: str | None, client_id: str | None, client_secret: str | None
) -> tuple[str, str]:
    basic = _basic_credentials(authorization)
    if basic is not None and (client_id or client_secret):
        raise InvalidRequest("use one way of client authentication, not two")
    credentials = basic or ((client_id, client_secret) if client_id and client_secret else None)
    if credentials is None:
        raise InvalidClient("client credentials are required")
    return credentials


def _check_length(name: str, value: str | None, limit: int) -> None:
    if value is not None and len(value) > limit:
        raise InvalidRequest(f"{name} is longer than {limit} characters")


@router.post(
    TOKEN_PATH,
    response_model=TokenResponse,
    summary="OAuth2 client-credentials grant for partners and internal services",
    description="Errors are RFC 6749 section 5.2 answers (`error`, `error_description`), "
    "not problem+json: what OAuth 2.0 clients read.",
    responses={
        400: {"description": "RFC 6749 section 5.2 error", "model": OAuthErrorAnswer},
        401: {"description": "invalid_client (RFC 6749 section 5.2)", "model": OAuthErrorAnswer},
    },
)
async def partner_token(
    *,
    session: SessionDep,
    context: ContextDep,
    settings: SettingsDep,
    response: Response,
    grant_type: Annotated[str | None, Form()] = None,
    scope: Annotated[str | None, Form()] = None,
    client_id: Annotated[str | None, Form()] = None,
    client_secret: Annotated[str | None, Form()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> TokenResponse:
    # Checked here rather than by FastAPI: its 422 is no answer an OAuth client reads.
    if not grant_type:
        raise InvalidRequest("grant_type is required")
    if grant_type != "client_credentials":
        raise UnsupportedGrantType("only the client_credentials grant is supported")
    _check_length("scope", scope, 500)
    _check_length("client_id", client_id, 100)
    _check_length("client_secret", client_secret, 200)
    requester, secret = _client_credentials(authorization, client_id, client_secret)
    response.headers.update(service.TOKEN_ANSWER_HEADERS)
    if is_service_client_id(requester):
        return await service_client_token(
            session,
            cipher=context.cipher,
            settings=settings,
            client_id=requester,
            client_secret=secret,
            scope=scope,
        )
    return await client_credentials_token(
        session,
        cipher=context.cipher,
        settings=settings,
        client_id=requester,
        client_secret=secret,
        scope=scope,
        today=date.today(),
    )
