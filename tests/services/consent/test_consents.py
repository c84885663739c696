"""Consents in the running consent app, with real tokens: per-purpose grants and
withdrawals with receipts, basic functions that are never consents, cross-border consent
only with the overseas recipient's disclosure, minors who need their guardian, and the
state published through the outbox (then, on the real broker, rebuilt from the topic)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import select
from sqlmodel import col

from kit.auth import USER_SCOPES, Scope
from kit.clock import china_today
from kit.consent_state import (
    CONSENT_STATE_EVENT,
    ConsentEntry,
    ConsentStateView,
    NotAConsent,
    SubjectConsent,
    consentable_purposes,
)
from kit.events import Event, new_event, personal_shape
from kit.kafka import TopicSpec, ensure_topics
from kit.models import OutboxMessage
from kit.outbox import outbox_stats
from kit.testing import bearer, eventually, mint_token, new_subject, serve_app, trust_only
from services.consent.config import Settings
from services.consent.consents.models import ConsentSubject, CurrentConsent
from services.consent.consents.service import (
    CHANGED_EVENT,
    GUARDIAN_LINKED_EVENT,
    VERIFICATION_COMPLETED_EVENT,
    new_receipt_id,
    record_guardianship,
    record_identity_fact,
)
from tests.conftest import Broker
from tests.services.consent.conftest import ISSUER, KEY, Consent

ADDITIONAL = {
    "location",
    "recommendation.personalised",
    "search.image_voice",
    "marketing.price_drop",
}
SEPARATE = {"sensitive.face_verification", "cross_border.transfer"}
BASIC_PURPOSES = ("order.fulfilment", "browse", "cart", "account", "logistics.delivery")

LOCATION_SHOWN = {
    "title": "Use your location?",
    "text": "We use your device location to fill in the delivery address and recommend "
    "nearby goods and same-city content. You can turn it off at any time.",
    "policy_section": "2G",
}


def disclosure(recipient_id: str = "rcp_tokyo_seller", **overrides: Any) -> dict[str, Any]:
    recipient: dict[str, Any] = {
        "id": recipient_id,
        "name": "Sakura Trading K.K.",
        "contact": "privacy@sakura-trading.example, +81 3 1234 5678",
        "purpose": "fulfil your cross-border order and after-sales service",
        "processing_method": "de-identified, encrypted waybill; stored 3 years",
        "data_types": ["delivery address", "consignee name (masked)"],
        "how_to_exercise_rights": "write to privacy@sakura-trading.example within 15 days",
        "country": "JP",
    }
    recipient.update(overrides)
    return {"text": "Your order is fulfilled by an overseas seller.", "recipient": recipient}


async def change(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    purpose: str,
    granted: bool,
    shown: dict[str, Any] | None = None,
    *,
    path: str = "/consents",
) -> httpx.Response:
    body = {"purpose": purpose, "granted": granted, "shown": shown or LOCATION_SHOWN}
    return await client.post(path, json=body, headers=headers)


async def state_of(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get("/consents/me", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def granted_keys(state: dict[str, Any]) -> set[str]:
    return {value["key"] for value in state["consents"] if value["granted"]}


async def outbox_rows_of(database: Any) -> list[OutboxMessage]:
    async with database.session() as session:
        return list(await session.scalars(select(OutboxMessage).order_by(col(OutboxMessage.seq))))


async def outbox_rows(consent: Consent) -> list[OutboxMessage]:
    return await outbox_rows_of(consent.context.database)


def state_topic(settings: Settings) -> str:
    return settings.topic(settings.consent_state_topic)


# --------------------------------------------------------------------------- purposes


@pytest.mark.obligation("OB-0-1")
async def test_only_additional_and_separate_purposes_are_offered(consent: Consent) -> None:
    response = await consent.client.get("/consents/purposes")  # public: no token
    assert response.status_code == 200
    purposes = {item["id"]: item for item in response.json()}
    assert set(purposes) == ADDITIONAL | SEPARATE
    assert purposes["location"]["kind"] == "additional"
    assert "location" in purposes["location"]["description"].lower()
    assert purposes["cross_border.transfer"]["per_recipient"] is True
    assert (
        "shown.recipient.how_to_exercise_rights"
        in (purposes["cross_border.transfer"]["required_disclosure"])
    )


@pytest.mark.obligation("OB-0-1")
@pytest.mark.parametrize(
    ("purpose", "code"),
    [
        ("order.fulfilment", "not-a-consent"),
        ("browse", "not-a-consent"),
        ("legal.retention", "not-a-consent"),
        ("incident.notification", "not-a-consent"),
        ("telepathy", "unknown-purpose"),
    ],
)
async def test_basic_and_legal_purposes_cannot_be_granted(
    consent: Consent, purpose: str, code: str
) -> None:
    _, headers = consent.user()
    for granted in (True, False):
        response = await change(consent.client, headers, purpose, granted)
        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["type"].endswith(f"/{code}")
        assert problem["purpose"] == purpose and purpose in problem["detail"]
    assert await consent.outbox_events() == []


async def test_changing_consents_needs_the_consent_write_scope(consent: Consent) -> None:
    subject = new_subject()
    reader = bearer(consent.token(subject, [Scope.CONSENT_READ]))
    response = await change(consent.client, reader, "location", True)
    assert response.status_code == 403 and "consent:write" in response.json()["detail"]
    anonymous = await consent.client.post(
        "/consents", json={"purpose": "location", "granted": True, "shown": LOCATION_SHOWN}
    )
    assert anonymous.status_code == 401


async def test_a_grant_records_what_was_shown_a_withdrawal_needs_nothing(consent: Consent) -> None:
    _, headers = consent.user()
    empty = await consent.client.post(
        "/consents", json={"purpose": "location", "granted": True, "shown": {}}, headers=headers
    )
    assert empty.status_code == 422 and empty.json()["type"].endswith("/nothing-shown")
    extra = await consent.client.post(
        "/consents",
        json={"purpose": "location", "granted": True, "shown": LOCATION_SHOWN, "note": "x"},
        headers=headers,
    )
    assert extra.status_code == 422 and extra.json()["errors"][0]["field"] == "body.note"
    # Withdrawing needs nothing shown: it is never harder than granting.
    withdrawn = await consent.client.post(
        "/consents", json={"purpose": "location", "granted": False}, headers=headers
    )
    assert withdrawn.status_code == 201 and withdrawn.json()["shown"] == {}


# --------------------------------------------------------------------------- grant / withdraw


@pytest.mark.obligation("OB-2G-1")
async def test_location_is_granted_and_withdrawn_with_receipts(consent: Consent) -> None:
    client = consent.client
    subject = new_subject()
    headers = bearer(consent.token(subject, USER_SCOPES, client_type="mini_program"))
    before = await state_of(client, headers)
    assert before["version"] == 0 and granted_keys(before) == set()
    location = next(v for v in before["consents"] if v["key"] == "location")
    assert location["changed_at"] is None  # never asked: not granted

    granted = await change(client, headers, "location", True)
    assert granted.status_code == 201, granted.text
    receipt = granted.json()
    assert receipt["id"].startswith("rcpt_")
    assert (receipt["subject"], receipt["purpose"], receipt["granted"]) == (
        subject,
        "location",
        True,
    )
    assert (receipt["actor"], receipt["actor_role"]) == (subject, "subject")
    assert receipt["channel"] == "mini_program"
    assert "policy_version" in receipt
    assert receipt["shown"] == LOCATION_SHOWN
    canonical = json.dumps(
        LOCATION_SHOWN, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert receipt["shown_sha256"] == hashlib.sha256(canonical.encode()).hexdigest()
    recorded_at = datetime.fromisoformat(receipt["recorded_at"])
    assert abs((datetime.now(UTC) - recorded_at).total_seconds()) < 60
    after_grant = await state_of(client, headers)
    assert granted_keys(after_grant) == {"location"}

    # Withdrawing is the same call with granted: false.
    withdrawal_shown = {"title": "Location is on", "action": "Turn off"}
    withdrawn = await change(client, headers, "location", False, withdrawal_shown)
    assert withdrawn.status_code == 201, withdrawn.text
    assert withdrawn.json()["granted"] is False
    after = await state_of(client, headers)
    assert granted_keys(after) == set() and after["version"] == 2
    location = next(v for v in after["consents"] if v["key"] == "location")
    assert location["receipt_id"] == withdrawn.json()["id"]

    history = (await client.get("/consents/me/receipts", headers=headers)).json()
    assert [(r["id"], r["granted"]) for r in history] == [
        (receipt["id"], True),
        (withdrawn.json()["id"], False),
    ]
    one = await client.get(f"/consents/me/receipts/{receipt['id']}", headers=headers)
    assert one.status_code == 200 and one.json() == receipt
    _, stranger = consent.user()
    assert (
        await client.get(f"/consents/me/receipts/{receipt['id']}", headers=stranger)
    ).status_code == 404
    assert (await client.get("/consents/me/receipts", headers=stranger)).json() == []


@pytest.mark.obligation("OB-0-2")
async def test_withdrawing_one_purpose_leaves_the_others_and_says_nothing_of_basics(
    consent: Consent,
) -> None:
    client = consent.client
    subject, headers = consent.user()
    for purpose in ("location", "recommendation.personalised", "marketing.price_drop"):
        assert (await change(client, headers, purpose, True)).status_code == 201
    assert (await change(client, headers, "location", False)).status_code == 201

    state = await state_of(client, headers)
    assert granted_keys(state) == {"recommendation.personalised", "marketing.price_drop"}
    listed = {value["purpose"] for value in state["consents"]}
    assert listed <= ADDITIONAL | SEPARATE and not listed & set(BASIC_PURPOSES)

    published = [e for e in await consent.outbox_events() if e.type == CONSENT_STATE_EVENT]
    latest = SubjectConsent.from_data(
        subject, published[-1].data, consentable=consentable_purposes(consent.context.catalogue)
    )
    assert set(latest.entries) == {
        "location",
        "recommendation.personalised",
        "marketing.price_drop",
    }
    assert not latest.granted("location")
    assert latest.granted("recommendation.personalised") and latest.granted("marketing.price_drop")
    for basic in BASIC_PURPOSES:  # basic functions are never a consent, so never withdrawn
        with pytest.raises(NotAConsent):
            latest.granted(basic)


async def test_a_receipt_names_the_policy_version_in_effect(consent: Consent) -> None:
    from services.consent.policies.schemas import PolicyVersionCreate  # noqa: PLC0415
    from services.consent.policies.service import publish_version  # noqa: PLC0415

    _, headers = consent.user()
    before = await change(consent.client, headers, "location", True)
    assert before.status_code == 201 and before.json()["policy_version"] is None
    async with consent.context.database.session() as session:
        await publish_version(
            session,
            events=consent.context.events,
            request=PolicyVersionCreate(
                version="2026.1",
                effective_date=china_today(),
                text="The Signature Workshop privacy policy.",
                summary_of_changes="First version.",
                major=False,
                reduces_rights=False,
            ),
            published_by="acc_officer",
            today=china_today(),
        )
    after = await change(consent.client, headers, "location", False)
    assert after.status_code == 201 and after.json()["policy_version"] == "2026.1"


def test_receipt_ids_never_look_like_personal_data() -> None:
    ids = {new_receipt_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert not any(personal_shape(receipt_id) for receipt_id in ids)
    assert not any(character.isdigit() for receipt_id in ids for character in receipt_id)


# --------------------------------------------------------------------------- cross-border


@pytest.mark.obligation("OB-4-5")
async def test_cross_border_consent_needs_the_recipient_disclosure(consent: Consent) -> None:
    client = consent.client
    _, headers = consent.user()
    nothing = await change(client, headers, "cross_border.transfer", True, {"text": "ok?"})
    assert nothing.status_code == 422
    assert nothing.json()["type"].endswith("/disclosure-incomplete")
    assert nothing.json()["missing"] == [
        "shown.recipient.id",
        "shown.recipient.name",
        "shown.recipient.contact",
        "shown.recipient.purpose",
        "shown.recipient.processing_method",
        "shown.recipient.data_types",
        "shown.recipient.how_to_exercise_rights",
    ]
    partial = disclosure(contact="  ", data_types=[], how_to_exercise_rights=None)
    del partial["recipient"]["processing_method"]
    refused = await change(client, headers, "cross_border.transfer", True, partial)
    assert refused.status_code == 422
    missing = refused.json()["missing"]
    assert missing == [
        "shown.recipient.contact",
        "shown.recipient.processing_method",
        "shown.recipient.data_types",
        "shown.recipient.how_to_exercise_rights",
    ]
    for field in missing:
        assert field in refused.json()["detail"]
    assert granted_keys(await state_of(client, headers)) == set()
    assert await consent.outbox_events() == []


@pytest.mark.obligation("OB-4-5")
async def test_cross_border_consent_is_per_recipient(consent: Consent) -> None:
    client = consent.client
    subject, headers = consent.user()
    shown = disclosure("rcp_tokyo_seller")
    granted = await change(client, headers, "cross_border.transfer", True, shown)
    assert granted.status_code == 201, granted.text
    receipt = granted.json()
    assert (receipt["recipient_id"], receipt["recipient_name"]) == (
        "rcp_tokyo_seller",
        "Sakura Trading K.K.",
    )
    assert receipt["shown"] == shown
    state = await state_of(client, headers)
    assert granted_keys(state) == {"cross_border.transfer:rcp_tokyo_seller"}
    entry = next(v for v in state["consents"] if v["purpose"] == "cross_border.transfer")
    assert entry["recipient_name"] == "Sakura Trading K.K."

    other = await change(
        client, headers, "cross_border.transfer", True, disclosure("rcp_paris", name="Lumière SA")
    )
    assert other.status_code == 201
    # Withdrawing from one recipient needs its id only, and leaves the other.
    withdrawn = await change(
        client, headers, "cross_border.transfer", False, {"recipient": {"id": "rcp_tokyo_seller"}}
    )
    assert withdrawn.status_code == 201, withdrawn.text
    assert granted_keys(await state_of(client, headers)) == {"cross_border.transfer:rcp_paris"}
    no_recipient = await change(client, headers, "cross_border.transfer", False, {"x": 1})
    assert no_recipient.status_code == 422
    assert no_recipient.json()["missing"] == ["shown.recipient.id"]

    published = [e for e in await consent.outbox_events() if e.type == CONSENT_STATE_EVENT]
    latest = SubjectConsent.from_data(
        subject, published[-1].data, consentable=consentable_purposes(consent.context.catalogue)
    )
    assert latest.granted("cross_border.transfer", recipient_id="rcp_paris")
    assert not latest.granted("cross_border.transfer:rcp_tokyo_seller")
    assert latest.granted_recipients() == {"rcp_paris"}
    # The recipient's disclosure (name, contact) stays in the receipt, out of events.
    raw = json.dumps([e.model_dump(mode="json") for e in await consent.outbox_events()])
    assert "Sakura" not in raw and "Lumière" not in raw and "sakura-trading" not in raw


# --------------------------------------------------------------------------- minors


async def link_guardian(consent: Consent, *, ward: str, guardian: str) -> None:
    """What the guardianship consumer does with identity's guardian.linked event."""
    event = new_event(
        source="/identity",
        type=GUARDIAN_LINKED_EVENT,
        subject=ward,
        purpose="identity.verification",
        data={"guardian_account_id": guardian},
        categories=["user.minor.age"],
    )
    async with consent.context.database.session() as session:
        await record_guardianship(session, event)


