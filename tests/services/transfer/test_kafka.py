"""Transfers over the real broker (OB-4-3, OB-4-5): an order event published to the orders
topic drives a transfer, the separate consent is read from the compacted consent-state
topic, the HTTPS recipient receives its encrypted package, the Kafka recipient gets its
own on its egress topic (published by this service's outbox relay), and the transfer
events reach ``transfer.events``. On SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from kit.consent_state import (
    CONSENT_STATE_EVENT,
    CROSS_BORDER_PURPOSE,
    ConsentEntry,
    SubjectConsent,
    state_key,
)
from kit.events import Event, new_event
from kit.kafka import TopicSpec, ensure_topics, new_producer
from kit.testing import (
    LocalPostgres,
    eventually,
    new_subject,
    read_events,
    serve_app,
    topic_events,
    trust_only,
)
from services.transfer.transfers.delivery import HttpsDeliverer
from tests.conftest import Broker
from tests.services.transfer.conftest import (
    ADDRESS_ONLY,
    KEY,
    TRANSFERABLE,
    Endpoint,
    StubOrders,
    TransferApp,
    key_pair,
    open_package,
    settings_for,
)

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/transfer.db"
        return
    postgres: LocalPostgres = request.getfixturevalue("postgres")
    async with postgres.database() as url:
        yield url


@dataclass
class OnKafka:
    """The transfer app on the real broker (its own worker loop, its own consent view),
    and the consent and orders services' side of the broker."""

    transfer: TransferApp
    producer: AIOKafkaProducer
    bootstrap_servers: str

    async def publish(self, topic: str, event: Event) -> None:
        await self.producer.send_and_wait(
            self.transfer.settings.topic(topic),
            value=event.to_json_bytes(),
            key=event.subject.encode(),
        )

    async def consent(self, subject: str, recipient_ids: list[str]) -> None:
        """What the consent service publishes after the subject's grants."""
        topic = self.transfer.settings.topic(self.transfer.settings.consent_state_topic)
        await ensure_topics(
            self.bootstrap_servers, [TopicSpec(topic, partitions=3, compacted=True)]
        )
        now = datetime.now(UTC)
        state = SubjectConsent(
            subject=subject,
            consentable=frozenset({CROSS_BORDER_PURPOSE}),
            version=len(recipient_ids),
            entries={
                state_key(CROSS_BORDER_PURPOSE, rid): ConsentEntry(granted=True, changed_at=now)
                for rid in recipient_ids
            },
        )
        event = new_event(
            source="/consent",
            type=CONSENT_STATE_EVENT,
            subject=subject,
            purpose="consent",
            data=state.to_data(),
        )
        await self.publish(self.transfer.settings.consent_state_topic, event)

    async def transfers_of(self, subject: str) -> dict[str, dict[str, Any]]:
        response = await self.transfer.client.get(
            "/transfers", params={"subject": subject}, headers=self.transfer.privacy_officer()
        )
        return {t["recipient_id"]: t for t in response.json()}


@pytest.fixture
async def on_kafka(kafka: Broker, database_url: str) -> AsyncIterator[OnKafka]:
    settings = settings_for(
        database_url,
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        kafka_topic_prefix=f"t{uuid.uuid4().hex[:12]}.",
        worker_interval_s=0.5,
    )
    producer = new_producer(kafka.bootstrap_servers, client_id="transfer-test")
    await producer.start()
    try:
        async with serve_app("services.transfer", settings) as (app, client):
            trust_only(app, KEY)
            orders, endpoint = StubOrders(), Endpoint(down=1)
            app.state.order_fetcher = orders
            app.state.deliverer = HttpsDeliverer(transport=endpoint.transport())
            # consent_granted stays the app's own: the consent-state view over Kafka.
            transfer = TransferApp(
                app=app,
                client=client,
                settings=settings,
                key=KEY,
                orders=orders,
                endpoint=endpoint,
                consents=set(),
            )
            yield OnKafka(transfer, producer, kafka.bootstrap_servers)
    finally:
        await producer.stop()


@pytest.mark.obligation("OB-4-4")
async def test_an_order_event_on_kafka_drives_a_transfer(on_kafka: OnKafka) -> None:
    transfer = on_kafka.transfer
    https_keys, kafka_keys = key_pair("x25519"), key_pair("rsa")
    logistics = await transfer.register(https_keys, cross_border_logistics=True)
    seller = await transfer.register(
        kafka_keys,
        legal_name="Overseas Seller GmbH",
        data_categories=ADDRESS_ONLY,
        delivery="kafka",
        endpoint_url=None,
        goods_ids=["gds_watch"],
    )
    subject = new_subject()
    order_id = transfer.orders.add(subject)

    await on_kafka.consent(subject, [logistics["id"], seller["id"]])

    async def consented() -> bool:
        granted: bool = transfer.app.state.consent_granted(subject, seller["id"])
        return granted

    await eventually(consented, timeout_s=60, what="the consent state to arrive")

    placed = new_event(
        source="/orders",
        type="com.signature.orders.order.placed.v1",
        subject=subject,
        purpose="order.fulfilment",
        data={"order_id": order_id, "goods_ids": ["gds_watch"], "cross_border": True},
    )
    await on_kafka.publish("orders.events", placed)

    async def both_delivered() -> bool:
        transfers = await on_kafka.transfers_of(subject)
        return [t["status"] for t in transfers.values()] == ["delivered", "delivered"]

    await eventually(both_delivered, timeout_s=60, what="both transfers delivered")
    by_recipient = await on_kafka.transfers_of(subject)
    assert {t["trigger"] for t in by_recipient.values()} == {"order_event"}

    # HTTPS: retried once (the endpoint was down), kept once, opens with its key.
    https_id = by_recipient[logistics["id"]]["id"]
    assert list(transfer.endpoint.kept) == [https_id]
    assert len(transfer.endpoint.requests) == 2
    document = open_package(transfer.endpoint.kept[https_id], https_keys)
    assert document["categories"] == TRANSFERABLE
    assert document["fields"]["consignee_phone"] == "138****5678"

    # Kafka: the package is on the seller's egress topic, published by the outbox relay.
    [egress] = await read_events(
        on_kafka.bootstrap_servers,
        transfer.settings.topic(f"transfer.egress.{seller['id']}"),
        count=1,
    )
    assert egress.subject == by_recipient[seller["id"]]["waybill_id"]
    document = open_package(egress.data["package"], kafka_keys)
    assert set(document["fields"]) == {"address_detail", "address_region"}

    # The transfer events reach the service's own topic, and leave the outbox once acked.
    async def both_delivered_on_the_topic() -> bool:
        published = await topic_events(on_kafka.bootstrap_servers, transfer.settings.events_topic)
        delivered = [e for e in published if e.type.endswith("transfer.delivered.v1")]
        return {e.data["recipient_id"] for e in delivered} == {logistics["id"], seller["id"]}

    await eventually(both_delivered_on_the_topic, timeout_s=30, what="the delivered events")

    async def outbox_empty() -> bool:
        return await transfer.outbox_events() == []

    await eventually(outbox_empty, timeout_s=30, what="the outbox to empty")
