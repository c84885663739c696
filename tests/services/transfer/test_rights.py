"""Rights requests at transfer (OB-R-1, OB-4-5): the privacy center's service token reads
every transfer about a subject (recipient, categories, purpose, time, outcome), nobody else
does; access is answered ``done``, other kinds are refused as not supported yet."""

from __future__ import annotations

from typing import Any

import pytest

from kit.events import Event, new_event
from kit.testing import bearer
from services.transfer.rights.consumers import rights_handler
from tests.services.transfer.conftest import TransferApp

pytestmark = [pytest.mark.obligation("OB-R-1")]

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
    [("access", "done"), ("deletion", "refused"), ("correction", "refused")],
)
async def test_requests_are_answered(transfer: TransferApp, kind: str, outcome: str) -> None:
    subject, _ = transfer.user()
    context = transfer.context
    async with context.database.session() as session:
        await rights_handler(context)(session, requested(subject, kind))
    (answer,) = [
        e
        for e in await transfer.outbox_events()
        if e.type == "com.signature.transfer.rights.completed.v1"
    ]
    assert answer.subject == subject and answer.data["outcome"] == outcome
    if outcome == "refused":
        assert answer.data["reason"] == "not supported by this service yet"
