"""Partners: staff assign orders; a partner reads only orders assigned to it, only under its
purpose, only the catalogue's fields for that purpose, masked (OB-3-1, OB-3-2, OB-2D-7);
the logistics partner's delivery status moves the order (OB-2C-1); a virtual number can
replace the consignee's phone."""

from __future__ import annotations

import re
from typing import Any

import pytest

from kit.events import Event
from services.orders.models import Order
from tests.services.orders.conftest import Orders, new_partner_id
from tests.services.orders.test_orders import (
    CUSTOMS_NAME,
    DETAIL,
    EMAIL,
    EXTRA_MOBILE,
    ID_NUMBER,
    NAME,
    PHONE,
    TAX_ID,
    order_body,
    place,
)

WAYBILL_FIELDS = {
    "consignee_name",
    "consignee_phone",
    "address_region",
    "address_detail",
    "postal_code",
    "extra_phones",
    "remarks",
}
CUSTOMS_FIELDS = {"customs_name", "customs_id_number"}
PERSONAL = WAYBILL_FIELDS | CUSTOMS_FIELDS | {"invoice_title", "invoice_tax_id", "invoice_email"}


async def paid_order(orders: Orders, *, cross_border: bool = False, **extra: Any) -> str:
    goods = await orders.add_goods("Wine" if cross_border else "Tea set", cross_border=cross_border)
    _, headers = orders.user()
    if cross_border:
        extra.setdefault("customs", {"name": CUSTOMS_NAME, "id_number": ID_NUMBER})
    order = await place(orders, headers, order_body(goods["goods_id"], **extra))
    await orders.advance(order["order_id"], "paid")
    order_id: str = order["order_id"]
    return order_id


