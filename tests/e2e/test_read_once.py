"""Each read recorded once: an owner's read of an order through the gateway is one entry of
the user's ledger (the gateway's access event), not one from the gateway and one from orders
(README, "Recording each read once")."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.suite import Person, Suite


@pytest.mark.obligation("OB-R-1")
async def test_an_owners_read_of_an_order_is_one_ledger_entry(suite: Suite) -> None:
    person = Person.new()
    _, headers = await suite.register(person)

    first = await suite.place_order(person, headers)
    await suite.call("GET", f"/orders/orders/{first}", headers=headers)
    # Orders writes its events per subject in order: once the second placement is in the
    # ledger, a read event orders wrote for the first order would be there too.
    await suite.place_order(person, headers)

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


def _reads(page: dict[str, Any], purpose: str) -> list[tuple[str, str, str]]:
    return [
        (e["who"]["service"], e["who"]["kind"], e["action"])
        for e in page["entries"]
        if e["purpose"] == purpose and e["action"] == "read"
    ]


@pytest.mark.obligation("OB-R-1")
async def test_an_owners_read_of_their_account_is_one_ledger_entry(suite: Suite) -> None:
    person = Person.new()
    _, headers = await suite.register(person)
    me = await suite.call("GET", "/identity/accounts/me", headers=headers)
    assert me["phone"] == person.phone
    # Identity writes its events per subject in order: once this verification is in the
    # ledger, a read event identity wrote for the account read would be there too.
    await suite.call(
        "POST",
        "/identity/verifications",
        headers=headers,
        json={"real_name": person.name, "id_number": person.id_number},
        expect=(200, 201),
    )

    def settled(page: dict[str, Any]) -> bool:
        return bool(_reads(page, "account")) and any(
            e["who"]["service"] == "identity" and e["purpose"] == "identity.verification"
            for e in page["entries"]
        )

    page = await suite.eventually("GET", "/consent/ledger/me?limit=100", settled, headers=headers)
    assert _reads(page, "account") == [("gateway", "self", "read")]


@pytest.mark.obligation("OB-2D-1")
async def test_an_owners_read_of_their_cart_is_one_ledger_entry(suite: Suite) -> None:
    goods = await suite.call(
        "POST",
        "/orders/admin/goods",
        headers=suite.admin,
        json={"name": "Tea cups", "price": "29.90"},
        expect=201,
    )
    _, headers = await suite.register(Person.new())

    async def add_to_cart() -> None:
        await suite.call(
            "POST",
            "/orders/cart/items",
            headers=headers,
            json={"goods_id": goods["goods_id"], "quantity": 1},
            expect=(200, 201),
        )

    await add_to_cart()
    cart = await suite.call("GET", "/orders/cart", headers=headers)
    assert cart["item_count"] == 1
    # Orders writes its events per subject in order: once the second change is in the
    # ledger, a read event orders wrote for the cart read would be there too.
    await add_to_cart()

    def settled(page: dict[str, Any]) -> bool:
        writes = [e for e in page["entries"] if e["purpose"] == "cart" and e["action"] == "write"]
        return len(writes) == 2 and bool(_reads(page, "cart"))

    page = await suite.eventually("GET", "/consent/ledger/me?limit=100", settled, headers=headers)
    assert _reads(page, "cart") == [("gateway", "self", "read")]
