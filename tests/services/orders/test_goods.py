"""Goods and discount codes: staff add them (admin:catalogue, staff tokens only), anyone
lists the goods, prices are exact decimals."""

from __future__ import annotations

import pytest

from kit.testing import bearer
from tests.services.orders.conftest import Orders


async def test_staff_add_goods_and_anyone_lists_them(orders: Orders) -> None:
    tea = await orders.add_goods("Tea set", "99.90")
    wine = await orders.add_goods("Wine", "120", cross_border=True)
    assert tea["goods_id"].startswith("gds_") and tea["price"] == "99.90"
    assert wine["price"] == "120.00" and wine["cross_border"] is True

    listed = await orders.client.get("/goods")  # public: no token
    assert listed.status_code == 200
    assert [g["goods_id"] for g in listed.json()] == [tea["goods_id"], wine["goods_id"]]
    one = await orders.client.get(f"/goods/{tea['goods_id']}")
    assert one.status_code == 200 and one.json() == tea
    assert (await orders.client.get("/goods/gds_missing")).status_code == 404
    page = await orders.client.get("/goods", params={"limit": 1, "offset": 1})
    assert [g["goods_id"] for g in page.json()] == [wine["goods_id"]]
    assert (await orders.client.get("/goods", params={"limit": 101})).status_code == 422

    _, admin = orders.staff("catalogue_manager")
    changed = await orders.client.patch(
        f"/admin/goods/{tea['goods_id']}", json={"price": "89.5"}, headers=admin
    )
    assert changed.status_code == 200 and changed.json()["price"] == "89.50"
    types = [event.type for event in await orders.outbox_events()]
    assert "com.signature.orders.goods.added.v1" in types
    assert "com.signature.orders.goods.price_changed.v1" in types


async def test_only_staff_with_the_admin_scope_manage_goods(orders: Orders) -> None:
    body = {"name": "Tea set", "price": "10.00"}
    _, user = orders.user()
    _, support = orders.staff("customer_service")
    assert (await orders.client.post("/admin/goods", json=body)).status_code == 401
    refused = await orders.client.post("/admin/goods", json=body, headers=user)
    assert refused.status_code == 403
    assert refused.json()["missing_scopes"] == ["admin:catalogue"]
    assert (await orders.client.post("/admin/goods", json=body, headers=support)).status_code == 403
    # The partners' administrator (the privacy officer) does not set prices.
    _, officer = orders.staff("privacy_officer")
    assert (await orders.client.post("/admin/goods", json=body, headers=officer)).status_code == 403
    assert (await orders.client.get("/admin/goods", headers=user)).status_code == 403
    assert (await orders.client.post("/admin/discounts", json={}, headers=user)).status_code == 403
    _, admin = orders.staff("catalogue_manager")
    assert (await orders.client.get("/admin/goods", headers=admin)).status_code == 200


@pytest.mark.obligation("OB-0-3")
async def test_goods_input_is_strict(orders: Orders) -> None:
    _, admin = orders.staff("catalogue_manager")
    response = await orders.client.post(
        "/admin/goods",
        json={"name": "", "price": "1.234", "currency": "yuan", "colour": "red"},
        headers=admin,
    )
    assert response.status_code == 422
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"body.name", "body.price", "body.currency", "body.colour"}
    negative = await orders.client.post(
        "/admin/goods", json={"name": "x", "price": "-1"}, headers=admin
    )
    assert negative.status_code == 422


async def test_discount_codes_are_set_by_staff(orders: Orders) -> None:
    await orders.add_discount("WELCOME10", "10")
    _, admin = orders.staff("catalogue_manager")
    again = await orders.client.post(
        "/admin/discounts", json={"code": "WELCOME10", "amount": "5.00"}, headers=admin
    )
    assert again.status_code == 409
    listed = await orders.client.get("/admin/discounts", headers=admin)
    assert [(d["code"], d["amount"], d["active"]) for d in listed.json()] == [
        ("WELCOME10", "10.00", True)
    ]
    bad = await orders.client.post(
        "/admin/discounts", json={"code": "lower case", "amount": "5.00"}, headers=admin
    )
    assert bad.status_code == 422
    # A staff token cannot hold a user scope, nor a user token an admin one.
    mixed = orders.token("acc_mixedscopes", ["admin:catalogue", "orders:read"], kind="staff")
    assert (await orders.client.get("/admin/goods", headers=bearer(mixed))).status_code == 401