async def assign(
    orders: Orders, order_id: str, logistics: str, customs: str | None = None
) -> dict[str, Any]:
    _, admin = orders.staff()
    body: dict[str, Any] = {"logistics_partner_id": logistics}
    if customs is not None:
        body["customs_broker_id"] = customs
    response = await orders.client.put(
        f"/admin/orders/{order_id}/partners", json=body, headers=admin
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def ledger(events: list[Event], actor: str) -> list[Event]:
    return [e for e in events if ".personal_data." in e.type and e.data["actor"] == actor]


# --------------------------------------------------------------------------- ownership


@pytest.mark.obligation("OB-3-1")
async def test_a_partner_sees_only_the_orders_assigned_to_it(orders: Orders) -> None:
    first, second = await paid_order(orders), await paid_order(orders)
    unassigned = await paid_order(orders)
    courier, courier_headers = orders.partner()
    other, other_headers = orders.partner()
    await assign(orders, first, courier)
    await assign(orders, second, other)

    page = await orders.client.get("/partner/orders", headers=courier_headers)
    assert page.status_code == 200, page.text
    assert [item["order_id"] for item in page.json()["items"]] == [first]
    assert (await orders.client.get(f"/partner/orders/{first}", headers=courier_headers)).is_success
    for order_id in (second, unassigned, "ord_nosuchorder"):
        response = await orders.client.get(f"/partner/orders/{order_id}", headers=courier_headers)
        assert response.status_code == 404, order_id
        assert NAME[0] not in response.text
    listed = await orders.client.get("/partner/orders", headers=other_headers)
    assert [item["order_id"] for item in listed.json()["items"]] == [second]

    # Buyers and staff are not partners, whatever they hold.
    _, buyer = orders.user()
    _, admin = orders.staff()
    for headers in (buyer, admin):
        response = await orders.client.get("/partner/orders", headers=headers)
        assert response.status_code == 403
        assert response.json()["type"].endswith("/partner-only")


@pytest.mark.obligation("OB-3-1")
async def test_a_customs_broker_reads_only_as_a_broker_and_a_courier_only_as_a_courier(
    orders: Orders,
) -> None:
    order_id = await paid_order(orders, cross_border=True)
    courier, courier_headers = orders.partner("logistics")
    broker, broker_headers = orders.partner("customs")
    await assign(orders, order_id, courier, broker)
    # The broker's id as a courier, and the courier's as a broker, reach nothing.
    swapped = [
        orders.partner_headers(broker, "logistics"),
        orders.partner_headers(courier, "customs"),
    ]
    for headers in swapped:
        response = await orders.client.get(f"/partner/orders/{order_id}", headers=headers)
        assert response.status_code == 404
    for headers in (courier_headers, broker_headers):
        response = await orders.client.get(f"/partner/orders/{order_id}", headers=headers)
        assert response.status_code == 200


# --------------------------------------------------------------------------- the views


@pytest.mark.obligation("OB-3-1")
async def test_the_privacy_waybill_holds_only_the_delivery_fields_masked(orders: Orders) -> None:
    order_id = await paid_order(
        orders,
        extra_phones=[EXTRA_MOBILE],
        remarks="请放门口",
        invoice={"title": "Signature Ltd", "tax_id": TAX_ID, "email": EMAIL},
        address={
            "province": "浙江省",
            "city": "杭州市",
            "district": "西湖区",
            "detail": DETAIL,
            "postal_code": "310012",
        },
    )
    courier, headers = orders.partner("logistics")
    await assign(orders, order_id, courier)

    response = await orders.client.get(f"/partner/orders/{order_id}", headers=headers)
    assert response.status_code == 200, response.text
    waybill = response.json()
    assert set(waybill) & PERSONAL == WAYBILL_FIELDS  # nothing else personal, not even null
    assert waybill["consignee_name"] == "张**"
    assert waybill["consignee_phone"] == "138****5678"
    assert waybill["extra_phones"] == ["139****4321"]
    assert waybill["address_region"] == {
        "province": "浙江省",
        "city": "杭州市",
        "district": "西湖区",
    }
    assert waybill["address_detail"] == DETAIL  # the courier must find the door
    assert waybill["postal_code"] == "310012"
    assert waybill["remarks"] == "请放门口"
    assert "virtual_number" not in waybill
    for secret in (PHONE, EXTRA_MOBILE, NAME, TAX_ID, EMAIL, "Signature Ltd"):
        assert secret not in response.text, secret
    # The non-personal facts the courier needs.
    assert waybill["order_id"] == order_id and waybill["status"] == "assigned"
    assert waybill["role"] == "logistics" and waybill["purpose"] == "logistics.delivery"
    # What the buyer paid is theirs: no goods, prices or amounts on a waybill.
    assert not {"lines", "amount_payable", "subtotal", "discounts"} & set(waybill)

    # One order's read names the buyer for the gateway's check, which removes it before
    # the partner sees the answer (policy/routes.yaml owner_hidden); a page never names them.
    owner = waybill.pop("account_id")
    assert owner.startswith("acc_")
    listed = await orders.client.get("/partner/orders", headers=headers)
    assert listed.json()["items"] == [waybill]

    # Every read is on the buyer's ledger: the partner, its purpose, the categories shown.
    reads = ledger(await orders.outbox_events(), courier)
    assert len(reads) == 2
    assert all(e.purpose == "logistics.delivery" and e.data["action"] == "read" for e in reads)
    assert set(reads[0].categories) == {
        "user.name",
        "user.contact.phone_number",
        "user.contact.address",
        "user.contact.address.region",
        "user.contact.address.postal_code",
        "user.behavior.purchase_history",
    }


@pytest.mark.obligation("OB-3-1")
async def test_the_customs_broker_sees_the_customs_identity_and_nothing_of_the_consignee(
    orders: Orders,
) -> None:
    order_id = await paid_order(orders, cross_border=True)
    courier, courier_headers = orders.partner("logistics")
    broker, broker_headers = orders.partner("customs")
    assignment = await assign(orders, order_id, courier, broker)
    assert {(p["partner_id"], p["role"], p["purpose"]) for p in assignment["partners"]} == {
        (courier, "logistics", "logistics.delivery"),
        (broker, "customs", "customs.clearance"),
    }

    customs = (
        await orders.client.get(f"/partner/orders/{order_id}", headers=broker_headers)
    ).json()
    assert set(customs) & PERSONAL == CUSTOMS_FIELDS
    assert customs["customs_name"] == CUSTOMS_NAME
    assert customs["customs_id_number"] == ID_NUMBER  # in full, for clearance only
    assert customs["purpose"] == "customs.clearance"
    assert PHONE not in str(customs) and NAME not in str(customs)

    waybill = (
        await orders.client.get(f"/partner/orders/{order_id}", headers=courier_headers)
    ).json()
    assert not set(waybill) & CUSTOMS_FIELDS
    assert ID_NUMBER not in str(waybill) and CUSTOMS_NAME not in str(waybill)

    [read] = ledger(await orders.outbox_events(), broker)
    assert read.purpose == "customs.clearance"
    assert set(read.categories) == {
        "user.name",
        "user.government_id.national_identification_number",
        "user.financial.purchase_record",  # the declared goods and value
    }


@pytest.mark.obligation("OB-3-1")
async def test_a_virtual_number_replaces_the_consignee_phone(orders: Orders) -> None:
    orders.settings.virtual_number_prefix = "95013"
    order_id = await paid_order(orders)
    other_id = await paid_order(orders)
    courier, headers = orders.partner()
    await assign(orders, order_id, courier)
    await assign(orders, other_id, courier)

    response = await orders.client.get(f"/partner/orders/{order_id}", headers=headers)
    waybill = response.json()
    assert "consignee_phone" not in waybill
    assert re.fullmatch(r"95013-\d{6}", waybill["virtual_number"])
    assert PHONE not in response.text and "138****" not in response.text
    assert waybill["consignee_name"] == "张**"
    again = (await orders.client.get(f"/partner/orders/{order_id}", headers=headers)).json()
    assert again["virtual_number"] == waybill["virtual_number"]  # stable per order
    other = (await orders.client.get(f"/partner/orders/{other_id}", headers=headers)).json()
    assert other["virtual_number"].startswith("95013-")
    # The phone was not even decrypted for the courier.
    reads = ledger(await orders.outbox_events(), courier)
    assert reads and all("user.contact.phone_number" not in e.categories for e in reads)


# --------------------------------------------------------------------------- purposes


@pytest.mark.obligation("OB-3-2")
async def test_a_partner_token_without_its_purpose_is_refused(orders: Orders) -> None:
    order_id = await paid_order(orders, cross_border=True)
    courier, broker = new_partner_id(), new_partner_id()
    await assign(orders, order_id, courier, broker)

    # Each refusal names the purpose the partner's role is served under.
    cases = [
        (orders.partner_headers(courier, "logistics", purposes=[]), "logistics.delivery"),
        (
            orders.partner_headers(courier, "logistics", purposes=["customs.clearance"]),
            "logistics.delivery",
        ),
        (
            orders.partner_headers(courier, "logistics", purposes=["marketing.price_drop"]),
            "logistics.delivery",
        ),
        (
            orders.partner_headers(broker, "customs", purposes=["logistics.delivery"]),
            "customs.clearance",
        ),
    ]
    for headers, role_purpose in cases:
        for path in ("/partner/orders", f"/partner/orders/{order_id}"):
            response = await orders.client.get(path, headers=headers)
            assert response.status_code == 403, path
            problem = response.json()
            assert problem["type"].endswith("/purpose-not-allowed")
            assert problem["purpose"] == role_purpose, problem
            assert NAME not in response.text and ID_NUMBER not in response.text

    both = orders.token(
        courier,
        ["partner:logistics", "partner:customs"],
        kind="partner",
        client_type="server",
        purposes=["logistics.delivery", "customs.clearance"],
    )
    response = await orders.client.get(
        f"/partner/orders/{order_id}", headers={"Authorization": f"Bearer {both}"}
    )
    assert response.status_code == 403
    assert response.json()["type"].endswith("/ambiguous-duty")

    tax = orders.token(
        courier, ["partner:tax"], kind="partner", client_type="server", purposes=["tax.invoice"]
    )
    response = await orders.client.get(
        "/partner/orders", headers={"Authorization": f"Bearer {tax}"}
    )
    assert response.status_code == 403
    assert response.json()["type"].endswith("/insufficient-scope")
    assert not ledger(await orders.outbox_events(), courier)


# --------------------------------------------------------------------------- assignment


@pytest.mark.obligation("OB-3-1")
async def test_assignment_by_staff_only_with_a_broker_for_cross_border_goods_only(
    orders: Orders,
) -> None:
    domestic = await paid_order(orders)
    abroad = await paid_order(orders, cross_border=True)
    courier, broker = new_partner_id(), new_partner_id()
    url = f"/admin/orders/{domestic}/partners"

    _, buyer = orders.user()
    _, support = orders.staff("customer_service")
    _, partner_headers = orders.partner()
    for headers in (buyer, support, partner_headers):
        response = await orders.client.put(
            url, json={"logistics_partner_id": courier}, headers=headers
        )
        assert response.status_code == 403

    _, admin = orders.staff()
    refused = [
        (domestic, {"logistics_partner_id": courier, "customs_broker_id": broker}),
        (abroad, {"logistics_partner_id": courier}),
        (abroad, {"logistics_partner_id": courier, "customs_broker_id": courier}),
    ]
    for order_id, body in refused:
        response = await orders.client.put(
            f"/admin/orders/{order_id}/partners", json=body, headers=admin
        )
        assert response.status_code == 422, body
        assert response.json()["errors"][0]["field"] == "body.customs_broker_id"
    invalid: list[dict[str, Any]] = [
        {"logistics_partner_id": "13812345678"},
        {"logistics_partner_id": courier, "x": 1},
    ]
    for wrong in invalid:
        response = await orders.client.put(url, json=wrong, headers=admin)
        assert response.status_code == 422
        assert "13812345678" not in response.text

    # Placed but not paid: not yet.
    goods = await orders.add_goods()
    _, headers = orders.user()
    unpaid = (await place(orders, headers, order_body(goods["goods_id"])))["order_id"]
    response = await orders.client.put(
        f"/admin/orders/{unpaid}/partners", json={"logistics_partner_id": courier}, headers=admin
    )
    assert response.status_code == 409
    response = await orders.client.put(
        "/admin/orders/ord_nosuchorder/partners",
        json={"logistics_partner_id": courier},
        headers=admin,
    )
    assert response.status_code == 404

    assigned = await assign(orders, abroad, courier, broker)
    assert assigned["status"] == "assigned" and assigned["cross_border"] is True
    # Reassignment before pick-up is allowed, and does not repeat the status step.
    replacement = new_partner_id()
    again = await assign(orders, abroad, replacement, broker)
    assert {p["partner_id"] for p in again["partners"]} == {replacement, broker}

    events = [e for e in await orders.outbox_events() if e.data.get("order_id") == abroad]
    assigned_events = [e for e in events if e.type == "com.signature.orders.order.assigned.v1"]
    assert len(assigned_events) == 2
    first = assigned_events[0]
    assert set(first.data) == {"order_id", "partners", "by"}
    assert {(p["partner_id"], p["role"]) for p in first.data["partners"]} == {
        (courier, "logistics"),
        (broker, "customs"),
    }
    assert "user.government_id.national_identification_number" in first.categories
    text = first.model_dump_json()
    for secret in (NAME, PHONE, ID_NUMBER, CUSTOMS_NAME, DETAIL):
        assert secret not in text
    steps = [e.data["status"] for e in events if e.type.endswith(".status_changed.v1")]
    assert steps == ["paid", "assigned"]


# --------------------------------------------------------------------------- delivery


async def report(orders: Orders, headers: dict[str, str], order_id: str, status: str) -> Any:
    return await orders.client.post(
        f"/partner/orders/{order_id}/delivery", json={"status": status}, headers=headers
    )


@pytest.mark.obligation("OB-2C-1")
async def test_delivery_status_from_the_logistics_partner_moves_the_order(orders: Orders) -> None:
    order_id = await paid_order(orders, cross_border=True)
    courier, headers = orders.partner("logistics")
    broker, broker_headers = orders.partner("customs")
    await assign(orders, order_id, courier, broker)

    refused = await report(orders, broker_headers, order_id, "picked_up")
    assert refused.status_code == 403 and refused.json()["type"].endswith("/wrong-duty")
    _, stranger = orders.partner("logistics")
    assert (await report(orders, stranger, order_id, "picked_up")).status_code == 404
    too_soon = await report(orders, headers, order_id, "delivered")
    assert too_soon.status_code == 409
    bad = await orders.client.post(
        f"/partner/orders/{order_id}/delivery",
        json={"status": "delivered", "note": "left with neighbour"},
        headers=headers,
    )
    assert bad.status_code == 422  # a status only, no free text

    picked = await report(orders, headers, order_id, "picked_up")
    assert picked.status_code == 200, picked.text
    assert picked.json()["order_status"] == "shipped"
    assert picked.json()["delivery_status"] == "picked_up"
    retried = await report(orders, headers, order_id, "picked_up")
    assert retried.json() == picked.json()  # a retry is answered, not recorded twice
    moving = await report(orders, headers, order_id, "in_transit")
    assert moving.json()["order_status"] == "shipped"
    failed = await report(orders, headers, order_id, "failed")
    assert failed.json()["order_status"] == "shipped"
    delivered = await report(orders, headers, order_id, "delivered")
    assert delivered.status_code == 200
    assert delivered.json()["order_status"] == "completed"  # delivery completes the order

    async with orders.context.database.session() as session:
        stored = await session.get(Order, order_id)
        assert stored is not None and stored.completed_at is not None  # the retention clock
    # The duty is over: the partners no longer see the order.
    for partner_headers in (headers, broker_headers):
        gone = await orders.client.get(f"/partner/orders/{order_id}", headers=partner_headers)
        assert gone.status_code == 404
        listed = await orders.client.get("/partner/orders", headers=partner_headers)
        assert listed.json()["items"] == []
    assert (await report(orders, headers, order_id, "delivered")).status_code == 200  # retry
    assert (await report(orders, headers, order_id, "in_transit")).status_code == 409

    events = [e for e in await orders.outbox_events() if e.data.get("order_id") == order_id]
    changed = [e for e in events if e.type == "com.signature.orders.order.status_changed.v1"]
    assert [(e.data["status"], e.data["by"]) for e in changed][-3:] == [
        ("shipped", courier),
        ("delivered", courier),
        ("completed", courier),
    ]
    updates = [e for e in events if e.type == "com.signature.orders.order.delivery_updated.v1"]
    assert [e.data["delivery_status"] for e in updates] == [
        "picked_up",
        "in_transit",
        "failed",
        "delivered",
    ]
    assert all(
        e.purpose == "logistics.delivery" and e.data["partner_id"] == courier for e in updates
    )
