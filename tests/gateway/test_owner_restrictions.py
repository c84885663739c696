"""Someone else's read of one subject's data (a partner's, a staff member's): the gateway
itself refuses the answer when its owner (the route's ``owner_field``) restricted the
purpose or a category it shows, or when their deleted account left it under a legal hold
(OB-L-2, OB-L-5). The stand-in orders answers every read, so each refusal here is the
gateway's own."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from kit.restriction import Restrictions, RestrictionState
from tests.gateway.conftest import BUYER, SECRETS, GatewayUnderTest

ID_NUMBER = "user.government_id.national_identification_number"


def learn(gw: GatewayUnderTest, state: RestrictionState) -> None:
    """What the gateway would learn from ``consent.restrictions``."""
    restrictions: Restrictions = gw.app.state.restrictions
    restrictions.learn(BUYER, state)


def assert_no_data(text: str) -> None:
    assert not [secret for secret in SECRETS if secret in text]
    assert BUYER not in text


@pytest.mark.obligation("OB-L-2")
async def test_a_partners_read_of_a_restricted_buyers_order_is_refused_by_the_gateway(
    gw: GatewayUnderTest, orders_upstream: FastAPI
) -> None:
    _, courier = gw.partner("partner:logistics", ["logistics.delivery"])
    learn(gw, RestrictionState(purposes=frozenset({"logistics.delivery"})))
    seen = len(orders_upstream.state.seen)
    refused = await gw.client.get("/orders/partner/orders/o1", headers=courier)
    assert len(orders_upstream.state.seen) == seen + 1  # orders answered; the gateway refused
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    body = refused.json()
    assert body["type"].endswith("/problems/processing-restricted")
    assert body["purpose"] == "logistics.delivery"
    assert_no_data(refused.text)
    # The customs broker's purpose was not restricted: its read goes on.
    _, broker = gw.partner("partner:customs", ["customs.clearance"])
    allowed = await gw.client.get("/orders/partner/orders/o1", headers=broker)
    assert allowed.status_code == 200
    assert allowed.json()["order_id"] == "o1"


@pytest.mark.obligation("OB-L-2")
async def test_a_restricted_category_refuses_the_partners_who_would_see_it(
    gw: GatewayUnderTest,
) -> None:
    learn(gw, RestrictionState(categories=frozenset({ID_NUMBER})))
    _, broker = gw.partner("partner:customs", ["customs.clearance"])
    refused = await gw.client.get("/orders/partner/orders/o1", headers=broker)
    assert refused.status_code == 403
    assert refused.json()["categories"] == [ID_NUMBER]
    assert_no_data(refused.text)
    # A courier never sees the ID number: its waybill is served.
    _, courier = gw.partner("partner:logistics", ["logistics.delivery"])
    waybill = await gw.client.get("/orders/partner/orders/o1", headers=courier)
    assert waybill.status_code == 200


@pytest.mark.obligation("OB-L-5")
async def test_a_partners_read_of_a_deleted_buyers_held_order_is_storage_only(
    gw: GatewayUnderTest,
) -> None:
    learn(gw, RestrictionState(storage_only=True))
    for scope, purpose in [
        ("partner:logistics", "logistics.delivery"),
        ("partner:customs", "customs.clearance"),
        ("partner:tax", "tax.invoice"),
    ]:
        _, partner = gw.partner(scope, [purpose])
        refused = await gw.client.get("/orders/partner/orders/o1", headers=partner)
        assert refused.status_code == 403, purpose
        assert refused.json()["type"].endswith("/problems/storage-only")
        assert refused.json()["purpose"] == purpose
        assert_no_data(refused.text)


async def test_a_partner_never_sees_whose_order_it_reads(gw: GatewayUnderTest) -> None:
    _, courier = gw.partner("partner:logistics", ["logistics.delivery"])
    waybill = await gw.client.get("/orders/partner/orders/o1", headers=courier)
    assert waybill.status_code == 200
    assert "account_id" not in waybill.json()
    assert BUYER not in waybill.text
