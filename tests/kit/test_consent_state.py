"""kit.consent_state: one subject's consents, and the view that materialises every
subject's state from the compacted topic alone (design principle 4)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from kit.catalogue import default_catalogue
from kit.consent_state import (
    CONSENT_STATE_EVENT,
    ConsentEntry,
    ConsentStateView,
    NotAConsent,
    SubjectConsent,
    consentable_purposes,
    split_key,
    state_key,
)
from kit.events import new_event
from kit.kafka import TopicSpec, ensure_topics
from kit.testing import eventually
from tests.conftest import Broker

CATALOGUE = default_catalogue()
CONSENTABLE = consentable_purposes(CATALOGUE)
NOW = datetime(2026, 11, 29, 5, 9, tzinfo=UTC)


def state(subject: str, version: int = 1, **granted: bool) -> SubjectConsent:
    """A state whose keys are the keyword names with ``__`` for ``.`` and ``_to_`` for ``:``."""
    return SubjectConsent(
        subject=subject,
        consentable=CONSENTABLE,
        version=version,
        entries={
            name.replace("__", ".").replace("_to_", ":"): ConsentEntry(value, NOW)
            for name, value in granted.items()
        },
    )


@pytest.mark.obligation("OB-0-1")
def test_the_consentable_purposes_are_the_additional_and_separate_ones() -> None:
    assert consentable_purposes(CATALOGUE) == {
        "location",
        "recommendation.personalised",
        "search.image_voice",
        "marketing.price_drop",
        "sensitive.face_verification",
        "cross_border.transfer",
    }


@pytest.mark.obligation("OB-0-1")
def test_granted_answers_for_consents_only() -> None:
    subject = state("acc_1", location=False, marketing__price_drop=True)
    assert subject.granted("marketing.price_drop") is True
    assert subject.granted("location") is False  # withdrawn
    assert subject.granted("search.image_voice") is False  # never asked
    for basic in ("order.fulfilment", "cart", "browse", "logistics.delivery", "legal.retention"):
        with pytest.raises(NotAConsent, match=basic):
            subject.granted(basic)
    with pytest.raises(NotAConsent):
        subject.granted("made.up")
    unknown = SubjectConsent(subject="acc_2", consentable=CONSENTABLE)
    assert not any(unknown.granted(p) for p in CONSENTABLE - {"cross_border.transfer"})


@pytest.mark.obligation("OB-4-5")
def test_cross_border_consent_is_answered_per_recipient() -> None:
    subject = state(
        "acc_1",
        cross_border__transfer_to_rcp_a=True,
        cross_border__transfer_to_rcp_b=False,
    )
    assert subject.granted("cross_border.transfer", recipient_id="rcp_a")
    assert subject.granted("cross_border.transfer:rcp_a")
    assert not subject.granted("cross_border.transfer", recipient_id="rcp_b")
    assert not subject.granted("cross_border.transfer", recipient_id="rcp_c")
    assert subject.granted_recipients() == {"rcp_a"}
    with pytest.raises(ValueError, match="per recipient"):
        subject.granted("cross_border.transfer")
    with pytest.raises(ValueError, match="not consented per recipient"):
        subject.granted("location", recipient_id="rcp_a")
    assert state_key("cross_border.transfer", "rcp_a") == "cross_border.transfer:rcp_a"
    assert split_key("cross_border.transfer:rcp_a") == ("cross_border.transfer", "rcp_a")
    assert split_key("location") == ("location", None)


def test_state_data_round_trips_and_holds_only_ids_booleans_and_times() -> None:
    original = state("acc_1", version=7, location=True, cross_border__transfer_to_rcp_a=False)
    data = original.to_data()
    assert data == {
        "version": 7,
        "consents": {
            "cross_border.transfer:rcp_a": {"granted": False, "changed_at": NOW.isoformat()},
            "location": {"granted": True, "changed_at": NOW.isoformat()},
        },
        "policy": {"version_agreed": None, "sequence_agreed": None},
    }
    assert SubjectConsent.from_data("acc_1", data, consentable=CONSENTABLE) == original
    agreed = SubjectConsent(
        subject="acc_1",
        consentable=CONSENTABLE,
        policy_version_agreed="2026.2",
        policy_sequence_agreed=3,
    )
    assert SubjectConsent.from_data("acc_1", agreed.to_data(), consentable=CONSENTABLE) == agreed
    for bad in (
        {"version": 1},
        {"version": "1", "consents": {}},
        {"version": 1, "consents": {"location": {"granted": "yes", "changed_at": "x"}}},
        {"version": 1, "consents": {"location": {"granted": True, "changed_at": "2026-11-29"}}},
    ):
        with pytest.raises(ValueError):
            SubjectConsent.from_data("acc_1", bad, consentable=CONSENTABLE)


# --------------------------------------------------------------------------- on the broker


def state_record(subject: str, version: int, **granted: bool) -> bytes:
    event = new_event(
        source="/consent",
        type=CONSENT_STATE_EVENT,
        subject=subject,
        purpose="account",
        data=state(subject, version, **granted).to_data(),
    )
    return event.to_json_bytes()


async def produce(servers: str, topic: str, records: list[tuple[str, bytes | None]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=servers, enable_idempotence=True)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key.encode())
    finally:
        await producer.stop()


async def topic_exists(servers: str, topic: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        return topic in await admin.list_topics()
    finally:
        await admin.close()


@pytest.mark.integration
@pytest.mark.obligation("OB-0-2")
async def test_the_view_rebuilds_the_latest_state_per_subject_and_keeps_following(
    kafka: Broker,
) -> None:
    servers = kafka.bootstrap_servers
    topic = f"t{uuid.uuid4().hex[:8]}.consent.state"
    await ensure_topics(servers, [TopicSpec(topic, partitions=3, compacted=True)])
    subjects = [f"acc_{i:02d}x" for i in range(30)]
    records: list[tuple[str, bytes | None]] = []
    for version in range(1, 4):
        for index, subject in enumerate(subjects):
            location = (index + version) % 2 == 0
            records.append((subject, state_record(subject, version, location=location)))
    records.append(("acc_broken", b"{not an event"))
    records.append((subjects[0], None))  # a tombstone: the subject is forgotten
    await produce(servers, topic, records)

    view = ConsentStateView(bootstrap_servers=servers, topic=topic, catalogue=CATALOGUE)
    assert not view.ready
    view.start()
    try:
        assert await view.wait_ready(60), view.last_error
        assert set(view.snapshot()) == set(subjects[1:])
        for index, subject in enumerate(subjects[1:], start=1):
            current = view.state_of(subject)
            assert current.version == 3
            assert current.granted("location") is ((index + 3) % 2 == 0)
        assert view.state_of(subjects[0]).version == 0
        assert not view.state_of(subjects[0]).granted("location")
        assert view.skipped == 1

        follower = subjects[1]
        await produce(
            servers,
            topic,
            [(follower, state_record(follower, 4, location=False, search__image_voice=True))],
        )

        async def followed() -> bool:
            return view.state_of(follower).version == 4

        await eventually(followed, timeout_s=30, what="the view to follow a new state")
        latest = view.state_of(follower)
        assert not latest.granted("location") and latest.granted("search.image_voice")
    finally:
        await view.stop()
    assert not view.running


@pytest.mark.integration
async def test_the_view_waits_for_the_topic_without_creating_it(kafka: Broker) -> None:
    servers = kafka.bootstrap_servers
    topic = f"t{uuid.uuid4().hex[:8]}.consent.state"
    view = ConsentStateView(
        bootstrap_servers=servers, topic=topic, catalogue=CATALOGUE, retry_delay_s=0.2
    )
    view.start()
    try:
        assert not await view.wait_ready(2)
        assert not await topic_exists(servers, topic)  # never auto-created, uncompacted
        assert not view.state_of("acc_1x").granted("location")
        await ensure_topics(servers, [TopicSpec(topic, partitions=2, compacted=True)])
        await produce(servers, topic, [("acc_1x", state_record("acc_1x", 1, location=True))])

        async def granted() -> bool:
            return view.state_of("acc_1x").granted("location")

        await eventually(granted, timeout_s=60, what="the view to find the new topic")
        assert view.ready
    finally:
        await view.stop()


@pytest.mark.integration
async def test_a_view_of_an_empty_topic_is_ready_at_once(kafka: Broker) -> None:
    servers = kafka.bootstrap_servers
    topic = f"t{uuid.uuid4().hex[:8]}.consent.state"
    await ensure_topics(servers, [TopicSpec(topic, partitions=3, compacted=True)])
    view = ConsentStateView(bootstrap_servers=servers, topic=topic)
    view.start()
    try:
        assert await view.wait_ready(30), view.last_error
        assert len(view) == 0
    finally:
        await view.stop()
