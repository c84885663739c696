"""Rights requests at transfer (OB-R-1, OB-4-5): the privacy center's service token reads
every transfer about a subject (recipient, categories, purpose, time, outcome), nobody else
does; access is answered ``done``; a correction is refused (nothing in clear to correct);
withdrawing every consent refuses what has not left and drops its packages; a deletion does
the same and keeps the transfer records under their legal retention (``partial``)."""

from __future__ import annotations

from typing import Any

import pytest

from kit.events import Event, find_personal_data, new_event
from kit.testing import bearer
from services.transfer.models import Transfer
from services.transfer.rights import service
from services.transfer.rights.consumers import rights_handler
from tests.services.transfer.conftest import TransferApp

SERVICE_ID = "svc_consentprivacycenter"


def service_headers(transfer: TransferApp, **overrides: Any) -> dict[str, str]:
    claims: dict[str, Any] = {
        "kind": "service",
        "client_type": "server",
        "purposes": ["rights.access"],
    }
    claims |= overrides
    scopes = claims.pop("scopes", ["service:rights.access"])
    return bearer(transfer.token(SERVICE_ID, scopes, **claims))


def requested(subject: str, kind: str) -> Event:
    return new_event(
        source="/consent",
        type="com.signature.consent.rights.requested.v1",
        subject=subject,
        purpose="rights.access",
        data={
            "request_id": "rr_abcdefghijklmnopqrstuvwx",
            "kind": kind,
            "deadline": "2030-01-01T00:00:00+00:00",
            "participants": ["transfer"],
        },
    )


@pytest.mark.obligation("OB-4-5")
async def test_the_export_lists_the_transfers_about_the_subject(transfer: TransferApp) -> None:
    recipient = await transfer.register()
    subject, user_headers = transfer.user()
    other, _ = transfer.user()
    transfer.grant(subject, recipient["id"])
    made = await transfer.request(recipient["id"], subject, transfer.orders.add(subject))
    await transfer.request(recipient["id"], other, transfer.orders.add(other))
    await transfer.run_worker()

    response = await transfer.client.get(
        f"/rights/export/{subject}", headers=service_headers(transfer)
    )
    assert response.status_code == 200, response.text
    (item,) = response.json()["transfers"]
    assert item["transfer_id"] == made["id"] and item["status"] == "delivered"
    assert item["recipient"]["legal_name"] == recipient["legal_name"]
    assert item["recipient"]["how_to_exercise_rights"]
    assert item["categories"] == made["categories"]
    assert item["purposes"] == ["cross_border.transfer"]
    assert item["requested_at"] and item["delivered_at"]
    reads = [
        e
        for e in await transfer.outbox_events()
        if e.type == "com.signature.transfer.personal_data.read.v1" and e.purpose == "rights.access"
    ]
    assert [e.subject for e in reads] == [subject]
    assert reads[0].data["actor"] == SERVICE_ID

    for headers in (
        user_headers,
        transfer.privacy_officer(),
        service_headers(
            transfer, scopes=["service:cross_border.transfer"], purposes=["cross_border.transfer"]
        ),
    ):
        refused = await transfer.client.get(f"/rights/export/{subject}", headers=headers)
        assert refused.status_code == 403, refused.text


@pytest.mark.parametrize(
    ("kind", "outcome"),
    [("access", "done"), ("deletion", "done"), ("correction", "refused"), ("withdraw_all", "done")],
)
@pytest.mark.obligation("OB-R-1")
async def test_requests_are_answered(transfer: TransferApp, kind: str, outcome: str) -> None:
    subject, _ = transfer.user()
    context = transfer.context
    async with context.database.session() as session:
        await rights_handler(context)(session, requested(subject, kind))
    (answer,) = await answers(transfer)
    assert answer.subject == subject and answer.data["outcome"] == outcome
    if kind == "correction":
        assert answer.data["reason"] == service.NOT_CORRECTED
    if kind == "deletion":  # nothing held, nothing kept
        assert answer.data["kept"] == [] and "held nothing" in answer.data["reason"]