@pytest.mark.obligation("OB-2A-4")
async def test_a_minor_cannot_grant_but_the_guardian_can(consent: Consent) -> None:
    client = consent.client
    ward, ward_headers = consent.user(minor=True, guardian_consent=False)
    guardian, guardian_headers = consent.user(client_type="web")
    _, stranger_headers = consent.user()

    refused = await change(client, ward_headers, "location", True)
    assert refused.status_code == 403
    assert refused.json()["type"].endswith("/guardian-consent-required")
    assert f"/wards/{ward}/consents" in refused.json()["detail"]
    # Withdrawing only reduces processing: a minor may always do it.
    assert (await change(client, ward_headers, "location", False)).status_code == 201

    ward_path = f"/wards/{ward}/consents"
    before_link = await change(client, guardian_headers, "location", True, path=ward_path)
    assert before_link.status_code == 403
    assert before_link.json()["type"].endswith("/not-guardian")

    await link_guardian(consent, ward=ward, guardian=guardian)
    granted = await change(client, guardian_headers, "location", True, path=ward_path)
    assert granted.status_code == 201, granted.text
    receipt = granted.json()
    assert (receipt["subject"], receipt["actor"], receipt["actor_role"]) == (
        ward,
        guardian,
        "guardian",
    )
    assert receipt["channel"] == "web"
    assert granted_keys(await state_of(client, ward_headers)) == {"location"}
    assert granted_keys(await state_of(client, guardian_headers)) == set()  # not the guardian's
    ward_state = await client.get(ward_path, headers=guardian_headers)
    assert ward_state.status_code == 200 and granted_keys(ward_state.json()) == {"location"}
    ward_receipts = await client.get(f"{ward_path}/receipts", headers=guardian_headers)
    assert [r["actor_role"] for r in ward_receipts.json()] == ["subject", "guardian"]

    assert (
        await change(client, stranger_headers, "location", True, path=ward_path)
    ).status_code == 403
    assert (await client.get(ward_path, headers=stranger_headers)).status_code == 403
    # Nothing about being a minor or having a guardian reaches an event.
    for event in await consent.outbox_events():
        assert guardian not in json.dumps(event.data)
        assert "guardian" not in json.dumps(event.data) and "minor" not in json.dumps(event.data)


