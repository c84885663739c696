"""Corrections and withdraw-all at orders (OB-R-1): the consignee of an order not yet
shipped and the invoice title and email of an order not yet invoiced are corrected; every
other field is refused with a reason of its own; the answer is ``done``, ``partial`` or
``refused`` and never holds a value; the change is a processing record. Withdrawing every
consent deletes the price-drop reminder state and answers ``done``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from kit.events import Event, find_personal_data, new_event
from services.orders.models import CartItem
from services.orders.rights import service
from services.orders.rights.consumers import rights_handler
from tests.services.orders.conftest import Orders
from tests.services.orders.test_orders import EMAIL, NAME, PHONE, TAX_ID, order_body, place
from tests.services.orders.test_rights import REQUEST_ID, answers, buyer_with_cart

NEW_NAME = "李小龙"
NEW_PHONE = "13700001111"
NEW_DETAIL = "天目山路 8 号 5 幢 502 室"
NEW_EMAIL = "lixiaolong@example.com"
NEW_ADDRESS = {
    "province": "浙江省",
    "city": "杭州市",
    "district": "上城区",
    "detail": NEW_DETAIL,
    "postal_code": "310002",
}


class Corrections:
    """Stands in for the privacy center: orders' part of the request, as the user gave it."""

    def __init__(self, part: dict[str, Any] | None) -> None:
        self.part = part
        self.asked: list[tuple[str, str]] = []

    async def fetch(self, *, request_id: str, service: str) -> dict[str, Any] | None:
        self.asked.append((request_id, service))
        return self.part


def requested(subject: str, kind: str = "correction") -> Event:
    data: dict[str, Any] = {
        "request_id": REQUEST_ID,
        "kind": kind,
        "deadline": "2030-01-01T00:00:00+00:00",
        "participants": ["orders"],
    }
    if kind == "correction":
        data["has_corrections"] = True
    return new_event(
        source="/consent",
        type="com.signature.consent.rights.requested.v1",
        subject=subject,
        purpose="rights.access",
        data=data,
    )


async def correct(orders: Orders, subject: str, part: dict[str, Any] | None) -> Event:
    source = Corrections(part)
    async with orders.context.database.session() as session:
        await rights_handler(orders.context, source)(session, requested(subject))
    assert source.asked == [(REQUEST_ID, "orders")]
    (answer,) = await answers(orders)
    raw = answer.model_dump_json()
    for value in (NEW_NAME, NEW_PHONE, NEW_DETAIL, NEW_EMAIL, NAME, PHONE, EMAIL):
        assert value not in raw
    personal = orders.context.catalogue.personal_field_names()
    assert find_personal_data(answer.data, personal_fields=personal) == []
    return answer


async def owner_view(orders: Orders, headers: dict[str, str], order_id: str) -> dict[str, Any]:
    response = await orders.client.get(f"/orders/{order_id}", headers=headers)
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


@pytest.mark.obligation("OB-R-1")
async def test_the_consignee_of_an_order_not_shipped_is_corrected(orders: Orders) -> None:
    subject, headers = orders.user()
    goods = await orders.add_goods()
    placed = await place(orders, headers, order_body(goods["goods_id"]))
    await orders.advance(placed["order_id"], "paid", "assigned")

    answer = await correct(
        orders,
        subject,
        {
            "order_id": placed["order_id"],
            "consignee_name": NEW_NAME,
            "consignee_phone": NEW_PHONE,
            "address": NEW_ADDRESS,
        },
    )
    assert answer.source == "/orders" and answer.subject == subject
    assert answer.data["outcome"] == "done"
    assert answer.data["request_id"] == REQUEST_ID
    assert f"{placed['order_id']}.consignee_phone" in answer.data["reason"]

    view = await owner_view(orders, headers, placed["order_id"])
    assert view["consignee_name"] == NEW_NAME
    assert view["consignee_phone"] == NEW_PHONE
    assert view["address_detail"] == NEW_DETAIL
    assert view["address_region"]["district"] == "上城区"
    assert view["postal_code"] == "310002"

    writes = [
        e
        for e in await orders.outbox_events()
        if e.type == "com.signature.orders.personal_data.write.v1" and e.purpose == "rights.access"
    ]
    (write,) = writes
    assert write.subject == subject and write.data["actor"] == "orders.rights"
    assert {"user.name", "user.contact.phone_number", "user.contact.address"} <= set(
        write.datacategories.split()
    )


