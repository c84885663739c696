"""Cross-border volume tiers (OB-L-7) and the security assessment's three years (OB-L-8).

The year's counters are set in the database to just below a threshold, as if that many
persons had been provided abroad already; the transfers then cross it for real. The
sensitive threshold is crossed with the volume functions themselves: no category the
catalogue lets go abroad is sensitive."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from kit.clock import china_today
from services.transfer.models import Transfer, VolumeCounter
from services.transfer.recipients.schemas import security_assessment_expiry
from services.transfer.volume import service as volume
from tests.services.transfer.conftest import TransferApp, key_pair, recipient_body

YEAR = china_today().year


async def set_counter(
    transfer: TransferApp, persons: int, *, sensitive: bool = False, year: int = YEAR
) -> None:
    """The year's count so far, as if ``persons`` persons had been provided already."""
    async with transfer.context.database.session() as session:
        row = await session.get(VolumeCounter, (year, sensitive))
        if row is None:
            session.add(VolumeCounter(year=year, sensitive=sensitive, persons=persons))
        else:
            row.persons = persons


def basis(kind: str, reference: str = "REF-1", *, decided: date | None = None) -> dict[str, Any]:
    decided_on = decided or china_today() - timedelta(days=30)
    return {
        "kind": kind,
        "reference": reference,
        "decided_on": str(decided_on),
        "review_due": str(min(china_today() + timedelta(days=365), decided_on + timedelta(1094))),
    }


async def send(
    transfer: TransferApp, recipient_id: str, subject: str | None = None, **extra: Any
) -> dict[str, Any]:
    """An administrator's transfer of a person who consented (a new person unless given)."""
    if subject is None:
        subject, _ = transfer.user()
    transfer.grant(subject, recipient_id)
    response = await transfer.client.post(
        "/transfers",
        json={
            "subject": subject,
            "order_id": transfer.orders.add(subject),
            "recipient_id": recipient_id,
            "categories": ["user.contact.address"],
            **extra,
        },
        headers=transfer.privacy_officer(),
    )
    assert response.status_code == 202, response.text
    sent: dict[str, Any] = response.json()
    return sent


async def counters(transfer: TransferApp, **params: Any) -> dict[str, Any]:
    response = await transfer.client.get(
        "/volume", params=params, headers=transfer.privacy_officer()
    )
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


@pytest.mark.obligation("OB-L-7")
async def test_the_100000th_person_waits_for_a_standard_contract(transfer: TransferApp) -> None:
    recipient = await transfer.register(legal_basis=basis("consent_only"))
    await set_counter(transfer, 99_998)
    first = await send(transfer, recipient["id"])
    assert first["status"] == "ready"
    assert (await counters(transfer))["non_sensitive_persons"] == 99_999

    waiting = await send(transfer, recipient["id"])
    assert waiting["status"] == "awaiting_basis"
    assert waiting["reason"] == "volume_needs_standard_contract_or_certification"
    again = await send(transfer, recipient["id"], subject=first["subject"])
    assert again["status"] == "ready", "a person counted this year is not counted twice"
    assert (await counters(transfer))["non_sensitive_persons"] == 99_999

    recorded = await transfer.client.post(
        f"/recipients/{recipient['id']}/legal-bases",
        json=basis("standard_contract", "SC-2026-9"),
        headers=transfer.privacy_officer(),
    )
    assert recorded.status_code == 200, recorded.text
    await transfer.run_worker()
    assert (await transfer.transfer(waiting["id"]))["status"] == "delivered"
    seen = await counters(transfer)
    assert seen["non_sensitive_persons"] == 100_000
    assert seen["requires"] == "standard_contract_or_certification"


@pytest.mark.obligation("OB-L-7")
async def test_the_millionth_person_waits_for_a_security_assessment(transfer: TransferApp) -> None:
    recipient = await transfer.register()  # a standard contract
    await set_counter(transfer, 999_998)
    assert (await send(transfer, recipient["id"]))["status"] == "ready"
    waiting = await send(transfer, recipient["id"])
    assert waiting["status"] == "awaiting_basis"
    assert waiting["reason"] == "volume_needs_security_assessment"
    assert (await counters(transfer))["non_sensitive_persons"] == 999_999