async def record_verification(consent: Consent, subject: str, *, minor: bool) -> None:
    """What the guardianships consumer does with identity's verification.completed."""
    event = new_event(
        source="/identity",
        type=VERIFICATION_COMPLETED_EVENT,
        subject=subject,
        purpose="identity.verification",
        data={"result": "match", "level": "real_name", "minor": minor},
        categories=["user.minor.age"],
    )
    async with consent.context.database.session() as session:
        await record_identity_fact(session, event)


@pytest.mark.obligation("OB-2A-4")
async def test_a_childs_token_from_before_their_verification_grants_nothing(
    consent: Consent,
) -> None:
    """The token a child signed in with says what identity knew then (not a minor); the
    verification that found them under 14 counts from the moment consent reads it."""
    client = consent.client
    child, stale = consent.user()  # minor: false, issued before the verification
    _, other = consent.user()
    guardian, _ = consent.user()
    await record_verification(consent, child, minor=True)
    await record_verification(consent, guardian, minor=False)

    refused = await change(client, stale, "location", True)
    assert refused.status_code == 403, refused.text
    assert refused.json()["type"].endswith("/guardian-consent-required")
    assert (await change(client, stale, "location", False)).status_code == 201
    assert (await change(client, other, "location", True)).status_code == 201  # never verified

    await link_guardian(consent, ward=child, guardian=guardian)
    granted = await change(client, stale, "location", True)  # the guardian's consent is given
    assert granted.status_code == 201, granted.text


