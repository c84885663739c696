"""A consent app on a temporary SQLite database that trusts a test signing key, with
helpers to act as a user, a guardian, a privacy officer or another service."""

from __future__ import annotations

import secrets
import string
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from kit.app import AppContext
from kit.auth import STAFF_ROLE_SCOPES, USER_SCOPES, SigningKey, generate_signing_key
from kit.events import Event
from kit.testing import bearer, mint_token, outbox_events, serve_app, trust_only
from services.consent.config import Settings

ISSUER = "http://identity.test"
UNREACHABLE_KAFKA = "127.0.0.1:1"
KEY: SigningKey = generate_signing_key()


def new_subject() -> str:
    """A pseudonymous account id of letters only: a hex id now and then holds a digit run
    shaped like a phone number, which the event guard rightly refuses as a subject."""
    return "acc_" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(20))


@dataclass
class Consent:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    database_path: Path

    @property
    def context(self) -> AppContext:
        context: AppContext = self.app.state.context
        return context

    def token(self, subject: str, scopes: Iterable[str], **claims: Any) -> str:
        return mint_token(
            KEY,
            issuer=ISSUER,
            audience=self.settings.auth_audience,
            subject=subject,
            scopes=scopes,
            **claims,
        )

    def user(self, **claims: Any) -> tuple[str, dict[str, str]]:
        """A new user's account id and Authorization header."""
        subject = new_subject()
        return subject, bearer(self.token(subject, USER_SCOPES, **claims))

    def privacy_officer(self) -> dict[str, str]:
        return bearer(self.token(new_subject(), STAFF_ROLE_SCOPES["privacy_officer"], kind="staff"))

    async def outbox_events(self) -> list[Event]:
        return await outbox_events(self.context.database)


@pytest.fixture
async def consent(tmp_path: Path) -> AsyncIterator[Consent]:
    database_path = tmp_path / "consent.db"
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{database_path}",
        kafka_bootstrap_servers=UNREACHABLE_KAFKA,
        auth_issuer=ISSUER,
        log_json=False,
    )
    async with serve_app("services.consent", settings) as (app, client):
        trust_only(app, KEY)
        yield Consent(app=app, client=client, settings=settings, database_path=database_path)