@pytest.mark.obligation("OB-L-7")
async def test_the_10000th_person_with_sensitive_data_needs_a_security_assessment(
    transfer: TransferApp,
) -> None:
    sensitive = frozenset({"user.contact.address"})
    await set_counter(transfer, 9_998, sensitive=True)
    async with transfer.context.database.session() as session:
        row = Transfer(
            id="trf_s1",
            subject="acc_s1",
            recipient_id="rcp_x",
            order_id="ord_1",
            categories=["user.contact.address"],
            trigger="admin",
            requested_by="officer",
            status="requested",
        )
        args: dict[str, Any] = {"year": YEAR, "sensitive_categories": sensitive}
        assert await volume.blocker(session, row, basis_kind="standard_contract", **args) is None
        await volume.count(session, row, events=transfer.context.events, **args)
        assert (await volume.counts(session, YEAR))["sensitive"] == 9_999
        row.id, row.subject = "trf_s2", "acc_s2"
        assert (
            await volume.blocker(session, row, basis_kind="standard_contract", **args)
            == "volume_needs_security_assessment"
        )
        assert await volume.blocker(session, row, basis_kind="security_assessment", **args) is None


@pytest.mark.obligation("OB-L-7")
async def test_a_transfer_necessary_for_the_contract_is_exempt_and_not_counted(
    transfer: TransferApp,
) -> None:
    recipient = await transfer.register(legal_basis=basis("consent_only"))
    await set_counter(transfer, 99_999)
    exempt = await send(transfer, recipient["id"], contract_necessary=True)
    assert exempt["status"] == "ready" and exempt["contract_necessary"] is True
    assert (await counters(transfer))["non_sensitive_persons"] == 99_999


@pytest.mark.obligation("OB-L-7")
async def test_counts_restart_on_1_january(transfer: TransferApp) -> None:
    await set_counter(transfer, 2_000_000, year=YEAR - 1)
    this_year = await counters(transfer)
    assert this_year["year"] == YEAR
    assert this_year["non_sensitive_persons"] == 0
    assert this_year["requires"] == "consent_only"
    last_year = await counters(transfer, year=YEAR - 1)
    assert last_year["non_sensitive_persons"] == 2_000_000
    assert last_year["requires"] == "security_assessment"


@pytest.mark.obligation("OB-L-7")
async def test_admins_are_alerted_at_80_percent_of_a_threshold(transfer: TransferApp) -> None:
    recipient = await transfer.register(legal_basis=basis("consent_only"))
    await set_counter(transfer, 79_999)
    assert (await counters(transfer))["alerts"] == []
    await send(transfer, recipient["id"])
    [alert] = (await counters(transfer))["alerts"]
    assert alert == {
        "counter": "non_sensitive",
        "threshold": 100_000,
        "persons": 80_000,
        "share": 0.8,
        "reached": False,
        "requires": "standard_contract_or_certification",
    }
    [event] = [e for e in await transfer.outbox_events() if e.type == volume.ALERT_EVENT]
    assert event.data["persons"] == 80_000 and event.data["threshold"] == 100_000


@pytest.mark.obligation("OB-L-8")
async def test_a_security_assessment_is_flagged_for_renewal_60_working_days_before(
    transfer: TransferApp,
) -> None:
    decided = china_today() - timedelta(days=3 * 365 - 40)  # lapses in about 40 days
    recipient = await transfer.register(
        legal_basis=basis("security_assessment", "CAC-2023-1", decided=decided)
    )
    assert recipient["security_assessment_expires_on"] == str(security_assessment_expiry(decided))
    assert "security_assessment_renewal_due" in recipient["due"]
    assert recipient["may_receive"] is True

    fresh = await transfer.register(legal_basis=basis("security_assessment", "CAC-2026-2"))
    assert "security_assessment_renewal_due" not in fresh["due"]


@pytest.mark.obligation("OB-L-8")
async def test_transfers_stop_when_the_security_assessment_lapses(transfer: TransferApp) -> None:
    decided = china_today() - timedelta(days=3 * 365 + 2)
    recipient = await transfer.register(
        legal_basis={
            "kind": "security_assessment",
            "reference": "CAC-2023-7",
            "decided_on": str(decided),
            "review_due": str(security_assessment_expiry(decided) - timedelta(days=1)),
        }
    )
    assert "security_assessment_lapsed" in recipient["blocked_because"]
    refused = await send(transfer, recipient["id"])
    assert refused["status"] == "refused"
    assert "security_assessment_lapsed" in refused["reason"]


@pytest.mark.obligation("OB-L-8")
async def test_a_security_assessment_may_not_claim_more_than_three_years(
    transfer: TransferApp,
) -> None:
    decided = china_today() - timedelta(days=10)
    response = await transfer.client.post(
        "/recipients",
        json={
            **recipient_body(key_pair()),
            "legal_basis": {
                "kind": "security_assessment",
                "reference": "CAC-2026-3",
                "decided_on": str(decided),
                "review_due": str(security_assessment_expiry(decided)),
            },
        },
        headers=transfer.privacy_officer(),
    )
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "body.legal_basis.review_due"