# --------------------------------------------------------------------------- published state


async def test_every_change_puts_the_whole_state_in_the_outbox_keyed_by_subject(
    consent: Consent,
) -> None:
    client = consent.client
    alice, alice_headers = consent.user()
    bob, bob_headers = consent.user()
    changes = [
        (alice_headers, "location", True, None),
        (bob_headers, "search.image_voice", True, None),
        (alice_headers, "cross_border.transfer", True, disclosure("rcp_1")),
        (alice_headers, "location", False, None),
        (bob_headers, "sensitive.face_verification", True, None),
    ]
    receipts = []
    for headers, purpose, granted, shown in changes:
        response = await change(client, headers, purpose, granted, shown)
        assert response.status_code == 201, response.text
        receipts.append(response.json())

    rows = await outbox_rows(consent)
    topic = state_topic(consent.settings)
    state_rows = [row for row in rows if row.event_type == CONSENT_STATE_EVENT]
    assert len(state_rows) == len(changes)
    assert {row.topic for row in state_rows} == {topic}
    assert [row.key for row in state_rows] == [alice, bob, alice, alice, bob]

    states = [Event.model_validate_json(row.payload) for row in state_rows]
    assert [event.subject for event in states] == [row.key for row in state_rows]
    final_alice = states[3].data
    assert final_alice["version"] == 3
    assert {k: v["granted"] for k, v in final_alice["consents"].items()} == {
        "location": False,
        "cross_border.transfer:rcp_1": True,
    }
    for value in final_alice["consents"].values():
        assert datetime.fromisoformat(value["changed_at"]).tzinfo is not None

    changed = [
        Event.model_validate_json(row.payload) for row in rows if row.event_type == CHANGED_EVENT
    ]
    assert {row.topic for row in rows if row.event_type == CHANGED_EVENT} == {
        consent.settings.events_topic
    }
    assert [(e.data["purpose"], e.data["granted"], e.data["receipt_id"]) for e in changed] == [
        (r["purpose"], r["granted"], r["id"]) for r in receipts
    ]

    # No personal data: not what was shown, not the recipient, nothing but ids, purposes,
    # booleans, counters and times.
    raw = " ".join(row.payload for row in rows)
    for text in ("device location", "Sakura", "privacy@", "+81", "delivery address"):
        assert text not in raw
    for event in states:
        assert set(event.data) == {"version", "consents", "policy"}
        for value in event.data["consents"].values():
            assert set(value) == {"granted", "changed_at"}


