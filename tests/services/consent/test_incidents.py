"""Incidents and cessation: the users the ledger shows were affected are told, and only
they; many affected users get a public announcement instead; the regulator gets a report;
a ceased purpose and a change of controller reach the users concerned, and the events
carry ids, purposes and dates, never the notice text."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from kit.auth import STAFF_ROLE_SCOPES, USER_SCOPES
from kit.events import Event
from kit.models import OutboxMessage
from kit.testing import bearer, new_subject
from services.consent.incidents.notices import NOTIFICATION_EVENT
from tests.services.consent.conftest import Consent
from tests.services.consent.test_ledger import (
    ADDRESS,
    LOCATION,
    NAME,
    PHONE,
    feed,
    processing,
)

WINDOW_START = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
WINDOW_END = datetime(2026, 11, 20, 20, 0, tzinfo=UTC)
INSIDE = WINDOW_START + timedelta(hours=2)
TITLE = "Courier label export misconfigured"
ADVICE = "Be wary of calls claiming to be about your parcel."


def incident(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": TITLE,
        "what_happened": "A courier label export was readable without sign-in for 12 hours.",
        "impact": "Your name, phone number and address may have been seen by others.",
        "window_start": WINDOW_START.isoformat(),
        "window_end": WINDOW_END.isoformat(),
        "detected_at": (WINDOW_END - timedelta(hours=1)).isoformat(),
        "categories": ["user.contact"],
        "measures": "The export was closed and its access keys rotated.",
        "advice": ADVICE,
        "remedies": "You may ask for compensation through customer service.",
        "contact": "privacy@signature.example, 400-000-0000",
    }
    body.update(changes)
    return body


def staff(consent: Consent, role: str) -> dict[str, str]:
    subject = new_subject()
    return bearer(consent.token(subject, STAFF_ROLE_SCOPES[role], kind="staff"))


async def notices(consent: Consent, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await consent.client.get("/notices/me", headers=headers)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


async def notifications(consent: Consent) -> list[tuple[str, Event]]:
    """The notification events in the outbox, with the topic each goes to."""
    async with consent.context.database.session() as session:
        rows = (
            await session.execute(
                select(col(OutboxMessage.topic), col(OutboxMessage.payload))
                .where(col(OutboxMessage.event_type) == NOTIFICATION_EVENT)
                .order_by(col(OutboxMessage.seq))
            )
        ).all()
    return [(topic, Event.model_validate_json(payload)) for topic, payload in rows]


async def record(consent: Consent, body: dict[str, Any]) -> dict[str, Any]:
    response = await consent.client.post("/incidents", json=body, headers=consent.privacy_officer())
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


# --------------------------------------------------------------------------- incidents


@pytest.mark.obligation("OB-4-8")
async def test_incident_notices_reach_exactly_the_affected_users(consent: Consent) -> None:
    affected, affected_headers = consent.user()
    by_partner, partner_headers = consent.user()
    other_data, other_data_headers = consent.user()
    too_early, too_early_headers = consent.user()
    partner = f"ptn_{uuid.uuid4().hex[:12]}"
    await feed(
        consent,
        processing(affected, categories=[NAME, PHONE, ADDRESS], at=INSIDE),
        processing(by_partner, actor=partner, categories=[ADDRESS], at=WINDOW_END),
        processing(other_data, categories=["user.behavior.purchase_history"], at=INSIDE),
        processing(too_early, categories=[PHONE], at=WINDOW_START - timedelta(seconds=1)),
    )

    created = await record(consent, incident())

    assert created["affected_users"] == 2
    assert created["delivery"] == "individual"
    assert created["notices_sent"] == 2
    assert created["announcement"] is None
    [notice] = await notices(consent, affected_headers)
    assert notice["kind"] == "incident"
    assert notice["incident_id"] == created["id"]
    assert notice["title"] == TITLE
    assert notice["what_happened"].startswith("A courier label export")
    assert notice["impact"].startswith("Your name, phone number and address")
    assert notice["measures"].startswith("The export was closed")
    assert notice["advice"] == ADVICE
    assert notice["remedies"].startswith("You may ask for compensation")
    assert notice["contact"].startswith("privacy@signature.example")
    assert notice["your_categories"] == sorted([ADDRESS, PHONE])
    assert NAME not in notice["your_categories"], "user.name is not under user.contact"
    [partner_notice] = await notices(consent, partner_headers)
    assert partner_notice["your_categories"] == [ADDRESS]
    assert await notices(consent, other_data_headers) == []
    assert await notices(consent, too_early_headers) == []

    sent = await notifications(consent)
    topic = consent.settings.topic(consent.settings.notifications_topic)
    assert sorted(event.subject for _, event in sent) == sorted([affected, by_partner])
    for event_topic, event in sent:
        assert event_topic == topic
        assert event.data == {"incident_id": created["id"], "kind": "incident"}
        assert event.purpose == "incident.notification"
        assert TITLE not in event.model_dump_json() and ADVICE not in event.model_dump_json()


@pytest.mark.obligation("OB-4-8")
async def test_naming_actors_narrows_the_affected_users_to_their_processing(
    consent: Consent,
) -> None:
    via_partner, via_partner_headers = consent.user()
    via_orders, via_orders_headers = consent.user()
    partner = f"ptn_{uuid.uuid4().hex[:12]}"
    await feed(
        consent,
        processing(via_partner, actor=partner, purpose="logistics.delivery", at=INSIDE),
        processing(via_orders, service="orders", at=INSIDE),
    )

    created = await record(consent, incident(actors=[partner]))
    by_service = await record(consent, incident(categories=[], actors=["orders"]))

    assert created["affected_users"] == 1
    assert by_service["affected_users"] == 2, "both entries were reported by orders"
    assert {n["incident_id"] for n in await notices(consent, via_partner_headers)} == {
        created["id"],
        by_service["id"],
    }
    assert {n["incident_id"] for n in await notices(consent, via_orders_headers)} == {
        by_service["id"]
    }


@pytest.mark.obligation("OB-4-8")
async def test_above_the_threshold_a_public_announcement_replaces_notices(
    consent: Consent,
) -> None:
    consent.context.settings.incident_announcement_threshold = 2  # type: ignore[attr-defined]
    users = [consent.user() for _ in range(3)]
    await feed(consent, *(processing(user, at=INSIDE) for user, _ in users))

    created = await record(consent, incident())

    assert created["affected_users"] == 3
    assert created["delivery"] == "announcement"
    assert created["notices_sent"] == 0
    assert created["announcement"] is not None
    for _, headers in users:
        assert await notices(consent, headers) == []
    assert await notifications(consent) == []
    response = await consent.client.get("/announcements")  # public: no token
    assert response.status_code == 200
    [announcement] = response.json()
    assert announcement["id"] == created["announcement"]["id"]
    assert announcement["incident_id"] == created["id"]
    assert announcement["title"] == TITLE
    assert announcement["advice"] == ADVICE
    assert announcement["remedies"].startswith("You may ask for compensation")
    assert announcement["contact"].startswith("privacy@signature.example")


@pytest.mark.obligation("OB-4-8")
async def test_the_regulator_report_holds_the_facts_counts_notices_and_timeline(
    consent: Consent,
) -> None:
    first, second = consent.user()[0], consent.user()[0]
    await feed(
        consent,
        processing(first, categories=[PHONE, ADDRESS], at=INSIDE),
        processing(second, categories=[PHONE], at=INSIDE),
        processing(second, purpose="location", categories=[LOCATION], at=INSIDE),
    )
    created = await record(consent, incident(categories=["user.contact", LOCATION]))

    response = await consent.client.get(
        f"/incidents/{created['id']}/regulator-report", headers=consent.privacy_officer()
    )

    assert response.status_code == 200, response.text
    assert "attachment" in response.headers["content-disposition"]
    report = response.json()
    assert report["report"] == "personal-information-security-incident"
    facts = report["incident"]
    assert (facts["id"], facts["title"]) == (created["id"], TITLE)
    assert facts["categories"] == sorted(["user.contact", LOCATION])
    assert facts["sensitive_categories"] == [LOCATION]
    assert facts["measures"].startswith("The export was closed")
    assert report["affected"] == {
        "users": 2,
        "per_category": {ADDRESS: 1, PHONE: 2, LOCATION: 1},
    }
    assert report["notification"] == {
        "delivery": "individual",
        "notices_sent": 2,
        "announcement": None,
    }
    timeline = [item["event"] for item in report["timeline"]]
    assert timeline[:3] == ["incident began", "incident detected", "incident ended or contained"]
    assert timeline[-1] == "report generated"
    assert "2 individual notices sent to affected users" in timeline
    moments = [item["at"] for item in report["timeline"]]
    assert [datetime.fromisoformat(m) for m in moments] == sorted(
        datetime.fromisoformat(m) for m in moments
    )
    missing = await consent.client.get(
        "/incidents/inc_missing/regulator-report", headers=consent.privacy_officer()
    )
    assert missing.status_code == 404


async def test_an_incident_must_say_what_it_concerns(consent: Consent) -> None:
    officer = consent.privacy_officer()
    unknown = await consent.client.post(
        "/incidents", json=incident(categories=["user.shoe_size"]), headers=officer
    )
    assert unknown.status_code == 422
    assert unknown.json()["unknown_categories"] == ["user.shoe_size"]
    for body in (
        incident(categories=[], actors=[]),
        incident(window_end=(WINDOW_START - timedelta(hours=1)).isoformat()),
        incident(window_start="2026-11-20T08:00:00"),  # no time zone
        incident(severity="high"),
        {k: v for k, v in incident().items() if k != "advice"},
    ):
        response = await consent.client.post("/incidents", json=body, headers=officer)
        assert response.status_code == 422, body


async def test_only_incident_admins_record_and_read_incidents(consent: Consent) -> None:
    _, user_headers = consent.user()
    support = staff(consent, "customer_service")
    created = await record(consent, incident())
    for headers in (user_headers, support):
        assert (
            await consent.client.post("/incidents", json=incident(), headers=headers)
        ).status_code == 403
        for path in (
            "/incidents",
            f"/incidents/{created['id']}",
            f"/incidents/{created['id']}/regulator-report",
        ):
            assert (await consent.client.get(path, headers=headers)).status_code == 403, path
    assert (await consent.client.post("/incidents", json=incident())).status_code == 401
    listed = await consent.client.get("/incidents", headers=consent.privacy_officer())
    assert [item["id"] for item in listed.json()] == [created["id"]]


async def test_notices_need_a_user_token_with_consent_read(consent: Consent) -> None:
    assert (await consent.client.get("/notices/me")).status_code == 401
    no_read = bearer(consent.token(new_subject(), USER_SCOPES - {"consent:read"}))
    assert (await consent.client.get("/notices/me", headers=no_read)).status_code == 403


# --------------------------------------------------------------------------- cessation


async def declare(consent: Consent, body: dict[str, Any]) -> dict[str, Any]:
    response = await consent.client.post(
        "/cessations", json=body, headers=consent.privacy_officer()
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


@pytest.mark.obligation("OB-2J-1")
async def test_a_ceased_purpose_is_published_and_its_users_are_told(consent: Consent) -> None:
    located, located_headers = consent.user()
    never_located, never_located_headers = consent.user()
    await feed(
        consent,
        processing(located, purpose="location", categories=[LOCATION]),
        processing(never_located, purpose="order.fulfilment"),
    )
    effective = date(2027, 1, 1)

    created = await declare(
        consent,
        {
            "kind": "purpose_ceased",
            "purpose": "location",
            "effective_date": effective.isoformat(),
            "reason": "Nearby recommendations are discontinued.",
        },
    )

    assert created["purpose"] == "location"
    assert created["deletion_due"] == effective.isoformat()
    assert created["notified_users"] == 1
    [event] = [e for e in await consent.outbox_events() if e.type.endswith("purpose.ceased.v1")]
    assert event.type == "com.signature.consent.purpose.ceased.v1"
    assert event.purpose == "location"
    assert event.data == {
        "cessation_id": created["id"],
        "purpose": "location",
        "effective_date": "2027-01-01",
        "deletion_due": "2027-01-01",
    }
    assert LOCATION in event.categories
    [notice] = await notices(consent, located_headers)
    assert notice["kind"] == "purpose_ceased"
    assert (notice["purpose"], notice["effective_date"]) == ("location", "2027-01-01")
    assert notice["deletion_due"] == "2027-01-01"
    assert notice["reason"] == "Nearby recommendations are discontinued."
    assert notice["purpose_description"].startswith("Use the device location")
    assert await notices(consent, never_located_headers) == []
    [(_, notification)] = await notifications(consent)
    assert notification.subject == located
    assert notification.data == {"cessation_id": created["id"], "kind": "purpose_ceased"}

    public = await consent.client.get("/cessations")  # users see what ceased, no token
    assert public.status_code == 200
    assert [(c["id"], c["purpose"]) for c in public.json()] == [(created["id"], "location")]

    again = await consent.client.post(
        "/cessations",
        json={"kind": "purpose_ceased", "purpose": "location", "effective_date": "2027-02-01"},
        headers=consent.privacy_officer(),
    )
    assert again.status_code == 409


async def test_only_known_non_legal_purposes_can_cease(consent: Consent) -> None:
    officer = consent.privacy_officer()
    for purpose, code in (("no.such_purpose", "unknown-purpose"), ("legal.retention", None)):
        response = await consent.client.post(
            "/cessations",
            json={"kind": "purpose_ceased", "purpose": purpose, "effective_date": "2027-01-01"},
            headers=officer,
        )
        assert response.status_code == 422, purpose
        if code:
            assert response.json()["type"].endswith(code)


@pytest.mark.obligation("OB-2H-1")
async def test_a_change_of_controller_tells_every_user_the_recipient(consent: Consent) -> None:
    users = [consent.user() for _ in range(2)]
    await feed(
        consent,
        processing(users[0][0], purpose="order.fulfilment"),
        processing(users[1][0], purpose="account", service="identity", action="write"),
    )

    created = await declare(
        consent,
        {
            "kind": "controller_change",
            "change": "merger",
            "recipient_name": "Atelier Holdings Ltd.",
            "recipient_contact": "dpo@atelier.example",
            "changes_purpose_or_method": True,
            "effective_date": "2027-03-01",
        },
    )

    assert created["notified_users"] == 2
    assert created["consent_renewal_required"] is True
    for _, headers in users:
        [notice] = await notices(consent, headers)
        assert notice["kind"] == "controller_change"
        assert notice["recipient_name"] == "Atelier Holdings Ltd."
        assert notice["recipient_contact"] == "dpo@atelier.example"
        assert notice["consent_renewal_required"] is True
        assert notice["change"] == "merger"
    [event] = [e for e in await consent.outbox_events() if "controller.changed" in e.type]
    assert event.data["consent_renewal_required"] is True
    raw = json.dumps([e.model_dump(mode="json") for e in await consent.outbox_events()])
    assert "Atelier" not in raw and "dpo@atelier.example" not in raw
    [listed] = (await consent.client.get("/cessations")).json()
    assert listed["recipient_name"] == "Atelier Holdings Ltd."
    assert listed["consent_renewal_required"] is True


@pytest.mark.obligation("OB-2H-1")
async def test_a_recipient_keeping_purpose_and_method_needs_no_new_consent(
    consent: Consent,
) -> None:
    user, headers = consent.user()
    await feed(consent, processing(user))

    await declare(
        consent,
        {
            "kind": "controller_change",
            "change": "division",
            "recipient_name": "Signature Retail Co.",
            "recipient_contact": "400-000-0001",
            "changes_purpose_or_method": False,
            "effective_date": "2027-03-01",
        },
    )

    [notice] = await notices(consent, headers)
    assert notice["consent_renewal_required"] is False
    assert notice["recipient_contact"] == "400-000-0001"


async def test_only_policy_admins_declare_cessations(consent: Consent) -> None:
    _, user_headers = consent.user()
    body = {"kind": "purpose_ceased", "purpose": "location", "effective_date": "2027-01-01"}
    for headers in (user_headers, staff(consent, "security")):
        response = await consent.client.post("/cessations", json=body, headers=headers)
        assert response.status_code == 403
    assert (await consent.client.post("/cessations", json=body)).status_code == 401
    assert (await consent.client.get("/cessations")).json() == []
