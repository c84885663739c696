"""The transactional outbox against the real broker and PostgreSQL: nothing lost while
Kafka is down, per-subject order kept, a crashed relay gives duplicates at most (and the
consumer's effects stay exact), a rolled-back change publishes nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kit.consumer import EventConsumer
from kit.db import Database
from kit.events import Event
from kit.kafka import TopicSpec, ensure_topics
from kit.outbox import EventWriter, OutboxRelay, outbox_stats
from kit.settings import REPO_ROOT
from kit.testing import LocalKafka, TopicSizes, eventually, read_events
from tests.conftest import Broker
from tests.kit.support import AppliedDeposits, create_tables, make_deposit

pytestmark = pytest.mark.integration

EVENTS = 2000
SUBJECTS = 40


def first_seen_order(events: list[Event]) -> dict[str, list[int]]:
    """Per subject, the deposit numbers in the order they first arrived."""
    seen: set[str] = set()
    order: dict[str, list[int]] = defaultdict(list)
    for event in events:
        if event.id not in seen:
            seen.add(event.id)
            order[event.subject].append(event.data["number"])
    return order


async def pending(database: Database) -> int:
    async with database.session() as session:
        return (await outbox_stats(session)).pending


async def nothing_pending(database: Database) -> bool:
    return await pending(database) == 0


async def test_no_event_is_lost_while_kafka_is_down(outage_kafka: LocalKafka, pg_url: str) -> None:
    outage_kafka.stop()
    database = Database(pg_url)
    await create_tables(database)
    topic = f"kit-test.noloss.{uuid.uuid4().hex[:8]}"
    writer = EventWriter(source="/kit-test", topic=topic)
    relay = OutboxRelay(
        database=database,
        bootstrap_servers=outage_kafka.bootstrap_servers,
        app_name=f"noloss-{uuid.uuid4().hex[:8]}",
        topics=[TopicSpec(topic)],
        batch_size=250,
        max_backoff_s=1.0,
    )
    relay.start()
    try:
        for number in range(EVENTS):
            await make_deposit(database, writer, subject=f"acc_{number % SUBJECTS}", number=number)

        async def tried_twice() -> bool:
            return relay.failed_cycles >= 2

        await eventually(tried_twice, timeout_s=30, what="two failed publish cycles")
        assert relay.published_total == 0
        assert not relay.kafka_connected
        assert await pending(database) == EVENTS

        outage_kafka.start()
        events = await read_events(
            outage_kafka.bootstrap_servers, topic, count=EVENTS, timeout_s=120
        )
        await eventually(
            lambda: nothing_pending(database), timeout_s=30, what="every outbox row marked sent"
        )
    finally:
        await relay.stop()
        await database.dispose()

    assert len({event.id for event in events}) == EVENTS
    order = first_seen_order(events)
    assert len(order) == SUBJECTS
    for subject, numbers in order.items():
        assert numbers == sorted(numbers), f"{subject}'s events arrived out of order"


def start_relay_process(url: str, bootstrap: str, app_name: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kit.outbox",
            "--database-url",
            url,
            "--bootstrap-servers",
            bootstrap,
            "--app-name",
            app_name,
            "--batch-size",
            "100",
        ],
        cwd=REPO_ROOT,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_a_relay_killed_mid_batch_gives_duplicates_at_most(
    kafka: Broker, pg_url: str
) -> None:
    topic = f"kit-test.crash.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka.bootstrap_servers, [TopicSpec(topic)])
    database = Database(pg_url)
    await create_tables(database)
    writer = EventWriter(source="/kit-test", topic=topic)
    for number in range(EVENTS):
        await make_deposit(database, writer, subject=f"acc_{number % SUBJECTS}", number=number)

    app_name = f"crash-{uuid.uuid4().hex[:8]}"
    relay = start_relay_process(pg_url, kafka.bootstrap_servers, app_name)
    try:
        # Kill it once Kafka holds a third of the events: some batches done, one in flight.
        deadline = time.monotonic() + 60
        async with TopicSizes(kafka.bootstrap_servers) as sizes:
            while await sizes.size(topic) < EVENTS // 3:
                assert time.monotonic() < deadline, "the relay published too little"
                await asyncio.sleep(0.002)
            relay.send_signal(signal.SIGKILL)
            relay.wait()
        left_after_kill = await pending(database)
        assert left_after_kill > 0, "the kill should land while the relay is working"

        relay = start_relay_process(pg_url, kafka.bootstrap_servers, app_name)
        await eventually(
            lambda: nothing_pending(database),
            timeout_s=60,
            what="the restarted relay to publish the rest",
        )
        relay.send_signal(signal.SIGTERM)
        assert relay.wait(timeout=30) == 0, "the relay stops cleanly on SIGTERM"
    finally:
        if relay.poll() is None:
            relay.kill()
            relay.wait()
    async with TopicSizes(kafka.bootstrap_servers) as sizes:
        published = await sizes.size(topic)
    assert published >= EVENTS

    async def apply_deposit(session: AsyncSession, event: Event) -> None:
        applied = await session.get(AppliedDeposits, event.subject)
        if applied is None:
            applied = AppliedDeposits(subject=event.subject)
        applied.count += 1
        session.add(applied)

    async def everything_consumed() -> bool:
        return consumer.handled + consumer.duplicates >= published

    consumer = EventConsumer(
        name=f"deposits-{uuid.uuid4().hex[:8]}",
        topics=[topic],
        database=database,
        bootstrap_servers=kafka.bootstrap_servers,
        handler=apply_deposit,
    )
    consumer.start()
    try:
        await eventually(
            everything_consumed, timeout_s=60, what="the consumer to read every published event"
        )
    finally:
        await consumer.stop()
    async with database.session() as session:
        total = await session.scalar(select(func.sum(AppliedDeposits.count)))
    await database.dispose()
    assert consumer.handled == EVENTS
    assert consumer.duplicates == published - EVENTS
    assert total == EVENTS


async def test_a_rolled_back_change_publishes_nothing(kafka: Broker, pg_url: str) -> None:
    topic = f"kit-test.rollback.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka.bootstrap_servers, [TopicSpec(topic)])
    database = Database(pg_url)
    await create_tables(database)
    writer = EventWriter(source="/kit-test", topic=topic)
    relay = OutboxRelay(
        database=database,
        bootstrap_servers=kafka.bootstrap_servers,
        app_name=f"rollback-{uuid.uuid4().hex[:8]}",
    )
    with pytest.raises(RuntimeError, match="payment declined"):
        async with database.session() as session:
            writer.add(
                session,
                type="com.signature.kit_test.deposit.made.v1",
                subject="acc_1",
                purpose="order.fulfilment",
                data={"number": 1},
            )
            raise RuntimeError("payment declined")
    await make_deposit(database, writer, subject="acc_2", number=2)
    try:
        assert await relay.publish_batch() == 1
    finally:
        await relay.stop()
        await database.dispose()
    events = await read_events(kafka.bootstrap_servers, topic, count=1)
    assert [event.subject for event in events] == ["acc_2"]
    async with TopicSizes(kafka.bootstrap_servers) as sizes:
        assert await sizes.size(topic) == 1


async def test_one_relay_per_database_publishes_and_another_takes_over(
    kafka: Broker, pg_url: str
) -> None:
    database = Database(pg_url)
    await create_tables(database)
    relays = [
        OutboxRelay(
            database=database,
            bootstrap_servers=kafka.bootstrap_servers,
            app_name="leader-test",
            poll_interval_s=0.05,
        )
        for _ in range(2)
    ]
    for relay in relays:
        relay.start()

    async def one_leader() -> bool:
        return sum(relay.is_leader for relay in relays) == 1

    try:
        await eventually(one_leader, timeout_s=10, what="one relay to become the publisher")
        # The follower keeps trying for the lock: after two more tries there is still one.
        tries = {id(relay): relay.leadership_checks for relay in relays}

        async def each_tried_twice_more() -> bool:
            return all(relay.leadership_checks >= tries[id(relay)] + 2 for relay in relays)

        await eventually(each_tried_twice_more, timeout_s=30, what="two more lock checks each")
        assert await one_leader(), "two relays must never publish one database at once"
        leader = next(relay for relay in relays if relay.is_leader)
        follower = next(relay for relay in relays if not relay.is_leader)
        await leader.stop()

        async def follower_leads() -> bool:
            return follower.is_leader

        await eventually(follower_leads, timeout_s=10, what="the other relay to take over")
    finally:
        for relay in relays:
            await relay.stop()
        await database.dispose()
