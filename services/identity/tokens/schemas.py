"""Token API shapes (OAuth2 token response, RFC 8414 issuer metadata)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ClientType = Literal["app", "web", "mini_program"]


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(min_length=1, max_length=20)
    password: str = Field(min_length=1, max_length=128)
    client_type: ClientType = "app"


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=200)


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    scope: str
    refresh_token: str | None = None


class Jwks(BaseModel):
    keys: list[dict[str, str]]


class OAuthErrorAnswer(BaseModel):
    """The token endpoint's error answer (RFC 6749 section 5.2)."""

    error: Literal[
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
    ]
    error_description: str | None = None


class IssuerMetadata(BaseModel):
    """RFC 8414 authorization server metadata: only what the token endpoint does."""

    issuer: str
    jwks_uri: str
    token_endpoint: str
    response_types_supported: list[str]
    grant_types_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    scopes_supported: list[str]
