"""Payment notifications (issue 21): how many signed provider notifications the orders
service handles per second on this machine, and their latency, with duplicates and
concurrent deliveries in the mix.

``python -m bench.payment`` runs the real orders app in this process (its middleware,
outbox and routers; Kafka unreachable, so events wait in the outbox) on a throw-away
PostgreSQL database, with one payment provider set up and ``ORDERS`` placed orders each
with a pending payment (made directly in the database: what is measured is the
notification). Then ``CONCURRENCY`` senders post, over ASGI, one genuine notification per
order, each Ed25519-signed with a fresh nonce, plus a duplicate (the same notification id,
re-signed as a provider's retry is) for every ``DUPLICATE_EVERY``-th order, sent at the
same moment as the original. Every notification does the full check: provider, key
serial, window, signature, nonce, the order and its payment (locked), amount, the
notification id, then the transition, its history and two outbox events.

Afterwards it checks what must hold: every order paid once, one ``order.paid`` event each.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any, Final

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlmodel import col

from bench.report import Row
from kit.app import AppContext
from kit.migrations import upgrade
from kit.models import OutboxMessage, utcnow
from kit.payment_signature import PrivateKey, new_ed25519_key, public_key_pem, sign_headers
from kit.testing import UNREACHABLE_KAFKA, LocalPostgres
from services.orders.config import Settings
from services.orders.main import create_app
from services.orders.models import Order, OrderStatusChange, Payment
from services.orders.payments import service as payments
from services.orders.payments.schemas import ProviderCreate

ORDERS: Final = 2000
CONCURRENCY: Final = 16
DUPLICATE_EVERY: Final = 5
PROVIDER: Final = "ptn_bench"


@asynccontextmanager
async def orders_app(database_url: str) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings = Settings(
        database_url=database_url,
        kafka_bootstrap_servers=UNREACHABLE_KAFKA,
        retention_sweep_enabled=False,
        unpaid_sweep_enabled=False,
        log_json=False,
        log_level="WARNING",
    )
    await upgrade("services.orders", database_url)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://orders") as client:
            yield app, client


async def prepare(context: AppContext) -> tuple[list[dict[str, Any]], PrivateKey]:
    """The provider, and ORDERS placed orders with a pending payment each."""
    key = new_ed25519_key()
    async with context.database.session() as session:
        await payments.register_provider(
            session,
            cipher=context.cipher,
            events=context.events,
            request=ProviderCreate(
                provider_id=PROVIDER,
                name="Bench Pay",
                api_url="http://127.0.0.1:9/",
                notification_public_key=public_key_pem(key),
            ),
            staff_id="bench",
        )
    now = utcnow()
    notifications: list[dict[str, Any]] = []
    async with context.database.session() as session:
        for index in range(ORDERS):
            order_id = f"ord_bench{index:06d}"
            amount = Decimal("88.00") + index % 7
            session.add(
                Order(
                    id=order_id,
                    buyer_id=f"acc_bench{index % 200:04d}",
                    status="placed",
                    currency="CNY",
                    subtotal=amount,
                    discount_total=Decimal("0.00"),
                    amount_payable=amount,
                    consignee_name_encrypted="",
                    consignee_phone_encrypted="",
                    address_region_encrypted="",
                    address_detail_encrypted="",
                    created_at=now,
                    pay_by=now,
                )
            )
            await session.flush()
            session.add(OrderStatusChange(order_id=order_id, status="placed", actor="bench"))
            reference = "wx" + secrets.token_hex(14)
            session.add(
                Payment(
                    id=f"pay_bench{index:06d}",
                    order_id=order_id,
                    provider_id=PROVIDER,
                    provider_reference=reference,
                    amount=amount,
                    currency="CNY",
                    expires_at=now,
                )
            )
            notifications.append(
                {
                    "id": "ntf" + secrets.token_hex(10),
                    "event_type": "payment.succeeded",
                    "order_id": order_id,
                    "provider_reference": reference,
                    "amount": {"total": str(amount), "currency": "CNY"},
                    "occurred_at": now.isoformat(),
                }
            )
    return notifications, key


async def run_async() -> list[Row]:
    postgres = LocalPostgres(admin_url=os.environ.get("TEST_POSTGRES_ADMIN_URL", ""))
    if not postgres.admin_url:
        postgres.start()
    async with postgres.database() as url, orders_app(url) as (app, client):
        context: AppContext = app.state.context
        notifications, key = await prepare(context)
        path = f"/payments/notifications/{PROVIDER}"
        latencies: list[float] = []
        outcomes: dict[str, int] = {}

        async def send(notification: dict[str, Any]) -> None:
            body = json.dumps(notification).encode()
            headers = {"Content-Type": "application/json", **sign_headers(key, body)}
            started = time.perf_counter()
            answer = await client.post(path, content=body, headers=headers)
            latencies.append(time.perf_counter() - started)
            assert answer.status_code == 200, answer.text
            outcome = answer.json()["outcome"]
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

        # A unit of work is one order's notification, or it and its duplicate at once.
        queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
        for index, notification in enumerate(notifications):
            copies = 2 if index % DUPLICATE_EVERY == 0 else 1
            queue.put_nowait([notification] * copies)

        async def sender() -> None:
            while not queue.empty():
                unit = queue.get_nowait()
                await asyncio.gather(*(send(n) for n in unit))

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(CONCURRENCY)))
        seconds = time.perf_counter() - started

        async with context.database.session() as session:
            paid = await session.scalar(
                select(func.count()).select_from(Order).where(col(Order.status) == "paid")
            )
            events = await session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(col(OutboxMessage.event_type).like("%.order.paid.v1"))
            )
        assert paid == ORDERS and events == ORDERS, (paid, events)
    total = len(latencies)
    cuts = statistics.quantiles(latencies, n=100)
    p50, p99 = cuts[49] * 1000, cuts[98] * 1000
    duplicates = outcomes.get("duplicate", 0)
    print(f"  {total} notifications in {seconds:.1f} s; outcomes {outcomes}", flush=True)
    return [
        Row(
            "7",
            f"payment notifications, orders service in process on PostgreSQL, {CONCURRENCY} "
            f"senders: {ORDERS} orders, {duplicates} duplicates sent at once with the original "
            "(signature, nonce, locked payment, transition, outbox)",
            f"{total / seconds:,.0f} notifications/s",
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms; {ORDERS} paid once, {ORDERS} order.paid events",
        )
    ]


def run() -> list[Row]:
    return asyncio.run(run_async())


if __name__ == "__main__":
    for row in run():
        print(f"{row.what}: {row.figure} ({row.ratio})")
