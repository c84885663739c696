"""OAuth 2.0 at identity, through the gateway, as clients nobody here wrote see it (issue 24
items 1-5): Authlib's OAuth 2.0 client and its RFC 8414 metadata checks, PyJWT reading the
access tokens.

- RFC 8414: the metadata, fetched at the gateway's public origin, validates and its issuer
  is the address it was fetched under (section 3.3); every URL in it opens, and every grant
  and client authentication method it lists works;
- RFC 6749 section 5.2: the token endpoint's errors carry ``error``, so Authlib raises
  rather than taking a problem document for a token; section 5.1: ``no-store`` on every
  token answer (also ``/login`` and ``/token/refresh``);
- RFC 9068 section 2.2: an access token names its ``client_id``;
- RFC 6750 section 3.1: a 403 for a missing scope says ``insufficient_scope``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

from kit.testing import new_subject
from tests.security.conftest import SERVICES, Suite, partner_registration, running_suite

ORIGIN = "https://api.signature.test"  # the gateway's public origin, as clients know it
ISSUER = f"{ORIGIN}/identity"  # identity reached through it
METADATA_URL = f"{ISSUER}/.well-known/oauth-authorization-server"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
async def suite(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Suite]:
    async with running_suite(
        tmp_path_factory.mktemp("oauth"),
        service_overrides={name: {"auth_issuer": ISSUER} for name in SERVICES},
        auth_issuer=ISSUER,
        rate_limit_per_s=0,
    ) as running:
        yield running


@pytest.fixture
async def public(suite: Suite) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the gateway at its public https origin."""
    transport = httpx.ASGITransport(app=suite.gateway.app)
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as client:
        yield client


def oauth_client(suite: Suite, partner: dict[str, Any], method: str) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=partner["client_id"],
        client_secret=partner["client_secret"],
        token_endpoint_auth_method=method,
        transport=httpx.ASGITransport(app=suite.gateway.app),
    )


async def metadata(public: httpx.AsyncClient) -> AuthorizationServerMetadata:
    answer = await public.get(METADATA_URL)
    assert answer.status_code == 200, answer.text
    return AuthorizationServerMetadata(answer.json())


async def registered_partner(suite: Suite, public: httpx.AsyncClient) -> dict[str, Any]:
    answer = await public.post(
        "/identity/partners",
        json=partner_registration(f"Courier {new_subject('p')}"),
        headers=suite.staff(new_subject("stf")),
    )
    assert answer.status_code == 201, answer.text
    partner: dict[str, Any] = answer.json()
    return partner


async def test_metadata_validates_and_its_issuer_is_where_it_was_fetched(
    public: httpx.AsyncClient,
) -> None:
    served = await metadata(public)
    served.validate()  # Authlib: every RFC 8414 member present and well formed
    assert served["issuer"] + "/.well-known/oauth-authorization-server" == METADATA_URL
    assert served["grant_types_supported"] == ["client_credentials"]
    assert "id_token_signing_alg_values_supported" not in served
    jwks = await public.get(served["jwks_uri"])
    assert jwks.status_code == 200 and jwks.json()["keys"], jwks.text


async def test_the_metadata_is_also_where_rfc_8414_section_3_1_puts_it(
    public: httpx.AsyncClient,
) -> None:
    """For an issuer with a path, the well-known part goes between host and path."""
    inserted = await public.get(f"{ORIGIN}/.well-known/oauth-authorization-server/identity")
    assert inserted.status_code == 200, inserted.text
    served = AuthorizationServerMetadata(inserted.json())
    served.validate()
    assert served["issuer"] == ISSUER
    assert inserted.json() == (await public.get(METADATA_URL)).json()


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_each_advertised_way_gets_a_token_naming_its_client(
    suite: Suite, public: httpx.AsyncClient, method: str
) -> None:
    served = await metadata(public)
    assert method in served["token_endpoint_auth_methods_supported"]
    partner = await registered_partner(suite, public)
    async with oauth_client(suite, partner, method) as client:
        token = await client.fetch_token(served["token_endpoint"], scope="partner:logistics")
    jwks = jwt.PyJWKSet.from_dict((await public.get(served["jwks_uri"])).json())
    header = jwt.get_unverified_header(token["access_token"])
    claims = jwt.decode(
        token["access_token"],
        jwks[header["kid"]],
        algorithms=["ES256"],
        audience=suite.services["identity"].state.context.settings.auth_audience,
        issuer=served["issuer"],
        options={"require": ["iss", "aud", "exp", "nbf", "iat", "sub", "jti", "client_id"]},
    )
    assert header["typ"] == "at+jwt"
    assert claims["client_id"] == partner["client_id"]
    assert claims["scope"] == "partner:logistics"


async def test_a_wrong_secret_is_invalid_client_not_a_token(
    suite: Suite, public: httpx.AsyncClient
) -> None:
    served = await metadata(public)
    partner = await registered_partner(suite, public)
    wrong = {**partner, "client_secret": "pcs_not_the_secret"}
    async with oauth_client(suite, wrong, "client_secret_basic") as client:
        with pytest.raises(OAuthError) as refused:
            await client.fetch_token(served["token_endpoint"])
    assert refused.value.error == "invalid_client"
    answer = await public.post(
        "/identity/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(partner["client_id"], "pcs_not_the_secret"),
    )
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Basic ")
    assert answer.headers["cache-control"] == "no-store"


async def test_a_scope_beyond_the_partners_is_invalid_scope(
    suite: Suite, public: httpx.AsyncClient
) -> None:
    served = await metadata(public)
    partner = await registered_partner(suite, public)
    async with oauth_client(suite, partner, "client_secret_post") as client:
        with pytest.raises(OAuthError) as refused:
            await client.fetch_token(served["token_endpoint"], scope="partner:customs")
    assert refused.value.error == "invalid_scope"


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "password", "username": "u", "password": "p"}, "unsupported_grant_type"),
        ({"grant_type": "refresh_token", "refresh_token": "rt_x"}, "unsupported_grant_type"),
        ({"scope": "partner:logistics"}, "invalid_request"),
        ({"grant_type": "client_credentials", "scope": "x" * 501}, "invalid_request"),
    ],
)
async def test_malformed_token_requests_are_400_with_the_rfc_error(
    suite: Suite, public: httpx.AsyncClient, form: dict[str, str], error: str
) -> None:
    partner = await registered_partner(suite, public)
    answer = await public.post(
        "/identity/oauth2/token",
        data=form,
        auth=(partner["client_id"], partner["client_secret"]),
    )
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"] == error
    assert answer.headers["cache-control"] == "no-store"


async def test_login_and_refresh_answers_are_never_cached(public: httpx.AsyncClient) -> None:
    phone = "13700000001"
    created = await public.post("/identity/accounts", json={"phone": phone, "password": PASSWORD})
    assert created.status_code == 201, created.text
    login = await public.post("/identity/login", json={"phone": phone, "password": PASSWORD})
    assert login.status_code == 200, login.text
    assert login.headers["cache-control"] == "no-store"
    refreshed = await public.post(
        "/identity/token/refresh", json={"refresh_token": login.json()["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.headers["cache-control"] == "no-store"
    claims = jwt.decode(refreshed.json()["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == "app"  # the first-party client the user logged in with


async def test_a_missing_scope_is_403_insufficient_scope(
    suite: Suite, public: httpx.AsyncClient
) -> None:
    courier = suite.partner(new_subject("ptn"), "partner:logistics", ["logistics.delivery"])
    answer = await public.get("/identity/accounts/me", headers=courier)
    assert answer.status_code == 403, answer.text
    assert answer.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="account:read"'
    )
