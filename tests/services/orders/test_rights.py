"""Rights requests at orders (OB-R-1, OB-4-1, OB-4-2): the privacy center's service token
reads the subject's orders and cart with purposes and retention, nobody else does; a
deletion request keeps the transaction records of a completed order under a legal hold
until three years after completion, deletes every other personal field and the cart, and
answers ``partial`` with categories, legal basis and dates only."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from kit.auth import PARTNER_SCOPES, USER_SCOPES
from kit.events import Event, find_personal_data, new_event
from kit.testing import bearer
from services.orders.models import CartItem
from services.orders.payments.service import CancellationNotPossible
from services.orders.rights import service
from services.orders.rights.consumers import rights_handler
from tests.services.orders.conftest import Orders
from tests.services.orders.test_orders import (
    DETAIL,
    EXTRA_MOBILE,
    ID_NUMBER,
    NAME,
    PHONE,
    order_body,
    place,
)
from tests.services.orders.test_retention import completed_order, stored

SERVICE_ID = "svc_consentprivacycenter"
REQUEST_ID = "rr_abcdefghijklmnopqrstuvwx"
TRANSACTION_FIELDS = (
    "consignee_name",
    "consignee_phone",
    "address_region",
    "address_detail",
    "remarks",
)


def service_headers(orders: Orders, **overrides: Any) -> dict[str, str]:
    """A service token as identity issues it to the privacy center's client."""
    claims: dict[str, Any] = {
        "kind": "service",
        "client_type": "server",
        "purposes": ["rights.access"],
    }
    claims |= overrides
    scopes = claims.pop("scopes", ["service:rights.access"])
    return bearer(orders.token(SERVICE_ID, scopes, **claims))


def requested(subject: str, kind: str = "deletion") -> Event:
    return new_event(
        source="/consent",
        type="com.signature.consent.rights.requested.v1",
        subject=subject,
        purpose="rights.access",
        data={
            "request_id": REQUEST_ID,
            "kind": kind,
            "deadline": "2030-01-01T00:00:00+00:00",
            "participants": ["identity", "orders", "transfer", "consent"],
        },
    )


async def answers(orders: Orders) -> list[Event]:
    """Orders' answers to rights requests, in its outbox."""
    return [
        e
        for e in await orders.outbox_events()
        if e.type == "com.signature.orders.rights.completed.v1"
    ]


async def buyer_with_cart(orders: Orders) -> tuple[str, dict[str, str]]:
    subject, headers = orders.user()
    goods = await orders.add_goods("Cups", "19.90")
    added = await orders.client.post(
        "/cart/items", json={"goods_id": goods["goods_id"], "quantity": 2}, headers=headers
    )
    assert added.status_code == 201, added.text
    return subject, headers


@pytest.mark.obligation("OB-R-1")
async def test_the_export_gives_a_service_token_orders_and_cart_with_purposes_and_retention(
    orders: Orders,
) -> None:
    subject, headers = await buyer_with_cart(orders)
    goods = await orders.add_goods("Wine", cross_border=True)
    body = order_body(
        goods["goods_id"],
        extra_phones=[EXTRA_MOBILE],
        customs={"name": "李四光", "id_number": ID_NUMBER},
    )
    placed = await place(orders, headers, body)
    await orders.advance(
        placed["order_id"], "paid", "assigned", "shipped", "delivered", "completed"
    )
    order = await stored(orders, placed["order_id"])
    response = await orders.client.get(f"/rights/export/{subject}", headers=service_headers(orders))
    assert response.status_code == 200, response.text
    body = response.json()
    (exported,) = body["orders"]
    assert exported["order_id"] == order.id and exported["status"] == "completed"
    assert exported["lines"] and exported["amount_payable"]
    fields = exported["fields"]
    assert fields["consignee_name"]["value"] == NAME
    assert fields["consignee_phone"]["value"] == PHONE
    assert fields["address_detail"]["value"] == DETAIL
    assert fields["extra_phones"]["value"] == [EXTRA_MOBILE]
    masked = fields["customs_id_number"]["value"]
    assert masked != ID_NUMBER and "*" in masked  # rights.access sees it masked (OB-2A-3)
    name = fields["consignee_name"]
    assert name["category"] == "user.name"
    assert {"order.fulfilment", "rights.access", "legal.retention"} <= set(name["purposes"])
    assert name["retention"]["id"] == "transaction_record"
    assert order.completed_at is not None
    until = name["retention"]["until"]
    assert until.startswith(str(order.completed_at.year + 3))
    assert fields["extra_phones"]["retention"]["id"] == "fulfilment_contact"
    (item,) = body["cart"]["items"]
    assert item["goods_name"] == "Cups" and item["quantity"] == 2
    assert body["cart"]["about"]["category"] == "user.behavior.purchase_history"

    reads = [
        e
        for e in await orders.outbox_events()
        if e.type == "com.signature.orders.personal_data.read.v1" and e.purpose == "rights.access"
    ]
    assert {e.data["resource"] for e in reads} == {"orders.order", "orders.cart"}
    assert all(e.data["actor"] == SERVICE_ID and e.subject == subject for e in reads)


