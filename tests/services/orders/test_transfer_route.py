"""``GET /transfer/orders/{id}``: the transfer service, with a service token for
``cross_border.transfer``, gets only the requested fields that purpose may see, masked as
the catalogue says, of one subject's order; nobody else reads here (OB-4-4, OB-4-7,
OB-3-1); every read is a processing record."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import col

from kit.auth import STAFF_ROLE_SCOPES, USER_SCOPES
from kit.models import utcnow
from kit.testing import bearer
from services.orders.models import Order
from tests.services.orders.conftest import Orders
from tests.services.orders.test_delivery import ledger
from tests.services.orders.test_orders import (
    CUSTOMS_NAME,
    DETAIL,
    EXTRA_MOBILE,
    ID_NUMBER,
    NAME,
    PHONE,
    order_body,
    place,
)

SERVICE_ID = "svc_transferservicexyz"
ASKED = [
    "consignee_name",
    "consignee_phone",
    "address_region",
    "address_detail",
    "postal_code",
    "extra_phones",
    "customs_name",
    "customs_id_number",
    "remarks",
    "invoice_tax_id",
]


def service_headers(
    orders: Orders,
    scopes: tuple[str, ...] = ("service:cross_border.transfer",),
    purposes: tuple[str, ...] = ("cross_border.transfer",),
    subject: str = SERVICE_ID,
) -> dict[str, str]:
    """A service token as identity issues it to the transfer service's client."""
    token = orders.token(
        subject, scopes, kind="service", client_type="server", purposes=list(purposes)
    )
    return bearer(token)


async def cross_border_order(orders: Orders) -> tuple[str, str]:
    """A buyer's cross-border order with every optional personal field; (subject, id)."""
    goods = await orders.add_goods("Wine", cross_border=True)
    subject, headers = orders.user()
    body = order_body(
        goods["goods_id"],
        customs={"name": CUSTOMS_NAME, "id_number": ID_NUMBER},
        extra_phones=[EXTRA_MOBILE],
        remarks="请放门口",
        address={
            "province": "浙江省",
            "city": "杭州市",
            "district": "西湖区",
            "detail": DETAIL,
            "postal_code": "310012",
        },
    )
    order = await place(orders, headers, body)
    return subject, str(order["order_id"])


async def read(
    orders: Orders, order_id: str, subject: str, fields: list[str], headers: dict[str, str]
) -> Any:
    return await orders.client.get(
        f"/transfer/orders/{order_id}",
        params={"subject": subject, "fields": ",".join(fields)},
        headers=headers,
    )


@pytest.mark.obligation("OB-4-4")
async def test_a_service_token_gets_exactly_the_allowed_fields_masked(orders: Orders) -> None:
    subject, order_id = await cross_border_order(orders)
    response = await read(orders, order_id, subject, ASKED, service_headers(orders))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "order_id": order_id,
        "subject": subject,
        "fields": {
            "consignee_name": "张**",  # the catalogue's cross_border.transfer masks
            "consignee_phone": "138****5678",
            "address_region": {"province": "浙江省", "city": "杭州市", "district": "西湖区"},
            "address_detail": DETAIL,
            "postal_code": "310012",
        },
    }
    for secret in (NAME, PHONE, EXTRA_MOBILE, CUSTOMS_NAME, ID_NUMBER, "请放门口"):
        assert secret not in response.text, secret

    # Only what is asked: the address alone.
    narrow = await read(orders, order_id, subject, ["address_region"], service_headers(orders))
    assert narrow.json()["fields"] == {
        "address_region": {"province": "浙江省", "city": "杭州市", "district": "西湖区"}
    }
    # A field the purpose may not see, asked alone, gives nothing and records nothing.
    hidden = await read(orders, order_id, subject, ["customs_id_number"], service_headers(orders))
    assert hidden.status_code == 200 and hidden.json()["fields"] == {}

    # Each read is a processing record: the service client, the purpose, what it got.
    records = ledger(await orders.outbox_events(), SERVICE_ID)
    assert len(records) == 2
    first = records[0]
    assert first.subject == subject and first.purpose == "cross_border.transfer"
    assert first.data == {"actor": SERVICE_ID, "resource": "orders.order", "action": "read"}
    assert set(first.categories) == {
        "user.name",
        "user.contact.phone_number",
        "user.contact.address.region",
        "user.contact.address",
        "user.contact.address.postal_code",
    }


