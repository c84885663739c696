"""Payment as deployed: the stand-in provider's notification keeps coming, re-signed and
backing off, while orders is down, and the order is paid once orders is back (issue 21:
providers retry until they get a 2xx)."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx

from tests.e2e.suite import Person, Suite


async def _attempts(wallet: httpx.AsyncClient, notification_id: str) -> list[Any]:
    deliveries = (await wallet.get("/deliveries")).json()
    return [d["status"] for d in deliveries if d["notification_id"] == notification_id]


async def test_the_provider_retries_until_orders_answers_and_the_order_is_paid_once(
    suite: Suite,
) -> None:
    goods = await suite.call(
        "POST",
        "/orders/admin/goods",
        headers=suite.admin,
        json={"name": "Tea cups", "price": "36.50"},
        expect=201,
    )
    person = Person.new()
    _, buyer = await suite.register(person)
    order = await suite.call(
        "POST",
        "/orders/orders",
        headers={**buyer, "Idempotency-Key": secrets.token_hex(8)},
        json=person.order_body(goods["goods_id"], quantity=2),
        expect=201,
    )
    order_id = order["order_id"]
    payment = await suite.call(
        "POST",
        f"/orders/orders/{order_id}/payment",
        headers=buyer,
        json={"provider_id": suite.payment_provider_id},
        expect=201,
    )
    async with httpx.AsyncClient(base_url=suite.payment_provider_url, timeout=10.0) as wallet:
        suite.stop("orders")
        try:
            paid = await wallet.post(f"/v3/payments/{payment['provider_reference']}/pay")
            assert paid.status_code == 202, paid.text
            notification_id = paid.json()["notification_id"]
            for _ in range(300):  # bounded: 30 s for two refused deliveries
                if len(await _attempts(wallet, notification_id)) >= 2:
                    break
                await asyncio.sleep(0.1)
        finally:
            await suite.start("orders")
        await suite.eventually(
            "GET",
            f"/orders/orders/{order_id}",
            lambda body: body["status"] == "paid",
            headers=buyer,
            within_s=60,
        )
        attempts = await _attempts(wallet, notification_id)
    assert len(attempts) >= 3, attempts
    assert all(status != 200 for status in attempts[:-1]), attempts  # the gateway's 502s
    assert attempts[-1] == 200
    shown = await suite.call("GET", f"/orders/orders/{order_id}", headers=buyer)
    assert [step["status"] for step in shown["status_history"]] == ["placed", "paid"]
