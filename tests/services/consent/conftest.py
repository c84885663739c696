"""A consent app on a temporary SQLite database that trusts a test signing key, with
helpers (``kit.testing.AppUnderTest``) to act as a user, a guardian, a privacy officer
or another service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kit.auth import SigningKey, generate_signing_key
from kit.testing import (
    TEST_ISSUER,
    UNREACHABLE_KAFKA,
    AppUnderTest,
    serve_app,
    trust_only,
)
from services.consent.config import Settings

ISSUER = TEST_ISSUER
KEY: SigningKey = generate_signing_key()


@dataclass
class Consent(AppUnderTest):
    settings: Settings
    database_path: Path | None = None


@pytest.fixture
async def consent(tmp_path: Path) -> AsyncIterator[Consent]:
    database_path = tmp_path / "consent.db"
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{database_path}",
        kafka_bootstrap_servers=UNREACHABLE_KAFKA,
        auth_issuer=ISSUER,
        log_json=False,
        first_policy_path=None,  # these tests publish their own versions
    )
    async with serve_app("services.consent", settings) as (app, client):
        trust_only(app, KEY)
        yield Consent(
            app=app, client=client, settings=settings, key=KEY, database_path=database_path
        )
