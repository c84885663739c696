"""The CloudEvents Kafka protocol binding (issue 24 item 9): what the outbox relay publishes
is read by the CloudEvents SDK's own readers, as any consumer outside the suite would."""

from __future__ import annotations

import uuid
from pathlib import Path

from kit.db import Database
from kit.kafka import TopicSpec, ensure_topics
from kit.outbox import EventWriter, OutboxRelay
from kit.testing import read_records
from tests.conftest import Broker
from tests.kit.support import EVENT_TYPE, create_tables, parsed_by_cloudevents_sdk


async def test_the_sdk_reads_every_relayed_record_in_structured_mode(
    kafka: Broker, tmp_path: Path
) -> None:
    topic = f"kit-test.binding.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka.bootstrap_servers, [TopicSpec(topic)])
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/binding.db")
    await create_tables(database)
    writer = EventWriter(source="/kit-test", topic=topic)
    async with database.session() as session:
        for number in range(3):
            writer.add(
                session,
                type=EVENT_TYPE,
                subject=f"acc_binding{'abc'[number]}",
                purpose="order.fulfilment",
                data={"number": number},
            )
    relay = OutboxRelay(
        database=database, bootstrap_servers=kafka.bootstrap_servers, app_name="binding"
    )
    try:
        assert await relay.publish_batch() == 3
    finally:
        await relay.stop()
        await database.dispose()
    records = await read_records(kafka.bootstrap_servers, topic)
    assert len(records) == 3
    for record in records:
        assert not [name for name, _ in record.headers if name.lower().startswith("ce_")]
        attributes = parsed_by_cloudevents_sdk(record)
        assert attributes["specversion"] == "1.0" and attributes["type"] == EVENT_TYPE
        assert attributes["source"] == "/kit-test"
        assert attributes["partitionkey"] == record.key.decode() == attributes["subject"]
        assert attributes["purpose"] == "order.fulfilment"
