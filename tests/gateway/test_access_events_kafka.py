"""Access events straight to Kafka (issue 14 item 3): with the broker up each owner read's
event is acknowledged by Kafka before the answer leaves, the outbox untouched; with the
broker down the answers still leave, their events in the gateway's outbox; with the broker
back the relay publishes those and the direct path resumes. Either way every event arrives
once, keyed by its subject, in the structured CloudEvents binding the SDK reads."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path

from aiokafka.structs import ConsumerRecord

from gateway.access_events import AccessEventPublisher
from gateway.handler import Gateway
from kit.testing import LocalKafka, eventually, outbox_events, read_records
from tests.conftest import Broker
from tests.gateway.conftest import GatewayUnderTest, fake_orders_app
from tests.gateway.test_gateway_kafka import gateway_on_kafka
from tests.kit.support import parsed_by_cloudevents_sdk

READ_TYPE = "com.signature.gateway.personal_data.read.v1"


def publisher_of(gw: GatewayUnderTest) -> AccessEventPublisher:
    gateway: Gateway = gw.app.state.gateway
    return gateway.access_events


async def read_by_new_users(gw: GatewayUnderTest, count: int) -> list[str]:
    """``count`` owner reads at once, each by a user of its own; their subjects."""
    users = [gw.user() for _ in range(count)]
    answers = await asyncio.gather(
        *(gw.client.get(f"/orders/orders/ord_{uuid.uuid4().hex[:8]}", headers=h) for _, h in users)
    )
    assert [a.status_code for a in answers] == [200] * count
    return [subject for subject, _ in users]


def check_once_each(records: list[ConsumerRecord[bytes, bytes]], subjects: list[str]) -> None:
    """One record per subject, keyed by it, that the CloudEvents SDK reads as our event."""
    ours = [r for r in records if r.key is not None and r.key.decode() in set(subjects)]
    assert Counter(r.key.decode() for r in ours if r.key) == Counter(subjects)
    ids = []
    for record in ours:
        attributes = parsed_by_cloudevents_sdk(record)
        assert attributes["specversion"] == "1.0" and attributes["type"] == READ_TYPE
        assert attributes["source"] == "/gateway"
        assert attributes["subject"] == attributes["partitionkey"] == record.key.decode()
        assert attributes["purpose"] == "order.query"
        assert "user.contact.phone_number" in attributes["datacategories"].split()
        ids.append(attributes["id"])
    assert len(set(ids)) == len(ids)


async def test_with_the_broker_up_each_answer_waits_for_its_event_on_kafka(
    kafka: Broker, tmp_path: Path
) -> None:
    async with gateway_on_kafka(tmp_path, kafka, fake_orders_app()) as gw:
        publisher = publisher_of(gw)
        await asyncio.wait_for(publisher.connected.wait(), 60)
        subjects = await read_by_new_users(gw, 12)
        # Acknowledged before the answers left: on the topic now, none in the outbox.
        assert publisher.sent == 12 and publisher.to_outbox == 0
        assert await outbox_events(gw.app.state.context.database) == []
        records = await read_records(kafka.bootstrap_servers, gw.settings.events_topic)
    check_once_each(records, subjects)


async def test_broker_down_then_back_every_event_arrives_once(
    outage_kafka: LocalKafka, tmp_path: Path
) -> None:
    broker = Broker(outage_kafka.bootstrap_servers)
    async with gateway_on_kafka(
        tmp_path, broker, fake_orders_app(), outbox_max_backoff_s=0.5
    ) as gw:
        publisher = publisher_of(gw)
        database = gw.app.state.context.database
        await asyncio.wait_for(publisher.connected.wait(), 60)
        before = await read_by_new_users(gw, 3)
        assert publisher.sent == 3
        topic = gw.settings.events_topic
        check_once_each(await read_records(broker.bootstrap_servers, topic), before)

        outage_kafka.stop()  # it starts again from empty storage: a new broker
        try:
            during = await read_by_new_users(gw, 8)
            # Answered all the same, each event durable in the outbox, not sent directly.
            assert publisher.sent == 3 and publisher.to_outbox == 8
            assert sorted(e.subject for e in await outbox_events(database)) == sorted(during)
            assert not publisher.connected.is_set()
        finally:
            outage_kafka.start()

        async def outbox_drained() -> bool:
            return await outbox_events(database) == []

        await eventually(outbox_drained, timeout_s=90, what="the relay to publish the outbox")
        await asyncio.wait_for(publisher.connected.wait(), 60)
        after = await read_by_new_users(gw, 3)
        assert publisher.sent == 6 and publisher.to_outbox == 8
        records = await read_records(broker.bootstrap_servers, topic)
    check_once_each(records, during + after)