async def test_a_failed_change_writes_nothing(consent: Consent) -> None:
    _, headers = consent.user()
    await change(consent.client, headers, "cross_border.transfer", True, {"recipient": {}})
    await change(consent.client, headers, "order.fulfilment", True)
    assert await outbox_rows(consent) == []
    assert (await consent.client.get("/consents/me/receipts", headers=headers)).json() == []


# --------------------------------------------------------------------------- on the broker


def user_headers(subject: str, settings: Settings) -> dict[str, str]:
    return bearer(
        mint_token(
            KEY,
            issuer=ISSUER,
            audience=settings.auth_audience,
            subject=subject,
            scopes=USER_SCOPES,
        )
    )


@pytest.fixture
async def live_consent(
    kafka: Broker, tmp_path: Path
) -> AsyncIterator[tuple[Any, httpx.AsyncClient, Settings]]:
    """The consent app on the real broker, with its own topic prefix."""
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/consent.db",
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        kafka_topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
        auth_issuer=ISSUER,
        log_json=False,
        first_policy_path=None,  # these tests publish their own versions
    )
    await ensure_topics(
        kafka.bootstrap_servers,
        [TopicSpec(settings.topic("identity.events"), partitions=settings.kafka_topic_partitions)],
    )
    async with serve_app("services.consent", settings) as (app, client):
        trust_only(app, KEY)
        yield app, client, settings


