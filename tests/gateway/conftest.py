"""A gateway on a temporary SQLite database, trusting a test signing key, with its
upstreams as in-process apps (``httpx.ASGITransport``) and the consent view replaced by
a stub the test controls. An upstream not given is unreachable (127.0.0.1:1)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from starlette.types import ASGIApp

from gateway.config import Settings
from gateway.main import create_app
from kit.auth import USER_SCOPES, SigningKey, generate_signing_key
from kit.events import Event
from kit.migrations import upgrade
from kit.testing import (
    TEST_ISSUER,
    UNREACHABLE_KAFKA,
    bearer,
    mint_token,
    new_subject,
    outbox_events,
    trust_only,
)

KEY: SigningKey = generate_signing_key()
UNREACHABLE_URL = "http://127.0.0.1:1"

PHONE = "13812345678"
EXTRA_MOBILE = "13987654321"
NAME = "张三丰"
DETAIL = "文三路 100 号 2 幢 301 室"
TAX_ID = "91350100M000100Y43"
EMAIL = "zhangsan@example.com"
CUSTOMS_NAME = "李四光"
ID_NUMBER = "11010119900307123X"
#: Device coordinates, sent in the body of ``POST /orders/location/nearby`` (never a URL).
POINT = {"latitude": 30.27, "longitude": 120.15}
SECRETS = (PHONE, EXTRA_MOBILE, NAME, DETAIL, TAX_ID, EMAIL, CUSTOMS_NAME, ID_NUMBER)

#: The buyer of the partner's orders (named by one order's read, never shown to the partner).
BUYER = "acc_fakebuyerfakebuyer00"
#: An order as the upstream holds it, every personal field filled in.
FULL_ORDER: dict[str, Any] = {
    "order_id": "ord_fake",
    "status": "assigned",
    "currency": "CNY",
    "amount_payable": "99.90",
    "lines": [{"goods_id": "gds_tea", "name": "Tea set", "quantity": 1}],
    "delivery_window": {"days": "weekdays", "start": None, "end": None},
    "consignee_name": NAME,
    "consignee_phone": PHONE,
    "address_region": {"province": "浙江省", "city": "杭州市", "district": "西湖区"},
    "address_detail": DETAIL,
    "postal_code": "310012",
    "extra_phones": [EXTRA_MOBILE],
    "invoice_title": "Signature Ltd",
    "invoice_tax_id": TAX_ID,
    "invoice_email": EMAIL,
    "customs_name": CUSTOMS_NAME,
    "customs_id_number": ID_NUMBER,
    "remarks": "请放门口",
}


def fake_orders_app() -> FastAPI:
    """A stand-in for the orders service: answers with every personal field and keeps
    the headers it received in ``app.state.seen``."""
    app = FastAPI()
    app.state.seen = []

    def keep(request: Request) -> None:
        app.state.seen.append(dict(request.headers))

    @app.get("/partner/orders/{order_id}")
    async def partner_order(order_id: str, request: Request) -> dict[str, Any]:
        keep(request)
        # As orders answers one order's read: naming the buyer for the gateway's check.
        return {**FULL_ORDER, "order_id": order_id, "account_id": BUYER}

    @app.get("/partner/orders")
    async def partner_orders(request: Request) -> dict[str, Any]:
        keep(request)
        return {"items": [FULL_ORDER, FULL_ORDER], "next_cursor": None}

    @app.get("/orders/{order_id}")
    async def own_order(order_id: str, request: Request) -> dict[str, Any]:
        keep(request)
        return {**FULL_ORDER, "order_id": order_id}

    @app.post("/orders", status_code=201)
    async def place(request: Request) -> dict[str, Any]:
        keep(request)
        return FULL_ORDER

    @app.get("/goods")
    async def slow(request: Request) -> dict[str, Any]:
        keep(request)
        await asyncio.sleep(30)
        return {}

    @app.get("/goods/{goods_id}")
    async def echo(goods_id: str, request: Request) -> Response:
        keep(request)
        return Response(
            content=b'{"goods_id":"%s"}' % goods_id.encode(),
            media_type="application/json",
            headers={
                "Connection": "x-upstream-private",
                "X-Upstream-Private": "1",
                "Keep-Alive": "timeout=5",
                "X-Kept": "yes",
                "X-Request-ID": "upstream-own-id",
            },
        )

    @app.post("/location/nearby")
    async def nearby(request: Request) -> dict[str, Any]:
        keep(request)
        return {"items": [{"goods_id": "gds_tea"}]}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


@dataclass
class GatewayUnderTest:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    consents: set[tuple[str, str]] = field(default_factory=set)
    agreed: dict[str, int] = field(default_factory=dict)

    def token(self, subject: str, scopes: Iterable[str], **claims: Any) -> str:
        return mint_token(
            KEY,
            issuer=self.settings.auth_issuer,
            audience=self.settings.auth_audience,
            subject=subject,
            scopes=scopes,
            **claims,
        )

    def user(self) -> tuple[str, dict[str, str]]:
        subject = new_subject()
        return subject, bearer(self.token(subject, USER_SCOPES))

    def partner(self, scope: str, purposes: Iterable[str]) -> tuple[str, dict[str, str]]:
        subject = new_subject("ptn")
        token = self.token(
            subject, [scope], kind="partner", client_type="server", purposes=list(purposes)
        )
        return subject, bearer(token)

    def staff(self, scopes: Iterable[str]) -> tuple[str, dict[str, str]]:
        subject = new_subject("stf")
        return subject, bearer(self.token(subject, scopes, kind="staff"))

    async def outbox_events(self) -> list[Event]:
        return await outbox_events(self.app.state.context.database)


def client_factory(
    apps: dict[str, ASGIApp], upstream_client: tuple[str, int] = ("127.0.0.1", 123)
) -> Any:
    """In-process upstreams; they see the gateway at ``upstream_client``."""

    def make(name: str, base_url: str, settings: Settings) -> httpx.AsyncClient:
        timeout = httpx.Timeout(
            settings.upstream_timeout_s, connect=settings.upstream_connect_timeout_s
        )
        if name in apps:
            transport = httpx.ASGITransport(app=apps[name], client=upstream_client)
            return httpx.AsyncClient(
                transport=transport, base_url=f"http://{name}", timeout=timeout
            )
        return httpx.AsyncClient(base_url=UNREACHABLE_URL, timeout=timeout, trust_env=False)

    return make


@asynccontextmanager
async def running_gateway(
    tmp_path: Path,
    upstreams: dict[str, ASGIApp] | None = None,
    upstream_client: tuple[str, int] = ("127.0.0.1", 123),
    **overrides: Any,
) -> AsyncIterator[GatewayUnderTest]:
    defaults: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path}/gateway.db",
        "kafka_bootstrap_servers": UNREACHABLE_KAFKA,
        "auth_issuer": TEST_ISSUER,
        "log_json": False,
    }
    settings = Settings(**{**defaults, **overrides})
    await upgrade("gateway", settings.database_url)
    app = create_app(settings, client_factory=client_factory(upstreams or {}, upstream_client))
    async with app.router.lifespan_context(app):
        trust_only(app, KEY)
        gateway = GatewayUnderTest(app=app, client=None, settings=settings)  # type: ignore[arg-type]
        app.state.consent_granted = lambda subject, purpose: (subject, purpose) in gateway.consents
        app.state.policy_sequence_agreed = gateway.agreed.get
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 4321))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            gateway.client = client
            yield gateway


@pytest.fixture
def orders_upstream() -> FastAPI:
    return fake_orders_app()


@pytest.fixture
async def gw(tmp_path: Path, orders_upstream: FastAPI) -> AsyncIterator[GatewayUnderTest]:
    async with running_gateway(tmp_path, {"orders": orders_upstream}) as gateway:
        yield gateway
