"""The consumer base on the real broker: a redelivered event has no second effect, a
poison event goes to the dead-letter topic with its error and the consumer carries on."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit.consumer import EventConsumer, dead_letter_topic
from kit.db import Database
from kit.events import Event, new_event
from kit.kafka import TopicSpec, ensure_topics
from kit.models import ProcessedEvent
from kit.testing import eventually
from tests.conftest import Broker
from tests.kit.support import EVENT_TYPE, AppliedDeposits, create_tables

pytestmark = pytest.mark.integration


def deposit(subject: str, number: int, *, event_id: str | None = None) -> Event:
    return new_event(
        source="/kit-test",
        type=EVENT_TYPE,
        subject=subject,
        purpose="order.fulfilment",
        data={"number": number},
        event_id=event_id,
    )


async def apply_deposit(session: AsyncSession, event: Event) -> None:
    if event.data.get("poison"):
        raise ValueError("this deposit cannot be applied")
    if event.data.get("clash"):  # a handler bug that breaks a constraint is no duplicate
        session.add_all([AppliedDeposits(subject="acc_9"), AppliedDeposits(subject="acc_9")])
        await session.flush()
    applied = await session.get(AppliedDeposits, event.subject) or AppliedDeposits(
        subject=event.subject
    )
    applied.count += 1
    session.add(applied)


async def publish(bootstrap: str, topic: str, messages: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for value in messages:
            await producer.send_and_wait(topic, value=value, key=b"acc_1")
    finally:
        await producer.stop()


async def read_dead_letters(bootstrap: str, topic: str, count: int) -> list[dict[str, str]]:
    consumer = AIOKafkaConsumer(
        dead_letter_topic(topic),
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=uuid.uuid4().hex,
    )
    await consumer.start()
    try:
        letters: list[dict[str, str]] = []
        while len(letters) < count:
            batches = await consumer.getmany(timeout_ms=30_000)
            assert batches, "the dead-letter topic stayed empty"
            for records in batches.values():
                letters.extend({k: v.decode() for k, v in r.headers} for r in records)
        return letters
    finally:
        await consumer.stop()


async def new_topic_and_database(kafka: Broker, tmp_path: Path) -> tuple[str, Database]:
    """A fresh topic (with its dead-letter topic) and a consumer database with its tables."""
    topic = f"kit-test.consumer.{uuid.uuid4().hex[:8]}"
    await ensure_topics(
        kafka.bootstrap_servers, [TopicSpec(topic), TopicSpec(dead_letter_topic(topic))]
    )
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/consumer.db")
    await create_tables(database)
    return topic, database


async def apply_deposits(session: AsyncSession, events: Sequence[Event]) -> None:
    for event in events:
        await apply_deposit(session, event)


@pytest.mark.parametrize("in_batches", [False, True], ids=["one by one", "in batches"])
async def test_poison_events_are_dead_lettered_and_duplicates_have_no_effect(
    kafka: Broker, tmp_path: Path, in_batches: bool
) -> None:
    topic, database = await new_topic_and_database(kafka, tmp_path)
    first = deposit("acc_1", 1)
    poison = new_event(
        source="/kit-test",
        type=EVENT_TYPE,
        subject="acc_1",
        purpose="order.fulfilment",
        data={"number": 2, "poison": True},
    )
    clash = new_event(
        source="/kit-test",
        type=EVENT_TYPE,
        subject="acc_1",
        purpose="order.fulfilment",
        data={"number": 4, "clash": True},
    )
    last = deposit("acc_1", 3)
    await publish(
        kafka.bootstrap_servers,
        topic,
        [
            first.to_json_bytes(),
            first.to_json_bytes(),  # redelivered: same event id
            b"{not an event",
            poison.to_json_bytes(),
            clash.to_json_bytes(),
            last.to_json_bytes(),
        ],
    )
    consumer = EventConsumer(
        name=f"deposits-{uuid.uuid4().hex[:8]}",
        topics=[topic],
        database=database,
        bootstrap_servers=kafka.bootstrap_servers,
        handler=apply_deposit,
        batch_handler=apply_deposits if in_batches else None,
        max_attempts=3,
        retry_delay_s=0.01,
    )
    consumer.start()

    async def all_taken() -> bool:
        return consumer.handled + consumer.duplicates + consumer.dead_lettered >= 6

    try:
        await eventually(all_taken, timeout_s=60, what="the consumer to take all 6 messages")
    finally:
        await consumer.stop()

    assert (consumer.handled, consumer.duplicates, consumer.dead_lettered) == (2, 1, 3)
    async with database.session() as session:
        applied = await session.get(AppliedDeposits, "acc_1")
        outcomes = (
            await session.execute(select(col(ProcessedEvent.event_id), col(ProcessedEvent.outcome)))
        ).all()
    await database.dispose()
    assert applied is not None and applied.count == 2
    assert dict(outcomes) == {
        first.id: "handled",
        poison.id: "dead_letter",
        clash.id: "dead_letter",
        last.id: "handled",
    }

    letters = await read_dead_letters(kafka.bootstrap_servers, topic, 3)
    errors = sorted(letter["dlq.error"] for letter in letters)
    assert errors[0].startswith("IntegrityError")
    assert errors[1].startswith("ValueError: this deposit cannot be applied")
    assert errors[2].startswith("unreadable event")
    assert {letter["dlq.topic"] for letter in letters} == {topic}


async def test_a_consumer_skips_event_types_it_does_not_want_before_storing_anything(
    kafka: Broker, tmp_path: Path
) -> None:
    topic, database = await new_topic_and_database(kafka, tmp_path)
    other = new_event(
        source="/kit-test",
        type="com.signature.kit_test.deposit.withdrawn.v1",
        subject="acc_1",
        purpose="order.fulfilment",
        data={"number": 1},
    )
    wanted = deposit("acc_1", 2)
    # One key, one partition: the wanted event is read after the other one.
    await publish(kafka.bootstrap_servers, topic, [other.to_json_bytes(), wanted.to_json_bytes()])
    consumer = EventConsumer(
        name=f"deposits-{uuid.uuid4().hex[:8]}",
        topics=[topic],
        database=database,
        bootstrap_servers=kafka.bootstrap_servers,
        handler=apply_deposit,
        wants=lambda event: event.type == EVENT_TYPE,
    )
    consumer.start()

    async def wanted_handled() -> bool:
        return consumer.handled >= 1

    try:
        await eventually(wanted_handled, timeout_s=60, what="the consumer to handle the deposit")
    finally:
        await consumer.stop()

    async with database.session() as session:
        applied = await session.get(AppliedDeposits, "acc_1")
        recorded = (await session.scalars(select(col(ProcessedEvent.event_id)))).all()
    await database.dispose()
    assert (consumer.handled, consumer.skipped) == (1, 1)
    assert applied is not None and applied.count == 1
    assert recorded == [wanted.id]


async def test_an_event_handled_before_a_crash_is_a_duplicate_in_a_batch_on_postgresql(
    kafka: Broker, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The batch path looks a fetch's ids up in one query (on PostgreSQL a join from an
    array of them): an event whose effects and id were committed before the consumer died,
    its offset not, comes again in a batch beside new events and has no second effect, and
    the batch is not failed over to one event at a time (the lookup found the id)."""
    topic = f"kit-test.consumer.{uuid.uuid4().hex[:8]}"
    await ensure_topics(
        kafka.bootstrap_servers, [TopicSpec(topic), TopicSpec(dead_letter_topic(topic))]
    )
    database = Database(pg_url)
    await create_tables(database)
    name = f"deposits-{uuid.uuid4().hex[:8]}"
    handled_before = deposit("acc_1", 1)
    async with database.session() as session:  # what the consumer committed before dying
        await apply_deposit(session, handled_before)
        session.add(ProcessedEvent(consumer=name, event_id=handled_before.id))
    fresh = [deposit("acc_1", number) for number in (2, 3, 4)]
    await publish(
        kafka.bootstrap_servers,
        topic,
        [event.to_json_bytes() for event in (handled_before, *fresh)],
    )
    consumer = EventConsumer(
        name=name,
        topics=[topic],
        database=database,
        bootstrap_servers=kafka.bootstrap_servers,
        handler=apply_deposit,
        batch_handler=apply_deposits,
    )
    consumer.start()

    async def all_taken() -> bool:
        return consumer.handled + consumer.duplicates >= 4

    try:
        await eventually(all_taken, timeout_s=60, what="the consumer to take all 4 events")
    finally:
        await consumer.stop()

    async with database.session() as session:
        applied = await session.get(AppliedDeposits, "acc_1")
        recorded = set(
            await session.scalars(
                select(col(ProcessedEvent.event_id)).where(col(ProcessedEvent.consumer) == name)
            )
        )
    await database.dispose()
    assert (consumer.handled, consumer.duplicates) == (3, 1)
    assert applied is not None and applied.count == 4
    assert not [r for r in caplog.records if "taking it one by one" in r.getMessage()]
    assert recorded == {handled_before.id, *(event.id for event in fresh)}