@pytest.mark.parametrize(
    "kind",
    ["user", "partner", "other-service-purpose", "no-purpose"],
)
@pytest.mark.obligation("OB-R-1")
async def test_the_export_refuses_anyone_but_the_rights_service(orders: Orders, kind: str) -> None:
    subject, headers = orders.user()
    goods = await orders.add_goods()
    await place(orders, headers, order_body(goods["goods_id"]))
    tokens = {
        "user": headers,
        "partner": bearer(
            orders.token(
                "ptn_somebody",
                sorted(PARTNER_SCOPES),
                kind="partner",
                client_type="server",
                purposes=["logistics.delivery"],
            )
        ),
        "other-service-purpose": service_headers(
            orders, scopes=["service:cross_border.transfer"], purposes=["cross_border.transfer"]
        ),
        "no-purpose": service_headers(orders, purposes=[]),
    }
    response = await orders.client.get(f"/rights/export/{subject}", headers=tokens[kind])
    # Valid tokens all, none with the right: a service token without the route's purpose
    # (rights.access) is refused that purpose, like the others.
    assert response.status_code == 403, response.text
    assert NAME not in response.text and PHONE not in response.text


@pytest.mark.obligation("OB-R-1")
async def test_a_user_token_with_every_user_scope_is_refused(orders: Orders) -> None:
    subject, _ = orders.user()
    response = await orders.client.get(
        f"/rights/export/{subject}", headers=orders.headers_of(subject, USER_SCOPES)
    )
    assert response.status_code == 403


@pytest.mark.obligation("OB-4-1")
async def test_a_deletion_keeps_transaction_records_under_a_legal_hold_and_deletes_the_rest(
    orders: Orders,
) -> None:
    subject, headers = await buyer_with_cart(orders)
    order = await completed_order(orders, headers, extra_phones=[EXTRA_MOBILE], remarks="请放门口")
    assert order.completed_at is not None
    context = orders.context
    async with context.database.session() as session:
        await rights_handler(context)(session, requested(subject))

    kept = await stored(orders, order.id)
    for name in TRANSACTION_FIELDS:
        assert getattr(kept, f"{name}_encrypted"), name  # kept under the legal hold
    assert kept.extra_phones_encrypted is None  # fulfilment contact: deleted now
    assert kept.anonymised_at is None and kept.buyer_id == subject
    async with context.database.session() as session:
        left = await session.scalar(
            select(func.count()).select_from(CartItem).where(col(CartItem.owner_id) == subject)
        )
        assert left == 0

    (answer,) = await answers(orders)
    assert answer.subject == subject and answer.source == "/orders"
    assert answer.data["request_id"] == REQUEST_ID
    assert answer.data["outcome"] == "partial"
    assert "user.behavior.purchase_history" in answer.data["deleted"]  # the cart
    assert "user.contact.phone_number" in answer.data["deleted"]  # the extra phones
    until = order.completed_at.replace(year=order.completed_at.year + 3).date().isoformat()
    held = {item["category"]: item for item in answer.data["kept"]}
    assert set(held) == {
        "user.name",
        "user.contact.phone_number",
        "user.contact.address",
        "user.contact.address.region",
        "user.behavior.purchase_history",
    }
    for item in held.values():
        assert item["retention"] == "transaction_record"
        assert item["until"] == until
        assert "E-Commerce Law art. 31" in item["legal_basis"]
    raw = answer.model_dump_json()
    assert NAME not in raw and PHONE not in raw and EXTRA_MOBILE not in raw
    personal = context.catalogue.personal_field_names()
    assert find_personal_data(answer.data, personal_fields=personal) == []

    # The export now shows only what is kept, and the empty cart.
    body = (
        await orders.client.get(f"/rights/export/{subject}", headers=service_headers(orders))
    ).json()
    assert set(body["orders"][0]["fields"]) == set(TRANSACTION_FIELDS)
    assert body["cart"]["items"] == []