@pytest.mark.obligation("OB-R-1")
async def test_a_shipped_order_refuses_the_consignee_but_takes_the_invoice_email(
    orders: Orders,
) -> None:
    subject, headers = orders.user()
    goods = await orders.add_goods()
    invoice = {"title": NAME, "tax_id": TAX_ID, "email": EMAIL}
    placed = await place(orders, headers, order_body(goods["goods_id"], invoice=invoice))
    order_id = placed["order_id"]
    await orders.advance(order_id, "paid", "assigned", "shipped")

    answer = await correct(
        orders,
        subject,
        {
            "order_id": order_id,
            "address_detail": NEW_DETAIL,
            "invoice_email": NEW_EMAIL,
            "invoice_tax_id": "91350100M000100Y43",
            "customs_id_number": "x",
            "shoe_size": 42,
        },
    )
    assert answer.data["outcome"] == "partial"
    reason = answer.data["reason"]
    assert f"{order_id}.address_detail: order shipped: the waybill is printed" in reason
    assert f"{order_id}.invoice_tax_id: the taxpayer ID is declared" in reason
    assert f"{order_id}.customs_id_number: the customs identity" in reason
    assert f"{order_id}.shoe_size: not a field of an order" in reason
    assert f"corrected: {order_id}.invoice_email" in reason

    view = await owner_view(orders, headers, order_id)
    assert view["invoice_email"] == NEW_EMAIL
    assert view["address_detail"] != NEW_DETAIL


@pytest.mark.parametrize(
    ("statuses", "reason"),
    [
        (("paid", "assigned", "shipped", "delivered", "completed"), "order completed"),
        (("cancelled",), "order cancelled"),
    ],
)
@pytest.mark.obligation("OB-R-1")
async def test_closed_orders_refuse_every_correction(
    orders: Orders, statuses: tuple[str, ...], reason: str
) -> None:
    subject, headers = orders.user()
    goods = await orders.add_goods()
    invoice = {"title": NAME, "tax_id": TAX_ID, "email": EMAIL}
    placed = await place(orders, headers, order_body(goods["goods_id"], invoice=invoice))
    await orders.advance(placed["order_id"], *statuses)
    answer = await correct(
        orders,
        subject,
        {"order_id": placed["order_id"], "consignee_name": NEW_NAME, "invoice_title": NEW_NAME},
    )
    assert answer.data["outcome"] == "refused"
    assert answer.data["reason"].count(reason) == 2
    assert (await owner_view(orders, headers, placed["order_id"]))["consignee_name"] == NAME


@pytest.mark.obligation("OB-R-1")
async def test_invalid_values_and_other_peoples_orders_are_refused(orders: Orders) -> None:
    subject, headers = orders.user()
    _, other_headers = orders.user()
    goods = await orders.add_goods()
    mine = await place(orders, headers, order_body(goods["goods_id"]))
    theirs = await place(orders, other_headers, order_body(goods["goods_id"]))

    answer = await correct(
        orders,
        subject,
        {
            "orders": [
                {"order_id": mine["order_id"], "consignee_phone": "12345"},
                {"order_id": mine["order_id"], "invoice_email": NEW_EMAIL},
                {"order_id": theirs["order_id"], "consignee_name": NEW_NAME},
                {"consignee_name": NEW_NAME},
            ]
        },
    )
    assert answer.data["outcome"] == "refused"
    reason = answer.data["reason"]
    assert f"{mine['order_id']}.consignee_phone: not a mainland mobile number" in reason
    assert f"{mine['order_id']}.invoice_email: no invoice was asked for" in reason
    assert f"{theirs['order_id']}: no such order of yours" in reason
    assert "name the order to correct (order_id)" in reason
    assert (await owner_view(orders, other_headers, theirs["order_id"]))["consignee_name"] == NAME


@pytest.mark.obligation("OB-R-1")
async def test_without_a_corrections_source_the_correction_is_refused_and_says_why(
    orders: Orders,
) -> None:
    subject, _ = orders.user()
    async with orders.context.database.session() as session:
        await rights_handler(orders.context)(session, requested(subject))
    (answer,) = await answers(orders)
    assert answer.data["outcome"] == "refused"
    assert answer.data["reason"] == service.NO_CORRECTIONS_SOURCE


@pytest.mark.obligation("OB-R-1")
async def test_no_part_for_orders_is_refused(orders: Orders) -> None:
    subject, _ = orders.user()
    source = Corrections(None)
    async with orders.context.database.session() as session:
        await rights_handler(orders.context, source)(session, requested(subject))
    (answer,) = await answers(orders)
    assert answer.data["outcome"] == "refused"
    assert answer.data["reason"] == service.NO_CORRECTIONS


@pytest.mark.obligation("OB-R-1")
async def test_withdraw_all_forgets_price_drop_reminders_and_answers_done(
    orders: Orders,
) -> None:
    subject, _ = await buyer_with_cart(orders)
    async with orders.context.database.session() as session:
        for item in await session.scalars(
            select(CartItem).where(col(CartItem.owner_id) == subject)
        ):
            item.reminded_price = Decimal("9.90")
    async with orders.context.database.session() as session:
        await rights_handler(orders.context)(session, requested(subject, "withdraw_all"))
    (answer,) = await answers(orders)
    assert answer.data["outcome"] == "done"
    assert answer.data["reason"] == service.WITHDRAWN
    async with orders.context.database.session() as session:
        items = list(
            await session.scalars(select(CartItem).where(col(CartItem.owner_id) == subject))
        )
    assert items and all(item.reminded_price is None for item in items)  # the cart stays
