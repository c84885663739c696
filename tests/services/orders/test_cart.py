"""The cart (OB-2D-1): items with the price when added, only the owner's; shared links
show a snapshot of goods only; price-drop reminders only with their own consent, and the
cart works the same without it (OB-0-2)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.orders.cart.service import price_drop_reminders, price_drop_sweep
from tests.services.orders.conftest import Orders


@pytest.mark.obligation("OB-2D-1")
async def test_add_change_remove_and_list_cart_items(orders: Orders) -> None:
    tea = await orders.add_goods("Tea set", "99.90")
    cups = await orders.add_goods("Cups", "12.50")
    owner, headers = orders.user()

    added = await orders.client.post(
        "/cart/items", json={"goods_id": tea["goods_id"], "quantity": 2}, headers=headers
    )
    assert added.status_code == 201, added.text
    item = added.json()
    assert item["item_id"].startswith("cit_")
    assert (item["quantity"], item["price_at_adding"], item["currency"]) == (2, "99.90", "CNY")
    more = await orders.client.post(
        "/cart/items", json={"goods_id": tea["goods_id"], "quantity": 3}, headers=headers
    )
    assert more.status_code == 201 and more.json()["item_id"] == item["item_id"]
    assert more.json()["quantity"] == 5
    await orders.client.post("/cart/items", json={"goods_id": cups["goods_id"]}, headers=headers)

    changed = await orders.client.patch(
        f"/cart/items/{item['item_id']}", json={"quantity": 1}, headers=headers
    )
    assert changed.status_code == 200 and changed.json()["quantity"] == 1
    cart = (await orders.client.get("/cart", headers=headers)).json()
    assert cart["item_count"] == 2
    assert [(i["name"], i["quantity"]) for i in cart["cart_items"]] == [
        ("Tea set", 1),
        ("Cups", 1),
    ]
    removed = await orders.client.delete(f"/cart/items/{item['item_id']}", headers=headers)
    assert removed.status_code == 204
    cart = (await orders.client.get("/cart", headers=headers)).json()
    assert [i["goods_id"] for i in cart["cart_items"]] == [cups["goods_id"]]

    events = [e for e in await orders.outbox_events() if e.subject == owner]
    changes = [e for e in events if e.type == "com.signature.orders.cart.changed.v1"]
    assert [e.data["action"] for e in changes] == [
        "added",
        "updated",
        "added",
        "updated",
        "removed",
    ]
    assert changes[-1].data == {
        "action": "removed",
        "goods_id": tea["goods_id"],
        "quantity": 0,
        "item_count": 1,
    }
    assert all(e.categories == ("user.behavior.purchase_history",) for e in changes)
    # Writes only: the reads' one entry is the gateway's (README, "Recording each read once").
    ledger = [e for e in events if ".personal_data." in e.type]
    assert {(e.data["action"], e.purpose) for e in ledger} == {("write", "cart")}
    assert all(e.data["resource"] == "orders.cart" for e in ledger)


@pytest.mark.obligation("OB-2D-1")
async def test_a_cart_is_its_owners_alone(orders: Orders) -> None:
    tea = await orders.add_goods()
    _, alice = orders.user()
    _, bob = orders.user()
    item = (
        await orders.client.post("/cart/items", json={"goods_id": tea["goods_id"]}, headers=alice)
    ).json()
    assert (await orders.client.get("/cart", headers=bob)).json() == {
        "cart_items": [],
        "item_count": 0,
    }
    path = f"/cart/items/{item['item_id']}"
    assert (await orders.client.patch(path, json={"quantity": 9}, headers=bob)).status_code == 404
    assert (await orders.client.delete(path, headers=bob)).status_code == 404
    assert (await orders.client.get("/cart", headers=alice)).json()["cart_items"][0][
        "quantity"
    ] == 1
    assert (await orders.client.get("/cart")).status_code == 401


@pytest.mark.obligation("OB-0-3")
async def test_cart_input_is_strict(orders: Orders) -> None:
    tea = await orders.add_goods()
    _, headers = orders.user()
    unknown = await orders.client.post(
        "/cart/items", json={"goods_id": "gds_nope"}, headers=headers
    )
    assert unknown.status_code == 422
    assert [e["field"] for e in unknown.json()["errors"]] == ["body.goods_id"]
    bad = await orders.client.post(
        "/cart/items",
        json={"goods_id": tea["goods_id"], "quantity": 0, "note": "gift"},
        headers=headers,
    )
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"body.quantity", "body.note"}
    await orders.client.post(
        "/cart/items", json={"goods_id": tea["goods_id"], "quantity": 99}, headers=headers
    )
    too_many = await orders.client.post(
        "/cart/items", json={"goods_id": tea["goods_id"]}, headers=headers
    )
    assert too_many.status_code == 422


@pytest.mark.obligation("OB-2D-1")
async def test_a_shared_cart_shows_a_snapshot_of_goods_and_nothing_about_its_owner(
    orders: Orders,
) -> None:
    tea = await orders.add_goods("Tea set", "99.90")
    cups = await orders.add_goods("Cups", "12.50")
    owner, headers = orders.user()
    nothing = await orders.client.post("/cart/shares", headers=headers)
    assert nothing.status_code == 409  # an empty cart has nothing to share
    for goods, quantity in ((tea, 2), (cups, 1)):
        await orders.client.post(
            "/cart/items",
            json={"goods_id": goods["goods_id"], "quantity": quantity},
            headers=headers,
        )
    created = await orders.client.post("/cart/shares", headers=headers)
    assert created.status_code == 201, created.text
    share = created.json()
    assert share["token"].startswith("shc_") and share["item_count"] == 2

    public = await orders.client.get(f"/shared-carts/{share['token']}")  # no token needed
    assert public.status_code == 200
    body = public.json()
    assert body == {
        "goods": [
            {
                "goods_id": tea["goods_id"],
                "name": "Tea set",
                "price": "99.90",
                "currency": "CNY",
                "quantity": 2,
            },
            {
                "goods_id": cups["goods_id"],
                "name": "Cups",
                "price": "12.50",
                "currency": "CNY",
                "quantity": 1,
            },
        ]
    }
    assert owner not in public.text and share["share_id"] not in public.text

    # A snapshot: later changes to the cart are not visible through the link.
    cart = (await orders.client.get("/cart", headers=headers)).json()
    await orders.client.delete(f"/cart/items/{cart['cart_items'][0]['item_id']}", headers=headers)
    again = (await orders.client.get(f"/shared-carts/{share['token']}")).json()
    assert len(again["goods"]) == 2
    # The token itself is not stored, only its hash.
    assert share["token"].encode() not in orders.raw_database()

    _, stranger = orders.user()
    path = f"/cart/shares/{share['share_id']}"
    assert (await orders.client.delete(path, headers=stranger)).status_code == 404
    assert (await orders.client.get("/cart/shares", headers=stranger)).json() == []
    listed = (await orders.client.get("/cart/shares", headers=headers)).json()
    assert [(s["share_id"], s["revoked_at"]) for s in listed] == [(share["share_id"], None)]
    assert (await orders.client.delete(path, headers=headers)).status_code == 204
    assert (await orders.client.delete(path, headers=headers)).status_code == 204
    gone = await orders.client.get(f"/shared-carts/{share['token']}")
    assert gone.status_code == 404
    assert (await orders.client.get("/shared-carts/shc_not-a-real-token")).status_code == 404
    listed = (await orders.client.get("/cart/shares", headers=headers)).json()
    assert listed[0]["revoked_at"] is not None

    types = [e.type for e in await orders.outbox_events() if e.subject == owner]
    assert "com.signature.orders.cart.shared.v1" in types
    assert "com.signature.orders.cart.share_revoked.v1" in types


class Consents:
    """A stand-in for the consent-state view: who consented to what, and who was asked."""

    def __init__(self, granted: set[tuple[str, str]]) -> None:
        self.granted = granted
        self.asked: list[tuple[str, str]] = []

    def __call__(self, subject: str, purpose: str) -> bool:
        self.asked.append((subject, purpose))
        return (subject, purpose) in self.granted


@pytest.mark.obligation("OB-2D-1")
async def test_price_drop_reminders_only_with_their_consent(orders: Orders) -> None:
    tea = await orders.add_goods("Tea set", "99.90")
    consenting, consenting_headers = orders.user()
    refusing, refusing_headers = orders.user()
    for headers in (consenting_headers, refusing_headers):
        response = await orders.client.post(
            "/cart/items", json={"goods_id": tea["goods_id"]}, headers=headers
        )
        assert response.status_code == 201
    _, admin = orders.staff("catalogue_manager")
    await orders.client.patch(
        f"/admin/goods/{tea['goods_id']}", json={"price": "79.90"}, headers=admin
    )
    consents = Consents({(consenting, "marketing.price_drop")})
    context = orders.context

    async with context.database.session() as session:
        none = await price_drop_reminders(
            session,
            events=context.events,
            catalogue=context.catalogue,
            owner_id=refusing,
            consent_granted=consents,
        )
    assert none == []
    assert consents.asked == [(refusing, "marketing.price_drop")]
    # Without the consent the cart works exactly the same.
    cart = (await orders.client.get("/cart", headers=refusing_headers)).json()
    assert cart["cart_items"][0]["current_price"] == "79.90"

    async with context.database.session() as session:
        reminded = await price_drop_sweep(
            session, events=context.events, catalogue=context.catalogue, consent_granted=consents
        )
    assert set(reminded) == {consenting}
    [drop] = reminded[consenting]
    assert (drop.goods_id, drop.price_at_adding, drop.current_price) == (
        tea["goods_id"],
        Decimal("99.90"),
        Decimal("79.90"),
    )
    # A drop is told once; a further drop is told again.
    async with context.database.session() as session:
        again = await price_drop_sweep(
            session, events=context.events, catalogue=context.catalogue, consent_granted=consents
        )
    assert again == {}
    await orders.client.patch(
        f"/admin/goods/{tea['goods_id']}", json={"price": "69.90"}, headers=admin
    )
    async with context.database.session() as session:
        third = await price_drop_sweep(
            session, events=context.events, catalogue=context.catalogue, consent_granted=consents
        )
    assert [d.current_price for d in third[consenting]] == [Decimal("69.90")]

    events = await orders.outbox_events()
    marketing = [e for e in events if e.purpose == "marketing.price_drop"]
    assert marketing and all(e.subject == consenting for e in marketing)
    dropped = [e for e in marketing if e.type == "com.signature.orders.cart.price_dropped.v1"]
    assert [e.data for e in dropped] == [
        {"goods_ids": [tea["goods_id"]], "count": 1},
        {"goods_ids": [tea["goods_id"]], "count": 1},
    ]
    reads = [e for e in marketing if e.type.endswith("personal_data.read.v1")]
    assert reads and all(e.data["actor"] == "orders.price_drop" for e in reads)