async def drained(app: Any) -> None:
    database = app.state.context.database

    async def nothing_pending() -> bool:
        async with database.session() as session:
            return (await outbox_stats(session)).pending == 0

    await eventually(nothing_pending, timeout_s=90, what="the outbox to drain")


async def database_state(app: Any) -> dict[str, tuple[int, dict[str, ConsentEntry]]]:
    async with app.state.context.database.session() as session:
        subjects = {s.subject: s.version for s in await session.scalars(select(ConsentSubject))}
        rows = list(await session.scalars(select(CurrentConsent)))
    state: dict[str, tuple[int, dict[str, ConsentEntry]]] = {
        subject: (version, {}) for subject, version in subjects.items()
    }
    for row in rows:
        state[row.subject][1][row.key] = ConsentEntry(
            granted=row.granted, changed_at=row.changed_at
        )
    return state


@pytest.mark.integration
async def test_the_topic_alone_rebuilds_every_subjects_state(
    kafka: Broker, live_consent: tuple[Any, httpx.AsyncClient, Settings]
) -> None:
    app, client, settings = live_consent
    rng = random.Random(20261129)
    subjects = [new_subject() for _ in range(40)]
    headers = {s: user_headers(s, settings) for s in subjects}
    purposes = sorted(ADDITIONAL | {"sensitive.face_verification"})
    changes = 0
    for _ in range(320):
        subject = rng.choice(subjects)
        granted = rng.random() < 0.6
        if rng.random() < 0.2:
            recipient = rng.choice(["rcp_jp_1", "rcp_fr_2", "rcp_us_3"])
            shown = disclosure(recipient) if granted else {"recipient": {"id": recipient}}
            response = await change(
                client, headers[subject], "cross_border.transfer", granted, shown
            )
        else:
            response = await change(client, headers[subject], rng.choice(purposes), granted)
        assert response.status_code == 201, response.text
        changes += 1
    await drained(app)
    expected = await database_state(app)
    assert sum(version for version, _ in expected.values()) == changes

    view = ConsentStateView(
        bootstrap_servers=kafka.bootstrap_servers,
        topic=state_topic(settings),
        catalogue=app.state.context.catalogue,
    )
    view.start()
    try:
        assert await view.wait_ready(60), view.last_error
        rebuilt = {
            subject: (state.version, dict(state.entries))
            for subject, state in view.snapshot().items()
        }
        assert rebuilt == expected
        for subject in subjects[:10]:
            api = await state_of(client, headers[subject])
            state = view.state_of(subject)
            for value in api["consents"]:
                assert state.granted(value["key"]) is value["granted"]
        assert not view.state_of("acc_never_seen").granted("location")

        # The view keeps following: a withdrawal is seen within moments.
        subject = subjects[0]
        assert (await change(client, headers[subject], "location", True)).status_code == 201
        assert (await change(client, headers[subject], "location", False)).status_code == 201
        version = (await state_of(client, headers[subject]))["version"]

        async def withdrawal_seen() -> bool:
            state = view.state_of(subject)
            return state.version == version and not state.granted("location")

        await eventually(withdrawal_seen, timeout_s=30, what="the view to see the withdrawal")
    finally:
        await view.stop()


