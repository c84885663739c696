"""Each read recorded once: an owner's read of an order through the gateway is one entry of
the user's ledger (the gateway's access event), not one from the gateway and one from orders
(README, "Recording each read once")."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from tests.e2e.suite import Person, Suite


def _order_body(person: Person, goods_id: str) -> dict[str, Any]:
    return {
        "items": [{"goods_id": goods_id, "quantity": 1}],
        "consignee_name": person.name,
        "consignee_phone": person.phone,
        "address": {
            "province": "浙江省",
            "city": "杭州市",
            "district": "西湖区",
            "detail": person.address_detail,
        },
    }


@pytest.mark.obligation("OB-R-1")
async def test_an_owners_read_of_an_order_is_one_ledger_entry(suite: Suite) -> None:
    goods = await suite.call(
        "POST",
        "/orders/admin/goods",
        headers=suite.admin,
        json={"name": "Green tea", "price": "19.90"},
        expect=201,
    )
    person = Person.new()
    _, headers = await suite.register(person)

    async def place() -> str:
        placed = await suite.call(
            "POST",
            "/orders/orders",
            headers={**headers, "Idempotency-Key": secrets.token_hex(8)},
            json=_order_body(person, goods["goods_id"]),
            expect=201,
        )
        order_id: str = placed["order_id"]
        return order_id

    first = await place()
    await suite.call("GET", f"/orders/orders/{first}", headers=headers)
    # Orders writes its events per subject in order: once the second placement is in the
    # ledger, a read event orders wrote for the first order would be there too.
    await place()

    def settled(page: dict[str, Any]) -> bool:
        actions = [(e["who"]["service"], e["action"]) for e in page["entries"]]
        purposes = [e["purpose"] for e in page["entries"]]
        return actions.count(("orders", "write")) == 2 and "order.query" in purposes

    page = await suite.eventually("GET", "/consent/ledger/me?limit=100", settled, headers=headers)
    # Placing an order is recorded too (orders' write, and the answer that left the
    # gateway, under order.fulfilment); the one read under order.query is the gateway's.
    queries = [e for e in page["entries"] if e["purpose"] == "order.query"]
    assert [(e["who"]["service"], e["who"]["kind"], e["action"]) for e in queries] == [
        ("gateway", "self", "read")
    ]
