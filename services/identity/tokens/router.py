"""Token endpoints: the public JWKS and issuer metadata, login, refresh, logout, and the
OAuth2 token endpoint for partners and internal service clients (``svc_...``)."""

from __future__ import annotations

import base64
import binascii
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Cookie, Form, Header, Response, status

from kit.app import ContextDep
from kit.auth import ALLOWED_ALGORITHMS, Principal, Scope, require
from kit.db import SessionDep
from services.identity.accounts.service import authenticate
from services.identity.dependencies import ClientAddress, SettingsDep
from services.identity.partners.service import InvalidClient, client_credentials_token
from services.identity.service_clients.service import (
    is_service_client_id,
    service_client_token,
)
from services.identity.tokens import service
from services.identity.tokens.schemas import (
    IssuerMetadata,
    Jwks,
    Login,
    RefreshRequest,
    TokenResponse,
)

router = APIRouter(tags=["tokens"])

DEVICE_COOKIE = "device"


@router.get("/.well-known/jwks.json", response_model=Jwks, summary="Public signing keys")
async def jwks(session: SessionDep, settings: SettingsDep, response: Response) -> Jwks:
    response.headers["Cache-Control"] = "public, max-age=60"
    keys = await service.published_keys(session, settings=settings)
    return Jwks(keys=keys.to_jwks()["keys"])


@router.get(
    "/.well-known/oauth-authorization-server",
    response_model=IssuerMetadata,
    summary="Issuer metadata (RFC 8414)",
)
async def issuer_metadata(settings: SettingsDep) -> IssuerMetadata:
    return IssuerMetadata(
        issuer=settings.auth_issuer,
        jwks_uri=f"{settings.auth_issuer}/.well-known/jwks.json",
        token_endpoint=f"{settings.auth_issuer}/oauth2/token",
        grant_types_supported=["password", "refresh_token", "client_credentials"],
        token_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post"],
        scopes_supported=sorted(scope.value for scope in Scope),
        id_token_signing_alg_values_supported=list(ALLOWED_ALGORITHMS),
    )


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
    )
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
    body: RefreshRequest, session: SessionDep, context: ContextDep, settings: SettingsDep
) -> TokenResponse:
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


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        client_id, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidClient("malformed basic credentials") from exc
    return client_id, secret


@router.post(
    "/oauth2/token",
    response_model=TokenResponse,
    summary="OAuth2 client-credentials grant for partners and internal services",
)
async def partner_token(
    *,
    session: SessionDep,
    context: ContextDep,
    settings: SettingsDep,
    grant_type: Annotated[str, Form(pattern="^client_credentials$")],
    scope: Annotated[str | None, Form(max_length=500)] = None,
    client_id: Annotated[str | None, Form(max_length=100)] = None,
    client_secret: Annotated[str | None, Form(max_length=200)] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> TokenResponse:
    credentials = _basic_credentials(authorization) or (
        (client_id, client_secret) if client_id and client_secret else None
    )
    if credentials is None:
        raise InvalidClient("client credentials are required")
    if is_service_client_id(credentials[0]):
        return await service_client_token(
            session,
            cipher=context.cipher,
            settings=settings,
            client_id=credentials[0],
            client_secret=credentials[1],
            scope=scope,
        )
    return await client_credentials_token(
        session,
        cipher=context.cipher,
        settings=settings,
        client_id=credentials[0],
        client_secret=credentials[1],
        scope=scope,
        today=date.today(),
    )
