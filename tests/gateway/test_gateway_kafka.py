"""The gateway against the real broker: the consent-state view reads the real compacted
topic (no stub), and the relay publishes access events to the real events topic."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import FastAPI

from gateway.config import Settings
from gateway.main import create_app
from kit.catalogue import default_catalogue
from kit.consent_state import ConsentEntry, SubjectConsent, consentable_purposes
from kit.kafka import TopicSpec, ensure_topics, new_producer
from kit.migrations import upgrade
from kit.outbox import EventWriter
from kit.testing import TEST_ISSUER, eventually, read_events, trust_only
from services.consent.consents.service import state_event
from tests.conftest import Broker
from tests.gateway.conftest import (
    KEY,
    POINT,
    SECRETS,
    GatewayUnderTest,
    client_factory,
    fake_orders_app,
)

pytestmark = pytest.mark.integration

WITHDRAWAL_DEADLINE_S = 1.0


@asynccontextmanager
async def gateway_on_kafka(
    tmp_path: Path, kafka: Broker, orders: FastAPI, **overrides: Any
) -> AsyncIterator[GatewayUnderTest]:
    """A gateway on the test broker under a topic prefix of its own, with its real
    consent-state view (``app.state.consent_granted`` is not replaced); ``overrides``
    are more settings."""
    settings = Settings(
        **{
            "database_url": f"sqlite+aiosqlite:///{tmp_path}/gateway.db",
            "kafka_bootstrap_servers": kafka.bootstrap_servers,
            "kafka_topic_prefix": f"t{uuid.uuid4().hex[:10]}.",
            "auth_issuer": TEST_ISSUER,
            "log_json": False,
            "outbox_poll_interval_s": 0.05,
            **overrides,
        }
    )
    # The consent service creates its compacted state topic at start; here nobody else does.
    await ensure_topics(
        kafka.bootstrap_servers,
        [TopicSpec(settings.topic("consent.state"), partitions=1, compacted=True)],
    )
    await upgrade("gateway", settings.database_url)
    app = create_app(settings, client_factory=client_factory({"orders": orders}))
    async with app.router.lifespan_context(app):
        trust_only(app, KEY)
        assert await app.state.consent_view.wait_ready(60), "the consent view never caught up"
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 4321))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield GatewayUnderTest(app=app, client=client, settings=settings)


class ConsentPublisher:
    """Publishes a subject's whole consent state as the consent service does: the
    service's own ``state_event``, keyed by the subject, to ``<prefix>consent.state``."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        catalogue = default_catalogue()
        self.topic = topic
        self.consentable = consentable_purposes(catalogue)
        self.events = EventWriter(
            source="/consent", topic=topic, personal_fields=catalogue.personal_field_names()
        )
        self.producer = new_producer(bootstrap_servers, client_id="test-consent-state")
        self.versions: dict[str, int] = {}

    async def __aenter__(self) -> ConsentPublisher:
        await self.producer.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.producer.stop()

    async def publish(self, subject: str, purpose: str, *, granted: bool) -> None:
        version = self.versions[subject] = self.versions.get(subject, 0) + 1
        entry = ConsentEntry(granted=granted, changed_at=datetime.now(UTC))
        state = SubjectConsent(
            subject=subject,
            consentable=self.consentable,
            version=version,
            entries={purpose: entry},
        )
        event = state_event(self.events, state)
        await self.producer.send_and_wait(
            self.topic, event.to_json_bytes(), key=event.subject.encode()
        )


@pytest.mark.obligation("OB-2G-1")
async def test_a_withdrawal_on_the_real_topic_is_enforced_within_a_second(
    kafka: Broker, tmp_path: Path
) -> None:
    orders = fake_orders_app()
    async with gateway_on_kafka(tmp_path, kafka, orders) as gw:
        subject, user = gw.user()

        async def nearby() -> int:
            return (
                await gw.client.post("/orders/location/nearby", headers=user, json=POINT)
            ).status_code

        async def own_order() -> int:
            return (await gw.client.get("/orders/orders/ord_1", headers=user)).status_code

        assert await nearby() == 403  # nothing published yet: no consent
        assert await own_order() == 200
        topic = gw.settings.topic("consent.state")
        async with ConsentPublisher(kafka.bootstrap_servers, topic) as consents:
            await consents.publish(subject, "location", granted=True)

            async def opened() -> bool:
                return await nearby() == 200

            await eventually(opened, timeout_s=30, what="the grant to reach the gateway")

            started = time.monotonic()
            await consents.publish(subject, "location", granted=False)
            deadline = started + 5.0
            while True:
                refused = await gw.client.post("/orders/location/nearby", headers=user, json=POINT)
                if refused.status_code == 403 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.01)
            elapsed = time.monotonic() - started

        assert refused.status_code == 403, "the withdrawal never reached the gateway"
        body = refused.json()
        assert body["type"].endswith("/consent-required") and body["purpose"] == "location"
        assert elapsed < WITHDRAWAL_DEADLINE_S, f"refused only {elapsed:.3f}s after the publish"
        # Withdrawing an additional purpose never blocks a basic one (OB-0-2).
        assert await own_order() == 200
        placed = await gw.client.post("/orders/orders", json={"items": []}, headers=user)
        assert placed.status_code == 201


async def raw_values(bootstrap_servers: str, topic: str) -> list[bytes]:
    """Every record value of ``topic`` as the broker holds it."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()  # as read_events does
        partitions = consumer.partitions_for_topic(topic) or set()
        assert partitions, f"{topic} has no partitions"
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning()
        ends = await consumer.end_offsets(assigned)
        values: list[bytes] = []
        for tp in assigned:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                values.extend(record.value for record in batch.get(tp, []) if record.value)
        return values
    finally:
        await consumer.stop()


async def test_access_events_reach_kafka_with_categories_and_no_personal_data(
    kafka: Broker, tmp_path: Path
) -> None:
    orders = fake_orders_app()
    async with gateway_on_kafka(tmp_path, kafka, orders) as gw:
        subject, user = gw.user()
        response = await gw.client.get("/orders/orders/ord_1", headers=user)
        assert response.status_code == 200
        # The owner sees their own order in full: the values did pass through the gateway.
        assert response.json()["consignee_phone"] in SECRETS
        topic = gw.settings.events_topic
        assert topic.endswith("gateway.events")
        events = await read_events(kafka.bootstrap_servers, topic, count=1, timeout_s=30)

    reads = [e for e in events if e.subject == subject]
    assert reads, f"no access event for {subject} on {topic}"
    [event] = reads
    assert event.type == "com.signature.gateway.personal_data.read.v1"
    assert event.purpose == "order.query"
    assert event.data == {"actor": subject, "resource": "orders.order", "action": "read"}
    for category in (
        "user.name",
        "user.contact.phone_number",
        "user.contact.address.region",
        "user.government_id.national_identification_number",
    ):
        assert category in event.categories, category

    values = await raw_values(kafka.bootstrap_servers, topic)
    assert values
    for value in values:
        readable = json.dumps(json.loads(value), ensure_ascii=False)
        for secret in SECRETS:
            escaped = json.dumps(secret)[1:-1]
            assert secret.encode() not in value and escaped.encode() not in value, secret
            assert secret not in readable, secret
