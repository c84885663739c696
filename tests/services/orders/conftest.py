"""An orders app on a temporary SQLite database that trusts a test signing key, with
helpers to act as a buyer, as staff or as a partner, to add goods, to move an order's
status and to read the raw database file."""

from __future__ import annotations

import secrets
import string
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from kit.auth import SigningKey, generate_signing_key
from kit.testing import (
    TEST_ISSUER,
    UNREACHABLE_KAFKA,
    AppUnderTest,
    bearer,
    serve_app,
    trust_only,
)
from services.orders.config import Settings
from services.orders.orders import service as orders_service

ISSUER = TEST_ISSUER
KEY: SigningKey = generate_signing_key()


def new_partner_id() -> str:
    """A partner client id as identity makes them (``ptn_`` and letters)."""
    return "ptn_" + "".join(secrets.choice(string.ascii_letters) for _ in range(22))


#: A partner role -> the scope identity gives it and the purpose it is registered for.
PARTNER_ROLES = {
    "logistics": ("partner:logistics", "logistics.delivery"),
    "customs": ("partner:customs", "customs.clearance"),
}


@dataclass
class Orders(AppUnderTest):
    settings: Settings
    database_path: Path | None = None

    def partner_headers(
        self, partner_id: str, role: str = "logistics", *, purposes: Iterable[str] | None = None
    ) -> dict[str, str]:
        """A partner token as identity issues it: the role's scope and, unless given, the
        role's purpose."""
        scope, purpose = PARTNER_ROLES[role]
        token = self.token(
            partner_id,
            [scope],
            kind="partner",
            client_type="server",
            purposes=list(purposes) if purposes is not None else [purpose],
        )
        return bearer(token)

    def partner(self, role: str = "logistics") -> tuple[str, dict[str, str]]:
        """A new partner's client id and Authorization header."""
        partner_id = new_partner_id()
        return partner_id, self.partner_headers(partner_id, role)

    async def advance(self, order_id: str, *statuses: str, actor: str = "test") -> None:
        """Move an order through ``statuses`` (as payment or staff flows would)."""
        for status in statuses:
            async with self.context.database.session() as session:
                await orders_service.change_status(
                    session,
                    events=self.context.events,
                    order_id=order_id,
                    status=status,  # type: ignore[arg-type]
                    actor=actor,
                )

    async def add_goods(
        self,
        name: str = "Tea set",
        price: str = "99.90",
        *,
        currency: str = "CNY",
        cross_border: bool = False,
        special_category: bool = False,
    ) -> dict[str, Any]:
        _, admin = self.staff("catalogue_manager")
        response = await self.client.post(
            "/admin/goods",
            json={
                "name": name,
                "price": price,
                "currency": currency,
                "cross_border": cross_border,
                "special_category": special_category,
            },
            headers=admin,
        )
        assert response.status_code == 201, response.text
        goods: dict[str, Any] = response.json()
        assert Decimal(goods["price"]) == Decimal(price)
        return goods

    async def add_discount(self, code: str, amount: str, currency: str = "CNY") -> None:
        _, admin = self.staff("catalogue_manager")
        response = await self.client.post(
            "/admin/discounts",
            json={"code": code, "amount": amount, "currency": currency},
            headers=admin,
        )
        assert response.status_code == 201, response.text

    def raw_database(self) -> bytes:
        """The SQLite file and its write-ahead log, as bytes on disk."""
        assert self.database_path is not None
        raw = b""
        for path in (
            self.database_path,
            self.database_path.with_name(self.database_path.name + "-wal"),
        ):
            if path.exists():
                raw += path.read_bytes()
        return raw


@pytest.fixture
async def orders(tmp_path: Path) -> AsyncIterator[Orders]:
    database_path = tmp_path / "orders.db"
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{database_path}",
        kafka_bootstrap_servers=UNREACHABLE_KAFKA,
        auth_issuer=ISSUER,
        log_json=False,
    )
    async with serve_app("services.orders", settings) as (app, client):
        trust_only(app, KEY)
        yield Orders(
            app=app, client=client, settings=settings, key=KEY, database_path=database_path
        )