@pytest.mark.obligation("OB-4-2")
async def test_a_deletion_after_the_period_anonymises_and_answers_done(orders: Orders) -> None:
    subject, headers = orders.user()
    order = await completed_order(orders, headers)
    assert order.completed_at is not None
    context = orders.context
    later = order.completed_at.replace(year=order.completed_at.year + 4)
    async with context.database.session() as session:
        await service.handle(
            session,
            events=context.events,
            catalogue=context.catalogue,
            event=requested(subject),
            now=later,
        )
    gone = await stored(orders, order.id)
    assert gone.anonymised_at is not None and gone.buyer_id != subject
    (answer,) = await answers(orders)
    assert answer.data["outcome"] == "done" and answer.data["kept"] == []


@pytest.mark.obligation("OB-R-1")
async def test_a_deletion_cancels_an_unpaid_order_and_its_clock_starts(orders: Orders) -> None:
    subject, headers = orders.user()
    goods = await orders.add_goods()
    placed = await place(orders, headers, order_body(goods["goods_id"]))
    context = orders.context
    async with context.database.session() as session:
        await rights_handler(context)(session, requested(subject))
    ended = await stored(orders, placed["order_id"])
    assert ended.status == "cancelled" and ended.retention_starts_at is not None
    assert ended.consignee_name_encrypted  # a transaction record, under the legal hold
    (answer,) = await answers(orders)
    assert answer.data["outcome"] == "partial"
    assert "1 order(s) not yet picked up were cancelled, so no courier" in answer.data["reason"]
    assert all(item["until"] for item in answer.data["kept"])


@pytest.mark.obligation("OB-R-1")
async def test_an_order_on_its_way_keeps_its_records_until_it_ends(orders: Orders) -> None:
    subject, headers = orders.user()
    goods = await orders.add_goods()
    placed = await place(orders, headers, order_body(goods["goods_id"]))
    await orders.advance(placed["order_id"], "paid", "assigned", "shipped")
    context = orders.context
    async with context.database.session() as session:
        await rights_handler(context)(session, requested(subject))
    still = await stored(orders, placed["order_id"])
    assert still.status == "shipped" and still.consignee_name_encrypted
    (answer,) = await answers(orders)
    assert answer.data["outcome"] == "partial"
    assert "cancelled" not in answer.data["reason"]
    assert all("until" not in item for item in answer.data["kept"])


@pytest.mark.obligation("OB-R-1")
async def test_a_paid_order_without_a_way_to_refund_it_is_tried_again(orders: Orders) -> None:
    """The deletion's transaction rolls back (the consumer tries again, then dead-letters):
    nothing is deleted while a paid order cannot be refunded."""
    subject, headers = orders.user()
    goods = await orders.add_goods()
    placed = await place(orders, headers, order_body(goods["goods_id"]))
    await orders.advance(placed["order_id"], "paid")
    context = orders.context
    with pytest.raises(CancellationNotPossible, match="no payment provider API"):
        async with context.database.session() as session:
            await rights_handler(context)(session, requested(subject))
    still = await stored(orders, placed["order_id"])
    assert still.status == "paid"
    assert await answers(orders) == []


@pytest.mark.parametrize(("kind", "outcome"), [("access", "done"), ("withdraw_all", "done")])
@pytest.mark.obligation("OB-R-1")
async def test_other_kinds_are_answered_without_changes(
    orders: Orders, kind: str, outcome: str
) -> None:
    subject, _ = await buyer_with_cart(orders)
    context = orders.context
    async with context.database.session() as session:
        await rights_handler(context)(session, requested(subject, kind))
    (answer,) = await answers(orders)
    assert answer.data["outcome"] == outcome
    async with context.database.session() as session:
        assert await session.scalar(
            select(func.count()).select_from(CartItem).where(col(CartItem.owner_id) == subject)
        )
