"""Outbox relay throughput versus a raw idempotent producer, same events, same broker.

``python -m bench.outbox --events 20000`` prints events/s for each and their ratio. The
relay's figure covers reading the outbox from PostgreSQL, publishing with acks=all and
marking rows sent; the raw producer's covers publishing only.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from sqlalchemy import insert

from kit.db import Database
from kit.events import Event, new_event
from kit.kafka import TopicSpec, ensure_topics, new_producer
from kit.models import OutboxMessage, kit_registry, utcnow
from kit.outbox import OutboxRelay, outbox_stats
from kit.testing import LocalKafka, LocalPostgres

EVENT_TYPE = "com.signature.bench.deposit.made.v1"


def make_events(count: int, subjects: int) -> list[Event]:
    return [
        new_event(
            source="/bench",
            type=EVENT_TYPE,
            subject=f"acc_{i % subjects}",
            purpose="order.fulfilment",
            data={"number": i},
        )
        for i in range(count)
    ]


async def relay_rate(url: str, bootstrap: str, events: list[Event], batch_size: int) -> float:
    topic = f"bench.relay.{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, [TopicSpec(topic)])
    database = Database(url)
    now = utcnow()
    async with database.engine.begin() as connection:
        await connection.run_sync(kit_registry.metadata.create_all)
        await connection.execute(
            insert(OutboxMessage.__table__),  # type: ignore[attr-defined]
            [
                {
                    "event_id": e.id,
                    "topic": topic,
                    "key": e.subject,
                    "event_type": EVENT_TYPE,
                    "payload": e.model_dump_json(),
                    "attempts": 0,
                    "created_at": now,
                }
                for e in events
            ],
        )
    relay = OutboxRelay(
        database=database, bootstrap_servers=bootstrap, app_name="bench", batch_size=batch_size
    )
    await relay.publish_batch()  # connect and warm up outside the timing
    started = time.perf_counter()
    while await relay.publish_batch():
        pass
    elapsed = time.perf_counter() - started
    async with database.session() as session:
        assert (await outbox_stats(session)).pending == 0
    await relay.stop()
    await database.dispose()
    return (len(events) - batch_size) / elapsed


async def raw_rate(bootstrap: str, events: list[Event]) -> float:
    topic = f"bench.raw.{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, [TopicSpec(topic)])
    producer = new_producer(bootstrap, client_id="bench-raw")
    await producer.start()
    values = [(e.to_json_bytes(), e.subject.encode()) for e in events]
    await producer.send_and_wait(topic, value=values[0][0], key=values[0][1])
    started = time.perf_counter()
    futures = [await producer.send(topic, value=value, key=key) for value, key in values]
    await asyncio.gather(*futures)
    elapsed = time.perf_counter() - started
    await producer.stop()
    return len(events) / elapsed


async def run(events: int, batch_size: int) -> None:
    kafka = LocalKafka()
    kafka.start()
    postgres = LocalPostgres()
    postgres.start()
    sample = make_events(events, subjects=1000)
    async with postgres.database() as url:
        relay = await relay_rate(url, kafka.bootstrap_servers, sample, batch_size)
    raw = await raw_rate(kafka.bootstrap_servers, sample)
    print(
        f"outbox relay (PostgreSQL -> Kafka, acks=all, batch {batch_size}): {relay:,.0f} events/s"
    )
    print(f"raw aiokafka producer (memory -> Kafka, acks=all):            {raw:,.0f} events/s")
    print(f"ratio relay/raw: {relay / raw:.2f}   ({events:,} events, 1,000 subjects)")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.outbox")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(run(args.events, args.batch_size))


if __name__ == "__main__":
    main()
