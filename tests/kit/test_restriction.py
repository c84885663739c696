"""kit.restriction: the view every app keeps of the restricted and storage-only subjects,
and its readiness (an app is not ready before it has read the restrictions topic)."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer

from kit.catalogue import default_catalogue
from kit.events import new_event
from kit.kafka import TopicSpec, ensure_topics
from kit.restriction import (
    STATE_EVENT,
    STATE_SOURCE,
    Restrictions,
    RestrictionState,
    RestrictionView,
)
from kit.testing import eventually
from tests.conftest import Broker

CATALOGUE = default_catalogue()


def state_record(subject: str, state: RestrictionState) -> bytes:
    event = new_event(
        source=STATE_SOURCE,
        type=STATE_EVENT,
        subject=subject,
        purpose="rights.access",
        data=state.to_data(),
    )
    return event.to_json_bytes()


async def produce(servers: str, topic: str, records: list[tuple[str, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=servers, enable_idempotence=True)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key.encode())
    finally:
        await producer.stop()


async def caught_up(view: RestrictionView, timeout_s: float) -> None:
    async def ready() -> bool:
        return view.ready

    await eventually(ready, timeout_s=timeout_s, what=f"{view.name} to catch up")


@pytest.mark.integration
@pytest.mark.obligation("OB-L-2")
async def test_the_view_is_ready_only_once_it_has_read_every_restriction_published_before(
    kafka: Broker,
) -> None:
    servers = kafka.bootstrap_servers
    topic = f"t{uuid.uuid4().hex[:8]}.consent.restrictions"
    await ensure_topics(servers, [TopicSpec(topic, partitions=3, compacted=True)])
    subjects = [f"acc_{i:02d}r" for i in range(40)]
    restricted = RestrictionState(purposes=frozenset({"order.query"}))
    await produce(
        servers, topic, [(subject, state_record(subject, restricted)) for subject in subjects]
    )
    held = "acc_held"
    await produce(servers, topic, [(held, state_record(held, RestrictionState(storage_only=True)))])

    restrictions = Restrictions(CATALOGUE)
    view = RestrictionView(bootstrap_servers=servers, topic=topic, restrictions=restrictions)
    assert not view.ready
    view.start()
    try:
        await caught_up(view, 60)
        # Ready means caught up: nothing published before is still missing.
        assert len(restrictions) == len(subjects) + 1
        refused = restrictions.refusal(subjects[-1], "order.query")
        assert refused is not None and refused.code == "processing-restricted"
        held_refusal = restrictions.refusal(held, "order.query")
        assert held_refusal is not None and held_refusal.code == "storage-only"
    finally:
        await view.stop()


@pytest.mark.integration
async def test_a_view_of_an_empty_topic_is_ready_at_once(kafka: Broker) -> None:
    servers = kafka.bootstrap_servers
    topic = f"t{uuid.uuid4().hex[:8]}.consent.restrictions"
    await ensure_topics(servers, [TopicSpec(topic, partitions=2, compacted=True)])
    restrictions = Restrictions(CATALOGUE)
    view = RestrictionView(bootstrap_servers=servers, topic=topic, restrictions=restrictions)
    view.start()
    try:
        await caught_up(view, 30)
        assert len(restrictions) == 0
    finally:
        await view.stop()
