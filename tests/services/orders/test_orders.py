"""Orders: the minimum an order needs and the errors naming what is missing (OB-2D-2,
OB-0-3); customs identity for cross-border goods only (OB-2D-3); optional extras
(OB-2D-4); invoice data only with an invoice (OB-2D-5); the recorded facts in exact
decimals (OB-2D-6); encryption at rest and ownership (OB-4-7); idempotent creation;
special goods behind verification (OB-2A-1); events without personal data."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from kit.catalogue import default_catalogue
from kit.db import Database
from services.orders.models import Order
from services.orders.orders import service
from services.orders.orders.tax_id import validate_taxpayer_id
from tests.services.orders.conftest import Orders

PHONE = "13812345678"
EXTRA_MOBILE = "13987654321"
LANDLINE = "0571-88886666"
NAME = "张三丰"
DETAIL = "文三路 100 号 2 幢 301 室"
TAX_ID = "91350100M000100Y43"  # a unified social credit code with a correct check character
EMAIL = "zhangsan@example.com"
CUSTOMS_NAME = "李四光"


def id_number(first_17: str = "11010519491231002") -> str:
    """A valid GB 11643 number: ``first_17`` and its ISO 7064 MOD 11-2 check character."""
    weights = [pow(2, 17 - i, 11) for i in range(17)]
    total = sum(int(d) * w for d, w in zip(first_17, weights, strict=True))
    return first_17 + "10X98765432"[total % 11]


ID_NUMBER = id_number()


def order_body(*goods_ids: str, **extra: Any) -> dict[str, Any]:
    """The least an order needs (OB-2D-2), plus ``extra``."""
    body: dict[str, Any] = {
        "items": [{"goods_id": goods_id, "quantity": 1} for goods_id in goods_ids],
        "consignee_name": NAME,
        "consignee_phone": PHONE,
        "address": {
            "province": "浙江省",
            "city": "杭州市",
            "district": "西湖区",
            "detail": DETAIL,
        },
    }
    body.update(extra)
    return body


def fields_of(response_json: dict[str, Any]) -> set[str]:
    return {error["field"] for error in response_json["errors"]}


async def place(orders: Orders, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    response = await orders.client.post("/orders", json=body, headers=headers)
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()
    return order


async def order_count(orders: Orders, headers: dict[str, str]) -> int:
    response = await orders.client.get("/orders", headers=headers, params={"limit": 100})
    assert response.status_code == 200
    return len(response.json()["items"])


# --------------------------------------------------------------------------- minimum


@pytest.mark.obligation("OB-2D-2")
async def test_an_order_names_every_missing_required_field(orders: Orders) -> None:
    _, headers = orders.user()
    empty = await orders.client.post("/orders", json={}, headers=headers)
    assert empty.status_code == 422
    assert empty.headers["content-type"].startswith("application/problem+json")
    problem = empty.json()
    assert problem["type"].endswith("/validation-error") and problem["status"] == 422
    assert fields_of(problem) == {
        "body.items",
        "body.consignee_name",
        "body.consignee_phone",
        "body.address",
    }
    assert all(error["type"] == "missing" for error in problem["errors"])

    goods = await orders.add_goods()
    partial = order_body(goods["goods_id"], address={"detail": DETAIL})
    del partial["consignee_phone"]
    response = await orders.client.post("/orders", json=partial, headers=headers)
    assert response.status_code == 422
    assert fields_of(response.json()) == {
        "body.consignee_phone",
        "body.address.province",
        "body.address.city",
        "body.address.district",
    }
    assert "body.address.province" in response.json()["detail"]

    wrong = order_body(goods["goods_id"], consignee_phone="12012345678", consignee_name=" ")
    response = await orders.client.post("/orders", json=wrong, headers=headers)
    assert response.status_code == 422
    assert fields_of(response.json()) == {"body.consignee_phone", "body.consignee_name"}
    assert "12012345678" not in response.text  # input values are never echoed
    assert await order_count(orders, headers) == 0


@pytest.mark.obligation("OB-2D-2")
async def test_the_minimum_is_enough(orders: Orders) -> None:
    goods = await orders.add_goods()
    _, headers = orders.user()
    order = await place(orders, headers, order_body(goods["goods_id"]))
    assert order["consignee_name"] == NAME and order["consignee_phone"] == PHONE
    assert order["address_region"] == {"province": "浙江省", "city": "杭州市", "district": "西湖区"}
    assert order["address_detail"] == DETAIL
    for absent in (
        "postal_code",
        "extra_phones",
        "delivery_window",
        "invoice_title",
        "invoice_tax_id",
        "invoice_email",
        "customs_name",
        "customs_id_number",
        "remarks",
    ):
        assert order[absent] is None, absent
    assert order["invoice_requested"] is False
    spaced = order_body(goods["goods_id"], consignee_phone="+86 138-1234-5678")
    assert (await place(orders, headers, spaced))["consignee_phone"] == PHONE


@pytest.mark.obligation("OB-0-3")
async def test_fields_an_order_does_not_need_are_refused_and_never_stored(
    orders: Orders,
) -> None:
    goods = await orders.add_goods()
    _, headers = orders.user()
    body = order_body(
        goods["goods_id"],
        id_card=ID_NUMBER,
        invoice_tax_id=TAX_ID,
        birthday="1990-01-01",
    )
    body["address"]["gps"] = "30.27,120.15"
    body["items"][0]["price"] = "0.01"
    response = await orders.client.post("/orders", json=body, headers=headers)
    assert response.status_code == 422
    assert fields_of(response.json()) == {
        "body.id_card",
        "body.invoice_tax_id",
        "body.birthday",
        "body.address.gps",
        "body.items.0.price",
    }
    assert all(e["type"] == "extra_forbidden" for e in response.json()["errors"])
    assert await order_count(orders, headers) == 0
    assert ID_NUMBER.encode() not in orders.raw_database()


# --------------------------------------------------------------------------- customs


@pytest.mark.obligation("OB-2D-3")
async def test_cross_border_goods_need_the_customs_identity(orders: Orders) -> None:
    wine = await orders.add_goods("Wine", "120.00", cross_border=True)
    _, headers = orders.user()
    missing = await orders.client.post(
        "/orders", json=order_body(wine["goods_id"]), headers=headers
    )
    assert missing.status_code == 422
    assert fields_of(missing.json()) == {"body.customs.name", "body.customs.id_number"}

    bad = order_body(
        wine["goods_id"], customs={"name": CUSTOMS_NAME, "id_number": ID_NUMBER[:-1] + "0"}
    )
    if bad["customs"]["id_number"] == ID_NUMBER:
        bad["customs"]["id_number"] = ID_NUMBER[:-1] + "1"
    response = await orders.client.post("/orders", json=bad, headers=headers)
    assert response.status_code == 422
    assert fields_of(response.json()) == {"body.customs.id_number"}
    assert "check character" in response.json()["errors"][0]["message"]
    legacy = order_body(
        wine["goods_id"], customs={"name": CUSTOMS_NAME, "id_number": "110105491231002"}
    )
    response = await orders.client.post("/orders", json=legacy, headers=headers)
    assert fields_of(response.json()) == {"body.customs.id_number"}

    good = order_body(wine["goods_id"], customs={"name": CUSTOMS_NAME, "id_number": ID_NUMBER})
    order = await place(orders, headers, good)
    assert order["customs_name"] == CUSTOMS_NAME
    # Sensitive: the owner's view masks it too (the catalogue's national_id rule).
    assert order["customs_id_number"] == ID_NUMBER[0] + "*" * 16 + ID_NUMBER[-1]
    fetched = (await orders.client.get(f"/orders/{order['order_id']}", headers=headers)).json()
    assert fetched["customs_id_number"] == order["customs_id_number"]
    assert ID_NUMBER not in str(fetched)


@pytest.mark.obligation("OB-2D-3")
async def test_ordinary_goods_refuse_customs_data(orders: Orders) -> None:
    tea = await orders.add_goods()
    _, headers = orders.user()
    body = order_body(tea["goods_id"], customs={"name": CUSTOMS_NAME, "id_number": ID_NUMBER})
    response = await orders.client.post("/orders", json=body, headers=headers)
    assert response.status_code == 422
    assert fields_of(response.json()) == {"body.customs.name", "body.customs.id_number"}
    assert {e["type"] for e in response.json()["errors"]} == {"extra_forbidden"}
    assert await order_count(orders, headers) == 0
    assert ID_NUMBER.encode() not in orders.raw_database()
    # Mixed goods: one cross-border item makes the customs identity needed.
    wine = await orders.add_goods("Wine", "120.00", cross_border=True)
    order = await place(
        orders,
        headers,
        {
            **body,
            "items": [
                {"goods_id": tea["goods_id"], "quantity": 1},
                {"goods_id": wine["goods_id"], "quantity": 1},
            ],
        },
    )
    assert order["customs_name"] == CUSTOMS_NAME


# --------------------------------------------------------------------------- optional


@pytest.mark.obligation("OB-2D-4")
async def test_extra_phones_delivery_window_postal_code_and_remarks_are_optional(
    orders: Orders,
) -> None:
    goods = await orders.add_goods()
    _, headers = orders.user()
    body = order_body(
        goods["goods_id"],
        extra_phones=[EXTRA_MOBILE, LANDLINE],
        delivery_window={"days": "weekends", "start": "09:00", "end": "12:00"},
        remarks="Please leave it with the concierge.",
    )
    body["address"]["postal_code"] = "310012"
    order = await place(orders, headers, body)
    assert order["extra_phones"] == [EXTRA_MOBILE, LANDLINE]
    assert order["delivery_window"] == {"days": "weekends", "start": "09:00:00", "end": "12:00:00"}
    assert order["postal_code"] == "310012"
    assert order["remarks"] == "Please leave it with the concierge."

    checks = {
        "body.extra_phones.0": order_body(goods["goods_id"], extra_phones=["12345"]),
        "body.extra_phones": order_body(goods["goods_id"], extra_phones=[EXTRA_MOBILE] * 4),
        "body.delivery_window": order_body(
            goods["goods_id"], delivery_window={"start": "12:00", "end": "09:00"}
        ),
        "body.remarks": order_body(goods["goods_id"], remarks=f"call me on {EXTRA_MOBILE}"),
    }
    for field, bad in checks.items():
        response = await orders.client.post("/orders", json=bad, headers=headers)
        assert response.status_code == 422, field
        assert fields_of(response.json()) == {field}
    bad_postal = order_body(goods["goods_id"])
    bad_postal["address"]["postal_code"] = "31001"
    response = await orders.client.post("/orders", json=bad_postal, headers=headers)
    assert fields_of(response.json()) == {"body.address.postal_code"}


# --------------------------------------------------------------------------- invoice


@pytest.mark.obligation("OB-2D-5")
async def test_invoice_fields_are_taken_only_with_an_invoice(orders: Orders) -> None:
    goods = await orders.add_goods()
    _, headers = orders.user()
    incomplete = order_body(goods["goods_id"], invoice={"title": "Signature Ltd"})
    response = await orders.client.post("/orders", json=incomplete, headers=headers)
    assert response.status_code == 422
    assert fields_of(response.json()) == {"body.invoice.tax_id", "body.invoice.email"}
    wrong = order_body(
        goods["goods_id"],
        invoice={"title": "Signature Ltd", "tax_id": TAX_ID[:-1] + "4", "email": "not-an-email"},
    )
    response = await orders.client.post("/orders", json=wrong, headers=headers)
    assert fields_of(response.json()) == {"body.invoice.tax_id", "body.invoice.email"}
    loose = order_body(goods["goods_id"], invoice_email=EMAIL)
    response = await orders.client.post("/orders", json=loose, headers=headers)
    assert fields_of(response.json()) == {"body.invoice_email"}

    with_invoice = order_body(
        goods["goods_id"],
        invoice={"title": "Signature Ltd", "tax_id": TAX_ID.lower(), "email": EMAIL},
    )
    order = await place(orders, headers, with_invoice)
    assert order["invoice_requested"] is True
    assert (order["invoice_title"], order["invoice_tax_id"], order["invoice_email"]) == (
        "Signature Ltd",
        TAX_ID,
        EMAIL,
    )
    without = await place(orders, headers, order_body(goods["goods_id"]))
    assert without["invoice_requested"] is False
    assert without["invoice_title"] is without["invoice_tax_id"] is without["invoice_email"] is None


@pytest.mark.obligation("OB-2D-5")
def test_taxpayer_id_formats() -> None:
    assert validate_taxpayer_id(TAX_ID) == TAX_ID
    assert validate_taxpayer_id("91110000802100433B") == "91110000802100433B"
    assert validate_taxpayer_id(" 91350100m000100y43 ") == TAX_ID
    assert validate_taxpayer_id("110105123456789") == "110105123456789"  # legacy, 15
    assert validate_taxpayer_id(ID_NUMBER + "01") == ID_NUMBER + "01"  # legacy, 20
    for bad, reason in (
        (TAX_ID[:-1] + "4", "check character"),
        ("91350100M000100I43", "except I, O"),  # I is not in the alphabet
        ("9135010", "18 characters"),
        ("11010A123456789", "6 digits"),
        ("1101051949123100AB01", "18-character ID number"),
    ):
        with pytest.raises(ValueError, match=reason):
            validate_taxpayer_id(bad)


# --------------------------------------------------------------------------- facts


@pytest.mark.obligation("OB-2D-6")
async def test_an_order_records_goods_number_time_discounts_amount_and_remarks(
    orders: Orders,
) -> None:
    tea = await orders.add_goods("Tea", "19.99")
    pin = await orders.add_goods("Pin", "0.10")
    await orders.add_discount("WELCOME10", "10.00")
    await orders.add_discount("SORRY", "0.05")
    _, headers = orders.user()
    before = datetime.now(UTC)
    body = order_body(discount_codes=["WELCOME10", "SORRY"], remarks="Gift wrap, please.")
    body["items"] = [
        {"goods_id": tea["goods_id"], "quantity": 3},
        {"goods_id": pin["goods_id"], "quantity": 1},
    ]
    order = await place(orders, headers, body)

    assert order["order_id"].startswith("ord_") and len(order["order_id"]) >= 20
    assert before <= datetime.fromisoformat(order["created_at"]) <= datetime.now(UTC)
    assert order["lines"] == [
        {
            "goods_id": tea["goods_id"],
            "name": "Tea",
            "quantity": 3,
            "unit_price": "19.99",
            "line_total": "59.97",
            "cross_border": False,
            "special_category": False,
        },
        {
            "goods_id": pin["goods_id"],
            "name": "Pin",
            "quantity": 1,
            "unit_price": "0.10",
            "line_total": "0.10",
            "cross_border": False,
            "special_category": False,
        },
    ]
    assert order["subtotal"] == "60.07"
    assert order["discounts"] == [
        {"code": "WELCOME10", "amount": "10.00"},
        {"code": "SORRY", "amount": "0.05"},
    ]
    assert (order["discount_total"], order["amount_payable"], order["currency"]) == (
        "10.05",
        "50.02",
        "CNY",
    )
    assert order["remarks"] == "Gift wrap, please."
    assert [s["status"] for s in order["status_history"]] == ["placed"]
    assert order["status"] == "placed"
    # The facts are as recorded when read back, and a later price change leaves them.
    _, admin = orders.staff("catalogue_manager")
    await orders.client.patch(f"/admin/goods/{tea['goods_id']}", json={"price": "1"}, headers=admin)
    fetched = (await orders.client.get(f"/orders/{order['order_id']}", headers=headers)).json()
    assert fetched == order

    another = await place(orders, headers, order_body(tea["goods_id"]))
    assert another["order_id"] != order["order_id"]


@pytest.mark.obligation("OB-2D-6")
async def test_discounts_come_from_known_codes_and_never_exceed_the_amount(
    orders: Orders,
) -> None:
    pin = await orders.add_goods("Pin", "3.00")
    await orders.add_discount("BIG", "50.00")
    await orders.add_discount("DOLLAR", "1.00", currency="USD")
    _, headers = orders.user()
    capped = await place(orders, headers, order_body(pin["goods_id"], discount_codes=["BIG"]))
    assert capped["discounts"] == [{"code": "BIG", "amount": "3.00"}]
    assert (capped["discount_total"], capped["amount_payable"]) == ("3.00", "0.00")

    bad = order_body(pin["goods_id"], discount_codes=["NOPE", "DOLLAR", "BIG", "BIG"])
    response = await orders.client.post("/orders", json=bad, headers=headers)
    assert response.status_code == 422
    assert fields_of(response.json()) == {
        "body.discount_codes.0",
        "body.discount_codes.1",
        "body.discount_codes.3",
    }
    wine = await orders.add_goods("Wine", "5.00", currency="USD")
    mixed = order_body(pin["goods_id"], wine["goods_id"])
    response = await orders.client.post("/orders", json=mixed, headers=headers)
    assert fields_of(response.json()) == {"body.items"}
    unknown = await orders.client.post("/orders", json=order_body("gds_nope"), headers=headers)
    assert fields_of(unknown.json()) == {"body.items.0.goods_id"}


# --------------------------------------------------------------------------- storage


@pytest.mark.obligation("OB-4-7")
async def test_personal_fields_are_encrypted_at_rest(orders: Orders) -> None:
    wine = await orders.add_goods("Wine", "120.00", cross_border=True)
    _, headers = orders.user()
    body = order_body(
        wine["goods_id"],
        extra_phones=[EXTRA_MOBILE],
        invoice={"title": "Signature Ltd", "tax_id": TAX_ID, "email": EMAIL},
        customs={"name": CUSTOMS_NAME, "id_number": ID_NUMBER},
        remarks="Ring the bell twice.",
    )
    body["address"]["postal_code"] = "310012"
    order = await place(orders, headers, body)
    raw = orders.raw_database()
    for secret in (
        PHONE,
        EXTRA_MOBILE,
        DETAIL,
        NAME,
        TAX_ID,
        EMAIL,
        ID_NUMBER,
        CUSTOMS_NAME,
        "Ring the bell twice.",
        "西湖区",
        "310012",
    ):
        assert secret.encode() not in raw, secret
    # ...while the facts for reconciliation and tax are plain.
    assert order["order_id"].encode() in raw and b"120.00" in raw
    fetched = (await orders.client.get(f"/orders/{order['order_id']}", headers=headers)).json()
    assert (fetched["consignee_phone"], fetched["address_detail"]) == (PHONE, DETAIL)
    assert fetched["invoice_tax_id"] == TAX_ID


@pytest.mark.obligation("OB-4-7")
async def test_only_the_owner_reads_an_order(orders: Orders) -> None:
    goods = await orders.add_goods()
    _, alice = orders.user()
    _, bob = orders.user()
    order = await place(orders, alice, order_body(goods["goods_id"]))
    path = f"/orders/{order['order_id']}"

    assert (await orders.client.get(path, headers=alice)).status_code == 200
    stolen = await orders.client.get(path, headers=bob)
    missing = await orders.client.get("/orders/ord_doesnotexist", headers=bob)
    assert stolen.status_code == missing.status_code == 404
    assert stolen.json()["detail"] == missing.json()["detail"]
    assert NAME not in stolen.text
    assert (await orders.client.get("/orders", headers=bob)).json() == {
        "items": [],
        "next_cursor": None,
    }
    listed = (await orders.client.get("/orders", headers=alice)).json()
    assert [o["order_id"] for o in listed["items"]] == [order["order_id"]]
    assert listed["items"][0] == order

    assert (await orders.client.get(path)).status_code == 401
    reader_only = orders.token("acc_readeronly", ["orders:read"])
    refused = await orders.client.post(
        "/orders",
        json=order_body(goods["goods_id"]),
        headers={"Authorization": f"Bearer {reader_only}"},
    )
    assert refused.status_code == 403 and refused.json()["missing_scopes"] == ["orders:write"]
    _, support = orders.staff("customer_service")
    assert (await orders.client.get(path, headers=support)).status_code == 403


async def test_orders_are_listed_newest_first_in_pages(orders: Orders) -> None:
    goods = await orders.add_goods()
    _, headers = orders.user()
    placed = [
        (await place(orders, headers, order_body(goods["goods_id"])))["order_id"] for _ in range(3)
    ]
    first = (await orders.client.get("/orders", params={"limit": 2}, headers=headers)).json()
    assert [o["order_id"] for o in first["items"]] == placed[::-1][:2]
    assert first["next_cursor"]
    second = (
        await orders.client.get(
            "/orders", params={"limit": 2, "cursor": first["next_cursor"]}, headers=headers
        )
    ).json()
    assert [o["order_id"] for o in second["items"]] == [placed[0]]
    assert second["next_cursor"] is None
    too_big = await orders.client.get("/orders", params={"limit": 101}, headers=headers)
    assert too_big.status_code == 422
    bad_cursor = await orders.client.get("/orders", params={"cursor": "!!"}, headers=headers)
    assert bad_cursor.status_code == 422


# --------------------------------------------------------------------------- idempotency


async def test_a_retried_order_with_the_same_idempotency_key_is_placed_once(
    orders: Orders,
) -> None:
    goods = await orders.add_goods()
    _, alice = orders.user()
    _, bob = orders.user()
    body = order_body(goods["goods_id"])
    key = {"Idempotency-Key": "checkout-7f3a"}
    first = await orders.client.post("/orders", json=body, headers={**alice, **key})
    assert first.status_code == 201
    retry = await orders.client.post("/orders", json=copy.deepcopy(body), headers={**alice, **key})
    assert retry.status_code == 200
    assert retry.json() == first.json()
    assert await order_count(orders, alice) == 1

    changed = {**body, "remarks": "Actually, two of them."}
    conflict = await orders.client.post("/orders", json=changed, headers={**alice, **key})
    assert conflict.status_code == 409
    assert conflict.json()["type"].endswith("/idempotency-key-reused")
    assert await order_count(orders, alice) == 1

    # Keys are per user: Bob's same key is his own order.
    bobs = await orders.client.post("/orders", json=body, headers={**bob, **key})
    assert bobs.status_code == 201 and bobs.json()["order_id"] != first.json()["order_id"]
    # Without a key, every request is a new order; a malformed key is refused.
    await place(orders, alice, body)
    assert await order_count(orders, alice) == 2
    bad = await orders.client.post(
        "/orders", json=body, headers={**alice, "Idempotency-Key": "x" * 201}
    )
    assert bad.status_code == 422
    assert b"checkout-7f3a" not in orders.raw_database()  # only a keyed hash is kept


async def test_a_refused_order_leaves_its_idempotency_key_unused(orders: Orders) -> None:
    goods = await orders.add_goods()
    _, alice = orders.user()
    key = {"Idempotency-Key": "checkout-refused-first"}
    refused = await orders.client.post(
        "/orders", json=order_body("gds_missing"), headers={**alice, **key}
    )
    assert refused.status_code == 422
    corrected = await orders.client.post(
        "/orders", json=order_body(goods["goods_id"]), headers={**alice, **key}
    )
    assert corrected.status_code == 201
    assert await order_count(orders, alice) == 1


async def test_two_requests_racing_with_one_idempotency_key_place_one_order(
    orders: Orders,
) -> None:
    goods = await orders.add_goods()
    _, alice = orders.user()
    body = order_body(goods["goods_id"])
    key = {"Idempotency-Key": "checkout-double-click"}
    first, second = await asyncio.gather(
        *(orders.client.post("/orders", json=body, headers={**alice, **key}) for _ in range(2))
    )
    assert sorted([first.status_code, second.status_code]) == [200, 201]
    assert first.json() == second.json()
    assert await order_count(orders, alice) == 1


# --------------------------------------------------------------------------- verification


@pytest.mark.obligation("OB-2A-1")
async def test_special_goods_need_a_verified_buyer_and_ordinary_goods_do_not(
    orders: Orders,
) -> None:
    special = await orders.add_goods("Medicine", "30.00", special_category=True)
    ordinary = await orders.add_goods()
    _, unverified = orders.user()
    _, verified = orders.user(verified=True)

    refused = await orders.client.post(
        "/orders", json=order_body(special["goods_id"]), headers=unverified
    )
    assert refused.status_code == 403
    assert refused.json()["type"].endswith("/verification-required")
    assert await order_count(orders, unverified) == 0
    assert (await place(orders, unverified, order_body(ordinary["goods_id"])))["status"] == "placed"
    order = await place(orders, verified, order_body(special["goods_id"]))
    assert order["lines"][0]["special_category"] is True


# --------------------------------------------------------------------------- events


async def test_events_record_the_order_and_every_processing_without_personal_data(
    orders: Orders,
) -> None:
    wine = await orders.add_goods("Wine", "120.00", cross_border=True)
    buyer, headers = orders.user()
    body = order_body(
        wine["goods_id"],
        extra_phones=[LANDLINE],
        invoice={"title": "Signature Ltd", "tax_id": TAX_ID, "email": EMAIL},
        customs={"name": CUSTOMS_NAME, "id_number": ID_NUMBER},
    )
    order = await place(orders, headers, body)
    await orders.client.get(f"/orders/{order['order_id']}", headers=headers)
    await orders.client.get("/orders", headers=headers)

    events = [e for e in await orders.outbox_events() if e.subject == buyer]
    text = " ".join(e.model_dump_json() for e in events)
    for secret in (PHONE, LANDLINE, NAME, DETAIL, TAX_ID, EMAIL, ID_NUMBER, CUSTOMS_NAME, "西湖区"):
        assert secret not in text, secret

    [placed] = [e for e in events if e.type == "com.signature.orders.order.placed.v1"]
    assert placed.purpose == "order.fulfilment"
    assert placed.data["order_id"] == order["order_id"]
    assert placed.data["cross_border"] is True
    # What the buyer paid is their purchase record (personal): never in an event.
    assert not {"subtotal", "discount_total", "amount_payable", "lines"} & set(placed.data)
    assert set(placed.data) == {
        "order_id",
        "status",
        "currency",
        "discount_codes",
        "goods_ids",
        "line_count",
        "cross_border",
        "special_category",
        "invoice_requested",
    }
    ledger = [e for e in events if ".personal_data." in e.type]
    # The owner's two reads are the gateway's to record (what left through it): orders
    # records only the write.
    assert [(e.data["action"], e.purpose) for e in ledger] == [("write", "order.fulfilment")]
    assert all(e.data["actor"] == buyer and e.data["resource"] == "orders.order" for e in ledger)
    assert set(ledger[0].categories) == {
        "user.name",
        "user.contact.phone_number",
        "user.contact.address",
        "user.contact.address.region",
        "user.contact.email",
        "user.financial.tax_id",
        "user.government_id.national_identification_number",
    }


# --------------------------------------------------------------------------- status, catalogue


async def test_status_moves_on_only_by_the_transition_table(orders: Orders) -> None:
    goods = await orders.add_goods()
    _, headers = orders.user()
    order = await place(orders, headers, order_body(goods["goods_id"]))
    context = orders.context
    for status in ("paid", "assigned", "shipped", "delivered", "completed"):
        async with context.database.session() as session:
            await service.change_status(
                session,
                events=context.events,
                order_id=order["order_id"],
                status=status,
                actor="test",
            )
    with pytest.raises(service.InvalidTransition):
        async with context.database.session() as session:
            await service.change_status(
                session,
                events=context.events,
                order_id=order["order_id"],
                status="cancelled",
                actor="test",
            )
    fetched = (await orders.client.get(f"/orders/{order['order_id']}", headers=headers)).json()
    assert fetched["status"] == "completed"
    assert [s["status"] for s in fetched["status_history"]] == [
        "placed",
        "paid",
        "assigned",
        "shipped",
        "delivered",
        "completed",
    ]
    async with context.database.session() as session:
        stored = await session.get(Order, order["order_id"])
        assert stored is not None and stored.completed_at is not None  # the retention clock


def test_the_catalogue_describes_every_personal_field_stored() -> None:
    catalogue = default_catalogue()
    service.check_catalogue(catalogue)
    assert {*service.PERSONAL_FIELDS, *service.PURCHASE_RECORD_FIELDS} == set(
        catalogue.fields_for("orders.order")
    )
    assert catalogue.is_sensitive("orders.order", "customs_id_number")


# --------------------------------------------------------------------------- locking


async def test_the_owner_reads_are_answered_while_a_writer_holds_sqlites_lock(
    orders: Orders,
) -> None:
    """The owner's list and single order only read: they begin DEFERRED and take no write
    lock, so a writer's open transaction does not queue them (issue 22)."""
    goods = await orders.add_goods()
    _, headers = orders.user()
    order = await place(orders, headers, order_body(goods["goods_id"]))
    database: Database = orders.app.state.database
    holding, answered = asyncio.Event(), asyncio.Event()

    async def writer() -> None:
        async with database.session() as session:  # BEGIN IMMEDIATE: the write lock
            await session.execute(text("SELECT 1"))
            holding.set()
            await answered.wait()

    task = asyncio.create_task(writer())
    await holding.wait()
    try:
        listed = await asyncio.wait_for(orders.client.get("/orders", headers=headers), 5)
        one = await asyncio.wait_for(
            orders.client.get(f"/orders/{order['order_id']}", headers=headers), 5
        )
    finally:
        answered.set()
        await task
    assert listed.status_code == 200, listed.text
    assert [item["order_id"] for item in listed.json()["items"]] == [order["order_id"]]
    assert one.status_code == 200 and one.json()["order_id"] == order["order_id"]


# --------------------------------------------------------------------------- anti-fraud


async def test_the_fraud_rules_thresholds_are_the_services_settings(orders: Orders) -> None:
    """ORDERS_FRAUD_SHARING_ACCOUNTS tunes the shared_phone rule without a code change:
    at 2, a second account ordering to one phone flags both."""
    orders.settings.fraud_sharing_accounts = 2
    goods_id = (await orders.add_goods("Tea", "10.00"))["goods_id"]
    _, security = orders.staff("security")
    buyers = [orders.user() for _ in range(2)]
    await place(orders, buyers[0][1], order_body(goods_id))
    assert (await orders.client.get("/security/flags", headers=security)).json() == []
    await place(orders, buyers[1][1], order_body(goods_id))
    flags = (await orders.client.get("/security/flags", headers=security)).json()
    assert sorted((flag["account_id"], flag["rule"]) for flag in flags) == sorted(
        (buyer_id, "shared_phone") for buyer_id, _ in buyers
    )
