"""Transfers abroad: only with the separate consent for that recipient and a valid legal
basis, only the necessary fields, de-identified and encrypted for the recipient, every
one recorded and shown to the user (OB-4-3, OB-4-4, OB-4-5, OB-4-6)."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any, Literal

import pytest
from sqlalchemy import select
from sqlmodel import col

from kit.clock import china_today
from kit.events import find_personal_data, new_event
from kit.models import OutboxMessage
from services.transfer.transfers.consumers import orders_consumer
from services.transfer.transfers.package import protected_header
from services.transfer.transfers.service import on_order_event
from services.transfer.transfers.worker import current_checks
from tests.services.transfer.conftest import (
    ADDRESS_ONLY,
    ENDPOINT,
    TRANSFERABLE,
    TransferApp,
    key_pair,
    open_package,
)


async def _event_types(transfer: TransferApp, transfer_id: str) -> list[str]:
    return [
        event.type.removeprefix("com.signature.transfer.transfer.").removesuffix(".v1")
        for event in await transfer.outbox_events()
        if event.data.get("transfer_id") == transfer_id
        and event.type.startswith("com.signature.transfer.transfer.")
    ]


@pytest.mark.obligation("OB-4-5")
async def test_without_consent_a_transfer_waits_and_goes_once_consent_arrives(
    transfer: TransferApp,
) -> None:
    recipient = await transfer.register()
    subject, _ = transfer.user()
    order_id = transfer.orders.add(subject)

    requested = await transfer.request(recipient["id"], subject, order_id)
    assert requested["status"] == "awaiting_consent"
    assert requested["reason"] == "consent_missing"
    await transfer.run_worker()
    assert (await transfer.transfer(requested["id"]))["status"] == "awaiting_consent"
    assert transfer.orders.calls == [] and transfer.endpoint.requests == []  # nothing left

    transfer.grant(subject, recipient["id"])
    run = await transfer.run_worker()
    assert run.resumed == 1 and run.delivered == 1
    delivered = await transfer.transfer(requested["id"])
    assert delivered["status"] == "delivered" and delivered["reason"] is None
    assert delivered["basis"]["reference"] == "SC-FILING-2026-0042"
    assert delivered["package_sha256"] and delivered["waybill_id"].startswith("wb_")
    assert len(transfer.endpoint.kept) == 1
    assert await _event_types(transfer, requested["id"]) == [
        "requested",
        "awaiting_consent",
        "delivered",
    ]


@pytest.mark.obligation("OB-4-5")
async def test_withdrawn_consent_stops_future_transfers(transfer: TransferApp) -> None:
    recipient = await transfer.register()
    subject, _ = transfer.user()
    transfer.grant(subject, recipient["id"])
    first = await transfer.request(recipient["id"], subject, transfer.orders.add(subject))
    assert first["status"] == "ready"
    await transfer.run_worker()
    assert (await transfer.transfer(first["id"]))["status"] == "delivered"

    # One more goes ready, but the endpoint is down; then the user withdraws.
    transfer.endpoint.down = 100
    pending = await transfer.request(recipient["id"], subject, transfer.orders.add(subject))
    await transfer.run_worker()
    assert (await transfer.transfer(pending["id"]))["status"] == "ready"
    transfer.withdraw(subject, recipient["id"])
    transfer.endpoint.down = 0

    later = await transfer.request(recipient["id"], subject, transfer.orders.add(subject))
    assert later["status"] == "awaiting_consent"
    await transfer.run_worker()
    stopped = await transfer.transfer(pending["id"])
    assert stopped["status"] == "refused" and stopped["reason"] == "consent_withdrawn"
    assert (await transfer.transfer(later["id"]))["status"] == "awaiting_consent"
    assert len(transfer.endpoint.kept) == 1  # only the first one ever arrived


@pytest.mark.obligation("OB-4-5")
async def test_consent_is_per_recipient(transfer: TransferApp) -> None:
    first = await transfer.register()
    second = await transfer.register(legal_name="Other Carrier Inc.")
    subject, _ = transfer.user()
    transfer.grant(subject, first["id"])
    order_id = transfer.orders.add(subject)
    assert (await transfer.request(first["id"], subject, order_id))["status"] == "ready"
    assert (await transfer.request(second["id"], subject, order_id))["status"] == (
        "awaiting_consent"
    )


@pytest.mark.obligation("OB-4-6")
async def test_a_recipient_whose_basis_is_past_review_receives_nothing(
    transfer: TransferApp,
) -> None:
    today = china_today()
    recipient = await transfer.register(
        legal_basis={
            "kind": "security_assessment",
            "reference": "CAC-SA-2024-0001",
            "decided_on": str(today - timedelta(days=800)),
            "review_due": str(today - timedelta(days=1)),
        }
    )
    subject, _ = transfer.user()
    transfer.grant(subject, recipient["id"])
    refused = await transfer.request(recipient["id"], subject, transfer.orders.add(subject))
    assert refused["status"] == "refused"
    assert refused["reason"] == "legal_basis_past_review"
    assert refused["basis"]["reference"] == "CAC-SA-2024-0001"  # the basis it was checked on
    await transfer.run_worker()
    assert transfer.orders.calls == [] and transfer.endpoint.requests == []
    assert await _event_types(transfer, refused["id"]) == ["requested", "refused"]
    refused_event = [e for e in await transfer.outbox_events() if e.type.endswith("refused.v1")]
    assert refused_event[0].data["reason"] == "legal_basis_past_review"


@pytest.mark.obligation("OB-3-4")
async def test_a_recipient_that_failed_its_assessment_receives_nothing(
    transfer: TransferApp,
) -> None:
    recipient = await transfer.register(
        assessment={"assessed_on": str(china_today()), "result": "failed"}
    )
    subject, _ = transfer.user()
    transfer.grant(subject, recipient["id"])
    refused = await transfer.request(recipient["id"], subject, transfer.orders.add(subject))
    assert refused["status"] == "refused" and refused["reason"] == "assessment_failed"


@pytest.mark.obligation("OB-4-4")
async def test_categories_outside_the_recipients_allowance_are_refused(
    transfer: TransferApp,
) -> None:
    recipient = await transfer.register(data_categories=ADDRESS_ONLY)
    subject, _ = transfer.user()
    transfer.grant(subject, recipient["id"])
    order_id = transfer.orders.add(subject)
    refused = await transfer.request(
        recipient["id"], subject, order_id, ["user.contact.address", "user.name"]
    )
    assert refused["status"] == "refused"
    assert refused["reason"] == "categories_outside_allowance"
    unknown = await transfer.request(recipient["id"], subject, order_id, ["user.shoe_size"])
    assert unknown["status"] == "refused"
    await transfer.run_worker()
    assert transfer.orders.calls == [] and transfer.endpoint.requests == []


@pytest.mark.obligation("OB-4-4")
@pytest.mark.parametrize("kind", ["x25519", "rsa"])
async def test_the_package_opens_only_with_the_recipients_key_and_holds_only_allowed_fields(
    transfer: TransferApp, kind: Literal["x25519", "rsa"]
) -> None:
    keys = key_pair(kind)
    recipient = await transfer.register(keys)
    subject, _ = transfer.user()
    order_id = transfer.orders.add(subject)
    transfer.grant(subject, recipient["id"])
    requested = await transfer.request(recipient["id"], subject, order_id)
    await transfer.run_worker()

    # Only the necessary fields were asked of orders, under their own names.
    assert transfer.orders.calls == [
        {
            "order_id": order_id,
            "subject": subject,
            "fields": [
                "address_detail",
                "address_region",
                "consignee_name",
                "consignee_phone",
                "postal_code",
            ],
        }
    ]
    [request] = transfer.endpoint.requests
    assert str(request.url) == ENDPOINT
    package = transfer.endpoint.kept[requested["id"]]
    assert request.headers["content-type"] == "application/jose"
    header = protected_header(package)  # a standard JWE: RFC 7516, compact
    assert (header["alg"], header["enc"]) == (
        "ECDH-ES+A256KW" if kind == "x25519" else "RSA-OAEP-256",
        "A256GCM",
    )
    assert header["recipient_id"] == recipient["id"]
    # Nothing readable travels in the clear: no name, phone, address or order number.
    # (the phone whole and masked: "138" alone turns up in base64url now and then)
    phones = ("13812345678", "138****5678")
    for value in ("张", *phones, "文三路", "西湖", "310012", order_id, subject):
        assert value not in request.content.decode()

    document = open_package(package, keys)
    delivered = await transfer.transfer(requested["id"])
    assert document["waybill_id"] == delivered["waybill_id"] == header["waybill_id"]
    assert document["categories"] == TRANSFERABLE
    assert document["fields"] == {
        "consignee_name": "张**",  # masked as the catalogue says for cross_border.transfer
        "consignee_phone": "138****5678",
        "address_region": "浙江省杭州市西湖区",
        "address_detail": "文三路90号3幢501室",
        "postal_code": "310012",
    }
    # Another key opens nothing.
    with pytest.raises(Exception):  # noqa: B017 (InvalidTag or ValueError)
        open_package(package, key_pair(kind))
    # A tampered header no longer authenticates.
    tampered = base64.urlsafe_b64encode(
        json.dumps({**header, "waybill_id": "wb_other"}).encode()
    ).rstrip(b"=")
    with pytest.raises(Exception):  # noqa: B017
        open_package(".".join([tampered.decode(), *package.split(".")[1:]]), keys)


@pytest.mark.obligation("OB-4-4")
async def test_a_narrower_allowance_sends_fewer_fields(transfer: TransferApp) -> None:
    keys = key_pair()
    recipient = await transfer.register(keys, data_categories=ADDRESS_ONLY)
    subject, _ = transfer.user()
    transfer.grant(subject, recipient["id"])
    requested = await transfer.request(
        recipient["id"], subject, transfer.orders.add(subject), ADDRESS_ONLY
    )
    await transfer.run_worker()
    document = open_package(transfer.endpoint.kept[requested["id"]], keys)
    assert set(document["fields"]) == {"address_detail", "address_region"}


@pytest.mark.obligation("OB-4-5")
async def test_the_user_sees_each_transfer_with_the_recipients_disclosure(
    transfer: TransferApp,
) -> None:
    recipient = await transfer.register()
    subject, headers = transfer.user()
    transfer.grant(subject, recipient["id"])
    requested = await transfer.request(recipient["id"], subject, transfer.orders.add(subject))
    await transfer.run_worker()

    response = await transfer.client.get("/transfers/me", headers=headers)
    assert response.status_code == 200
    [mine] = response.json()
    assert mine["id"] == requested["id"] and mine["status"] == "delivered"
    assert mine["legal_basis"] == "standard_contract"
    assert mine["categories"] == TRANSFERABLE
    assert (
        "A person's name (consignee, real name, name on customs documents)." in (mine["data_types"])
    )
    shown = mine["recipient"]
    assert shown["id"] == recipient["id"]
    assert shown["name"] == "Harbour Freight Pte. Ltd."
    assert shown["contact"] == recipient["contact"]
    assert shown["country_region"] == "Singapore"
    assert shown["purpose"] == recipient["purpose"]
    assert shown["processing_method"] == recipient["processing_method"]
    assert shown["how_to_exercise_rights"] == recipient["how_to_exercise_rights"]
    assert shown["data_types"] and shown["data_categories"] == TRANSFERABLE

    _, someone_else = transfer.user()
    assert (await transfer.client.get("/transfers/me", headers=someone_else)).json() == []
    staff_only = await transfer.client.get("/transfers", headers=headers)
    assert staff_only.status_code == 403


@pytest.mark.obligation("OB-4-3")
async def test_cross_border_order_events_start_transfers_to_the_routed_recipients(
    transfer: TransferApp,
) -> None:
    logistics = await transfer.register(cross_border_logistics=True)
    seller = await transfer.register(
        legal_name="Overseas Seller GmbH", data_categories=ADDRESS_ONLY, goods_ids=["gds_watch"]
    )
    other_seller = await transfer.register(legal_name="Not Involved", goods_ids=["gds_shoes"])
    subject, _ = transfer.user()
    order_id = transfer.orders.add(subject)
    transfer.grant(subject, logistics["id"])

    def placed(cross_border: bool, goods: list[str]) -> Any:
        return new_event(
            source="/orders",
            type="com.signature.orders.order.placed.v1",
            subject=subject,
            purpose="order.fulfilment",
            data={"order_id": order_id, "goods_ids": goods, "cross_border": cross_border},
        )

    checks = current_checks(transfer.app, transfer.settings)
    events = transfer.context.events
    async with transfer.context.database.session() as session:
        domestic = await on_order_event(
            session, placed(False, ["gds_watch"]), events=events, checks=checks
        )
        abroad = await on_order_event(
            session, placed(True, ["gds_watch", "gds_tea"]), events=events, checks=checks
        )
    assert domestic == [] and len(abroad) == 2
    await transfer.run_worker()

    listed = await transfer.client.get(
        "/transfers", params={"subject": subject}, headers=transfer.privacy_officer()
    )
    by_recipient = {t["recipient_id"]: t for t in listed.json()}
    assert set(by_recipient) == {logistics["id"], seller["id"]}
    assert other_seller["id"] not in by_recipient
    assert by_recipient[logistics["id"]]["status"] == "delivered"
    assert by_recipient[logistics["id"]]["trigger"] == "order_event"
    assert by_recipient[logistics["id"]]["categories"] == TRANSFERABLE
    assert by_recipient[seller["id"]]["status"] == "awaiting_consent"  # no consent to it
    assert by_recipient[seller["id"]]["categories"] == ADDRESS_ONLY


@pytest.mark.obligation("OB-4-3")
async def test_a_kafka_recipient_gets_its_package_only_through_this_services_outbox(
    transfer: TransferApp,
) -> None:
    keys = key_pair("rsa")
    recipient = await transfer.register(keys, delivery="kafka", endpoint_url=None)
    subject, _ = transfer.user()
    transfer.grant(subject, recipient["id"])
    requested = await transfer.request(recipient["id"], subject, transfer.orders.add(subject))
    await transfer.run_worker()
    assert (await transfer.transfer(requested["id"]))["status"] == "delivered"
    assert transfer.endpoint.requests == []

    async with transfer.context.database.session() as session:
        rows = list(
            await session.scalars(
                select(OutboxMessage).where(col(OutboxMessage.topic).like("%transfer.egress.%"))
            )
        )
    assert [row.topic for row in rows] == [f"transfer.egress.{recipient['id']}"]
    [egress] = [e for e in await transfer.outbox_events() if e.type.endswith("egress.package.v1")]
    assert egress.subject.startswith("wb_") and egress.subject != subject  # not the account id
    document = open_package(egress.data["package"], keys)
    assert document["fields"]["consignee_name"] == "张**"


@pytest.mark.obligation("OB-4-3")
async def test_events_carry_references_never_personal_data(transfer: TransferApp) -> None:
    recipient = await transfer.register()
    subject, _ = transfer.user()
    transfer.grant(subject, recipient["id"])
    await transfer.request(recipient["id"], subject, transfer.orders.add(subject))
    await transfer.run_worker()
    personal = transfer.context.catalogue.personal_field_names()
    events = await transfer.outbox_events()
    assert {e.type for e in events} >= {
        "com.signature.transfer.transfer.requested.v1",
        "com.signature.transfer.transfer.delivered.v1",
        "com.signature.transfer.personal_data.read.v1",
    }
    for event in events:
        assert find_personal_data(event.data, personal_fields=personal) == [], event.type
    [ledger] = [e for e in events if e.type.endswith("personal_data.read.v1")]
    assert ledger.subject == subject and ledger.data["actor"] == recipient["id"]
    assert ledger.purpose == "cross_border.transfer" and list(ledger.categories) == TRANSFERABLE


async def test_an_order_that_is_not_the_subjects_is_refused(transfer: TransferApp) -> None:
    recipient = await transfer.register()
    subject, _ = transfer.user()
    other, _ = transfer.user()
    transfer.grant(subject, recipient["id"])
    requested = await transfer.request(recipient["id"], subject, transfer.orders.add(other))
    await transfer.run_worker()
    refused = await transfer.transfer(requested["id"])
    assert refused["status"] == "refused" and refused["reason"] == "order_unavailable"
    assert transfer.endpoint.requests == []


async def test_admin_requests_are_validated(transfer: TransferApp) -> None:
    recipient = await transfer.register()
    admin = transfer.privacy_officer()
    for body, status in [
        ({"subject": "acc_x", "order_id": "o", "recipient_id": recipient["id"]}, 422),
        (
            {
                "subject": "a13812345678",
                "order_id": "ord_a",
                "recipient_id": recipient["id"],
                "categories": ["user.name"],
            },
            422,
        ),
        (
            {
                "subject": "acc_abc",
                "order_id": "ord_a",
                "recipient_id": "rcp_none",
                "categories": ["user.name"],
            },
            404,
        ),
    ]:
        response = await transfer.client.post("/transfers", json=body, headers=admin)
        assert response.status_code == status, response.text


def test_the_orders_consumer_takes_only_cross_border_placed_orders(transfer: TransferApp) -> None:
    consumer = orders_consumer(transfer.app, transfer.context, transfer.settings)
    assert consumer.wants is not None

    def order_event(kind: str, cross_border: bool) -> Any:
        return new_event(
            source="/orders",
            type=f"com.signature.orders.order.{kind}.v1",
            subject="acc_1",
            purpose="order.fulfilment",
            data={"order_id": "ord_1", "goods_ids": ["gds_watch"], "cross_border": cross_border},
        )

    taken = {
        (kind, cross_border): consumer.wants(order_event(kind, cross_border))
        for kind in ("placed", "cancelled")
        for cross_border in (True, False)
    }
    assert taken == {
        ("placed", True): True,
        ("placed", False): False,
        ("cancelled", True): False,
        ("cancelled", False): False,
    }