async def answers(transfer: TransferApp) -> list[Event]:
    return [
        e
        for e in await transfer.outbox_events()
        if e.type == "com.signature.transfer.rights.completed.v1"
    ]


async def three_transfers(transfer: TransferApp, subject: str) -> tuple[str, str, str]:
    """One delivered, one ready whose package is built but not delivered (the endpoint is
    down), one awaiting consent; their ids."""
    first = await transfer.register()
    second = await transfer.register()
    third = await transfer.register()
    transfer.grant(subject, first["id"])
    delivered = await transfer.request(first["id"], subject, transfer.orders.add(subject))
    await transfer.run_worker()
    transfer.endpoint.down = 1000
    transfer.grant(subject, second["id"])
    ready = await transfer.request(second["id"], subject, transfer.orders.add(subject))
    await transfer.run_worker()
    waiting = await transfer.request(third["id"], subject, transfer.orders.add(subject))
    return delivered["id"], ready["id"], waiting["id"]


async def stored(transfer: TransferApp, transfer_id: str) -> Transfer:
    async with transfer.context.database.session() as session:
        row = await session.get(Transfer, transfer_id)
        assert row is not None
        return row


@pytest.mark.obligation("OB-4-2")
async def test_a_deletion_refuses_what_has_not_left_and_keeps_the_records(
    transfer: TransferApp,
) -> None:
    subject, _ = transfer.user()
    delivered, ready, waiting = await three_transfers(transfer, subject)
    before = await stored(transfer, ready)
    assert before.status == "ready" and before.package is not None
    context = transfer.context
    async with context.database.session() as session:
        await rights_handler(context)(session, requested(subject, "deletion"))

    for transfer_id in (ready, waiting):
        row = await stored(transfer, transfer_id)
        assert row.status == "refused" and row.reason == "erasure_requested"
        assert row.package is None
    kept = await stored(transfer, delivered)
    assert kept.status == "delivered" and kept.delivered_at is not None

    (answer,) = await answers(transfer)
    assert answer.data["outcome"] == "partial"
    assert set(answer.data["deleted"]) == set(before.categories)  # the dropped package
    (held,) = answer.data["kept"]
    assert held["category"] == "user.account.id"
    assert held["retention"] == "transfer_record"
    assert "PIPL art. 55, 56" in held["legal_basis"]
    assert held["until"].startswith(str(kept.delivered_at.year + 3))
    assert (
        "2 transfer(s) not yet delivered were refused and 1 package(s) dropped"
        in (answer.data["reason"])
    )
    refusals = [
        e
        for e in await transfer.outbox_events()
        if e.type == "com.signature.transfer.transfer.refused.v1"
    ]
    assert {e.data["transfer_id"] for e in refusals} == {ready, waiting}
    personal = context.catalogue.personal_field_names()
    assert find_personal_data(answer.data, personal_fields=personal) == []


@pytest.mark.obligation("OB-R-1")
async def test_withdraw_all_refuses_what_waits_for_consent_or_delivery(
    transfer: TransferApp,
) -> None:
    subject, _ = transfer.user()
    delivered, ready, waiting = await three_transfers(transfer, subject)
    other, _ = transfer.user()
    recipient = await transfer.register()
    others = await transfer.request(recipient["id"], other, transfer.orders.add(other))
    context = transfer.context
    async with context.database.session() as session:
        await rights_handler(context)(session, requested(subject, "withdraw_all"))

    for transfer_id in (ready, waiting):
        row = await stored(transfer, transfer_id)
        assert row.status == "refused" and row.reason == "consent_withdrawn"
        assert row.package is None
    assert (await stored(transfer, delivered)).status == "delivered"
    assert (await stored(transfer, others["id"])).status == "awaiting_consent"
    (answer,) = await answers(transfer)
    assert answer.data["outcome"] == "done"
    assert answer.data["reason"].startswith("2 transfer(s) not yet delivered were refused")
