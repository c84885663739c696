"""An identity app on a temporary SQLite database, with helpers to make accounts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from kit.app import AppContext
from kit.events import Event
from kit.testing import outbox_events, serve_app
from services.identity.accounts.service import create_staff
from services.identity.config import Settings

ISSUER = "http://identity.test"
UNREACHABLE_KAFKA = "127.0.0.1:1"


@dataclass
class Identity:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    database_path: Path
    _phones: list[str] = field(default_factory=list)

    @property
    def context(self) -> AppContext:
        context: AppContext = self.app.state.context
        return context

    def new_phone(self) -> str:
        phone = f"139{len(self._phones):08d}"
        self._phones.append(phone)
        return phone

    async def register(self, phone: str, password: str = "correct horse battery") -> str:
        response = await self.client.post("/accounts", json={"phone": phone, "password": password})
        assert response.status_code == 201, response.text
        account_id: str = response.json()["account_id"]
        return account_id

    async def login(
        self, phone: str, password: str = "correct horse battery", client_type: str = "app"
    ) -> dict[str, Any]:
        response = await self.client.post(
            "/login", json={"phone": phone, "password": password, "client_type": client_type}
        )
        assert response.status_code == 200, response.text
        tokens: dict[str, Any] = response.json()
        return tokens

    async def user(self) -> tuple[str, str]:
        """A new user account and its access token."""
        phone = self.new_phone()
        account_id = await self.register(phone)
        return account_id, (await self.login(phone))["access_token"]

    async def staff(self, *roles: str) -> tuple[str, str]:
        phone = self.new_phone()
        async with self.context.database.session() as session:
            created = await create_staff(
                session,
                cipher=self.context.cipher,
                events=self.context.events,
                phone=phone,
                password="staff password 1",
                roles=list(roles),
                granted_by="test",
            )
        token = (await self.login(phone, "staff password 1"))["access_token"]
        return created.account_id, token

    async def outbox_events(self) -> list[Event]:
        return await outbox_events(self.context.database)


@pytest.fixture
async def identity(tmp_path: Path) -> AsyncIterator[Identity]:
    database_path = tmp_path / "identity.db"
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{database_path}",
        kafka_bootstrap_servers=UNREACHABLE_KAFKA,
        auth_issuer=ISSUER,
        log_json=False,
    )
    async with serve_app("services.identity", settings, base_url=ISSUER) as (app, client):
        yield Identity(app=app, client=client, settings=settings, database_path=database_path)