@pytest.mark.integration
@pytest.mark.obligation("OB-2A-4")
async def test_identitys_guardian_event_lets_the_guardian_grant(
    kafka: Broker, live_consent: tuple[Any, httpx.AsyncClient, Settings]
) -> None:
    _, client, settings = live_consent
    ward = new_subject()
    guardian = new_subject()
    guardian_headers = user_headers(guardian, settings)
    path = f"/wards/{ward}/consents"
    assert (await client.get(path, headers=guardian_headers)).status_code == 403

    linked = new_event(
        source="/identity",
        type=GUARDIAN_LINKED_EVENT,
        subject=ward,
        purpose="identity.verification",
        data={"guardian_account_id": guardian},
        categories=["user.minor.age"],
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    await producer.start()
    try:
        for _ in range(2):  # delivered twice: recorded once
            await producer.send_and_wait(
                settings.topic("identity.events"), linked.to_json_bytes(), key=ward.encode()
            )
    finally:
        await producer.stop()

    async def guardian_known() -> bool:
        return (await client.get(path, headers=guardian_headers)).status_code == 200

    await eventually(guardian_known, timeout_s=60, what="the guardianship to be recorded")
    granted = await change(client, guardian_headers, "marketing.price_drop", True, path=path)
    assert granted.status_code == 201, granted.text
    assert granted.json()["actor_role"] == "guardian"


@pytest.mark.integration
@pytest.mark.obligation("OB-0-1")
async def test_concurrent_changes_of_one_subject_publish_states_in_order(pg_url: str) -> None:
    """On PostgreSQL, changes of one subject are serialised: every state event is the
    whole state after its change, in outbox order, and the last one is the database's."""
    settings = Settings(
        database_url=pg_url,
        kafka_bootstrap_servers="127.0.0.1:1",
        auth_issuer=ISSUER,
        log_json=False,
        first_policy_path=None,  # these tests publish their own versions
    )
    async with serve_app("services.consent", settings) as (app, client):
        trust_only(app, KEY)
        subject = new_subject()
        headers = user_headers(subject, settings)
        purposes = sorted(ADDITIONAL | {"sensitive.face_verification"})
        plan = [(purposes[i % len(purposes)], i % 3 != 0) for i in range(30)]
        responses = await asyncio.gather(
            *(change(client, headers, purpose, granted) for purpose, granted in plan)
        )
        assert [r.status_code for r in responses] == [201] * len(plan)
        rows = [
            row
            for row in await outbox_rows_of(app.state.context.database)
            if row.event_type == CONSENT_STATE_EVENT
        ]
        versions = [Event.model_validate_json(row.payload).data["version"] for row in rows]
        assert versions == list(range(1, len(plan) + 1))
        last = Event.model_validate_json(rows[-1].payload).data["consents"]
        expected = (await database_state(app))[subject]
        assert expected[0] == len(plan)
        assert {k: v["granted"] for k, v in last.items()} == {
            k: entry.granted for k, entry in expected[1].items()
        }
        receipts = (await client.get("/consents/me/receipts", headers=headers)).json()
        assert len(receipts) == len(plan)
