"""A ceased purpose at orders (OB-2J-1): from the effective date the location features
refuse with 410 even with consent, price-drop reminders stop and their state is deleted;
the cessation is recorded and answered with counts, never personal data."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlmodel import col

from kit.cessation import cessation_handler
from kit.clock import china_today
from kit.events import Event
from kit.testing import purpose_ceased_event
from services.orders.cessation import service
from services.orders.models import CartItem, CeasedPurpose
from tests.services.orders.conftest import Orders
from tests.services.orders.test_location import POINT, granting
from tests.services.orders.test_rights import buyer_with_cart


async def apply(orders: Orders, event: Event) -> None:
    async with orders.context.database.session() as session:
        await cessation_handler(orders.context.events, service.handle)(session, event)


async def applied(orders: Orders) -> list[Event]:
    return [
        e
        for e in await orders.outbox_events()
        if e.type == "com.signature.orders.purpose.cessation.applied.v1"
    ]


@pytest.mark.obligation("OB-2J-1")
async def test_a_ceased_location_purpose_refuses_the_features_with_410(orders: Orders) -> None:
    buyer, headers = orders.user()
    orders.app.state.consent_granted = granting(buyer)
    before = await orders.client.post("/location/address-autofill", json=POINT, headers=headers)
    assert before.status_code == 200, before.text

    await apply(orders, purpose_ceased_event("location", china_today()))
    for path in ("/location/address-autofill", "/location/nearby"):
        response = await orders.client.post(path, json=POINT, headers=headers)
        assert response.status_code == 410, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["type"].endswith("purpose-ceased")
        assert response.json()["purpose"] == "location"
    (event,) = await applied(orders)
    assert event.subject == "ces_abcdefghijklmnopqrstuvwx" and event.purpose == "location"
    assert event.data["stopped"] == ["location.address_autofill", "location.nearby_goods"]
    assert event.data["counts"] == {"coordinates_deleted": 0}


@pytest.mark.obligation("OB-2J-1")
async def test_a_cessation_dated_later_refuses_only_from_its_date(orders: Orders) -> None:
    buyer, headers = orders.user()
    orders.app.state.consent_granted = granting(buyer)
    tomorrow = china_today() + timedelta(days=1)
    await apply(orders, purpose_ceased_event("location", tomorrow))
    response = await orders.client.post("/location/address-autofill", json=POINT, headers=headers)
    assert response.status_code == 200, response.text
    async with orders.context.database.session() as session:
        assert not await service.is_ceased(session, "location")
        assert await service.is_ceased(session, "location", today=tomorrow)
        row = await session.get(CeasedPurpose, "location")
        assert row is not None and row.effective_date == tomorrow


@pytest.mark.obligation("OB-2J-1")
async def test_a_ceased_price_drop_purpose_stops_reminders_and_deletes_their_state(
    orders: Orders,
) -> None:
    subject, _ = await buyer_with_cart(orders)
    async with orders.context.database.session() as session:
        for item in await session.scalars(select(CartItem)):
            item.reminded_price = Decimal("1.00")
    await apply(orders, purpose_ceased_event("marketing.price_drop", china_today()))
    async with orders.context.database.session() as session:
        items = list(
            await session.scalars(select(CartItem).where(col(CartItem.owner_id) == subject))
        )
        assert items and all(item.reminded_price is None for item in items)
    (event,) = await applied(orders)
    assert event.data["counts"] == {"reminder_states_deleted": len(items)}


@pytest.mark.obligation("OB-2J-1")
async def test_purposes_orders_does_not_collect_for_are_ignored(orders: Orders) -> None:
    await apply(orders, purpose_ceased_event("search.image_voice", china_today()))
    assert await applied(orders) == []
