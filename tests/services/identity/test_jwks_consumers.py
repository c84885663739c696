"""Services verify identity's tokens themselves, from its JWKS (design principle 7): a
token identity issued is accepted by another service, a token after key rotation too, and
a token from any other signer is not."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from kit.auth import InvalidToken, JwksClient, TokenVerifier, generate_signing_key, issue_token
from kit.testing import serve_app
from services.identity.tokens.service import rotate_signing_key
from services.orders.config import Settings as OrdersSettings
from tests.services.identity.conftest import ISSUER, Identity


async def test_another_service_verifies_identity_tokens_from_the_jwks(
    identity: Identity, tmp_path: Path
) -> None:
    settings = OrdersSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/orders.db",
        kafka_bootstrap_servers="127.0.0.1:1",
        auth_issuer=ISSUER,
        log_json=False,
    )
    async with serve_app("services.orders", settings) as (orders, _):
        # Orders reaches identity's JWKS over HTTP; here the HTTP runs in-process.
        jwks = JwksClient(
            settings.auth_jwks_url,
            min_refresh_interval_s=0,
            client=httpx.AsyncClient(transport=httpx.ASGITransport(app=identity.app)),
        )
        verifier = TokenVerifier(
            issuer=settings.auth_issuer, audience=settings.auth_audience, key_source=jwks.key_set
        )
        orders.state.token_verifier = verifier

        account_id, token = await identity.user()
        principal = await verifier.principal(f"Bearer {token}")
        assert principal.subject == account_id and principal.kind == "user"

        context = identity.context
        async with context.database.session() as session:
            await rotate_signing_key(session, cipher=context.cipher, settings=identity.settings)
        _, rotated = await identity.user()
        assert (await verifier.principal(f"Bearer {rotated}")).kind == "user"

        stranger = issue_token(
            {
                "iss": ISSUER,
                "aud": settings.auth_audience,
                "sub": "acc_x",
                "iat": 1,
                "exp": 4_000_000_000,
                "jti": "j",
                "scope": "",
                "kind": "user",
                "client_type": "app",
            },
            key=generate_signing_key(),
        )
        with pytest.raises(InvalidToken):
            await verifier.principal(f"Bearer {stranger}")
        await jwks.aclose()