async def test_a_trickle_gathers_into_few_transactions_when_the_consumer_lingers(
    kafka: Broker, tmp_path: Path
) -> None:
    """Under client load events come one per request, a few milliseconds apart: a batch
    consumer with ``batch_linger_s`` has the broker hold each fetch for that long, so the
    trickle is handled in a few transactions, not one per event."""
    topic, database = await new_topic_and_database(kafka, tmp_path)
    transactions: list[int] = []

    async def count_batches(session: AsyncSession, events: Sequence[Event]) -> None:
        transactions.append(len(events))
        await apply_deposits(session, events)

    consumer = EventConsumer(
        name=f"deposits-{uuid.uuid4().hex[:8]}",
        topics=[topic],
        database=database,
        bootstrap_servers=kafka.bootstrap_servers,
        handler=apply_deposit,
        batch_handler=count_batches,
        batch_linger_s=0.5,
    )
    consumer.start()
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, linger_ms=0)
    await producer.start()
    try:
        first = deposit("acc_1", 0)  # the consumer has joined once this one is handled
        await producer.send_and_wait(topic, first.to_json_bytes(), key=b"acc_1")

        async def joined() -> bool:
            return consumer.handled == 1

        await eventually(joined, timeout_s=60, what="the consumer to join")
        transactions.clear()
        for number in range(1, 21):  # 20 events, one every 10 ms: 0.2 s of trickle
            await producer.send_and_wait(
                topic, deposit("acc_1", number).to_json_bytes(), key=b"acc_1"
            )
            await asyncio.sleep(0.01)

        async def all_handled() -> bool:
            return consumer.handled == 21

        await eventually(all_handled, timeout_s=30, what="the consumer to take the trickle")
    finally:
        await producer.stop()
        await consumer.stop()
    async with database.session() as session:
        applied = await session.get(AppliedDeposits, "acc_1")
    await database.dispose()
    assert applied is not None and applied.count == 21
    assert sum(transactions) == 20
    assert len(transactions) <= 3, f"20 events took {len(transactions)} transactions"
