"""Catalogue administration is its own right (issue 23, item 10): prices, discounts and
sale areas need ``admin:catalogue`` (the ``catalogue_manager`` role); ``admin:partners``,
which registers partners and assigns them orders, changes no price. Through the gateway,
as each member of staff would call it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kit.testing import new_subject
from tests.security.conftest import Suite, partner_registration

pytestmark = pytest.mark.security


async def test_the_partners_administrator_changes_no_price_and_no_discount(suite: Suite) -> None:
    manager = suite.staff(new_subject("stf"), "catalogue_manager")
    created = await suite.client.post(
        "/orders/admin/goods", json={"name": "Tea set", "price": "99.90"}, headers=manager
    )
    assert created.status_code == 201, created.text
    goods_id = created.json()["goods_id"]
    partners_only = suite.gateway.token(new_subject("stf"), ["admin:partners"], kind="staff")
    for attacker in (
        suite.staff(new_subject("stf"), "privacy_officer"),
        {"Authorization": f"Bearer {partners_only}"},
    ):
        for method, path, body in (
            ("PATCH", f"/orders/admin/goods/{goods_id}", {"price": "0.01"}),
            ("POST", "/orders/admin/goods", {"name": "Fake", "price": "0.01"}),
            ("POST", "/orders/admin/discounts", {"code": "ALLFREE", "amount": "99.00"}),
            ("GET", "/orders/admin/discounts", None),
            ("PUT", f"/orders/admin/goods/{goods_id}/city", {"city": "上海市"}),
        ):
            answer = await suite.client.request(method, path, json=body, headers=attacker)
            assert answer.status_code == 403, f"{method} {path}: {answer.text}"
    # Nothing changed: the price is the manager's, and no discount code exists.
    shown = await suite.client.get(f"/orders/goods/{goods_id}")
    assert Decimal(shown.json()["price"]) == Decimal("99.90")
    discounts = await suite.client.get("/orders/admin/discounts", headers=manager)
    assert discounts.status_code == 200 and discounts.json() == []


async def test_the_catalogue_manager_manages_prices_and_nothing_of_partners(
    suite: Suite,
) -> None:
    manager = suite.staff(new_subject("stf"), "catalogue_manager")
    created = await suite.client.post(
        "/orders/admin/goods", json={"name": "Cups", "price": "19.90"}, headers=manager
    )
    assert created.status_code == 201, created.text
    goods_id = created.json()["goods_id"]
    changed = await suite.client.patch(
        f"/orders/admin/goods/{goods_id}", json={"price": "17.90"}, headers=manager
    )
    assert changed.status_code == 200 and changed.json()["price"] == "17.90", changed.text
    code = await suite.client.post(
        "/orders/admin/discounts", json={"code": "WELCOME5", "amount": "5.00"}, headers=manager
    )
    assert code.status_code == 201, code.text
    registered = await suite.client.post(
        "/identity/partners", json=partner_registration("Courier Z Ltd"), headers=manager
    )
    assert registered.status_code == 403, registered.text
    listed = await suite.client.get("/identity/partners", headers=manager)
    assert listed.status_code == 403, listed.text