@pytest.mark.obligation("OB-4-7")
async def test_users_staff_partners_and_other_services_are_refused(orders: Orders) -> None:
    subject, order_id = await cross_border_order(orders)
    owner = orders.headers_of(subject, USER_SCOPES)
    _, staff = orders.staff()
    _, partner = orders.partner("customs")
    for headers in (owner, staff, partner):
        response = await read(orders, order_id, subject, ASKED, headers)
        assert response.status_code == 403, response.text
        assert response.json()["type"].endswith("/service-only")
        assert "张" not in response.text
    rights_only = service_headers(
        orders, scopes=("service:rights.access",), purposes=("rights.access",)
    )
    response = await read(orders, order_id, subject, ASKED, rights_only)
    assert response.status_code == 403
    assert response.json()["missing_scopes"] == ["service:cross_border.transfer"]
    no_purpose = service_headers(orders, purposes=())
    response = await read(orders, order_id, subject, ASKED, no_purpose)
    assert response.status_code == 403
    assert response.json()["type"].endswith("/purpose-not-allowed")
    # Tokens whose scopes do not fit their kind are not trusted at all.
    greedy_user = orders.headers_of(subject, [*USER_SCOPES, "service:cross_border.transfer"])
    greedy_staff = orders.headers_of(
        subject, [*STAFF_ROLE_SCOPES["privacy_officer"], "service:cross_border.transfer"]
    )
    for headers in (greedy_user, greedy_staff):
        assert (await read(orders, order_id, subject, ASKED, headers)).status_code == 401
    assert ledger(await orders.outbox_events(), SERVICE_ID) == []


@pytest.mark.obligation("OB-4-7")
async def test_another_subjects_order_is_404_and_bad_field_lists_422(orders: Orders) -> None:
    subject, order_id = await cross_border_order(orders)
    other, _ = orders.user()
    headers = service_headers(orders)
    for order, who in ((order_id, other), ("ord_nosuchorder", subject)):
        response = await read(orders, order, who, ASKED, headers)
        assert response.status_code == 404
        assert "张" not in response.text
    for fields in ("", "consignee_name,,postal_code", "Consignee_Name", "a;b"):
        response = await orders.client.get(
            f"/transfer/orders/{order_id}",
            params={"subject": subject, "fields": fields},
            headers=headers,
        )
        assert response.status_code == 422, fields
    missing = await orders.client.get(f"/transfer/orders/{order_id}", headers=headers)
    assert missing.status_code == 422
    assert ledger(await orders.outbox_events(), SERVICE_ID) == []


@pytest.mark.obligation("OB-4-4")
async def test_erased_personal_data_is_410(orders: Orders) -> None:
    headers = service_headers(orders)
    # Fields removed when their retention ended: nothing asked for is left.
    subject, order_id = await cross_border_order(orders)
    async with orders.context.database.session() as session:
        await session.execute(
            update(Order)
            .where(col(Order.id) == order_id)
            .values(consignee_name_encrypted="", consignee_phone_encrypted="")
        )
    gone = await read(orders, order_id, subject, ["consignee_name", "consignee_phone"], headers)
    assert gone.status_code == 410
    partly = await read(orders, order_id, subject, ["consignee_name", "postal_code"], headers)
    assert partly.status_code == 200 and partly.json()["fields"] == {"postal_code": "310012"}
    # An anonymised order.
    subject, order_id = await cross_border_order(orders)
    async with orders.context.database.session() as session:
        await session.execute(
            update(Order)
            .where(col(Order.id) == order_id)
            .values(anonymised_at=utcnow(), buyer_id="anonymised")
        )
    assert (await read(orders, order_id, subject, ASKED, headers)).status_code == 410
    # A buyer whose key was shredded (account deleted).
    subject, order_id = await cross_border_order(orders)
    async with orders.context.database.session() as session:
        await orders.context.cipher.shred(session, subject=subject)
    shredded = await read(orders, order_id, subject, ASKED, headers)
    assert shredded.status_code == 410
    assert "张" not in shredded.text
