"""Rights requests over the real broker (OB-R-1): the privacy center publishes the request,
the services answer on their own topics, and the request completes only once every one of
them has answered; past its deadline it shows which service is late. A completion event
delivered twice changes nothing. On SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from kit.consumer import EventConsumer
from kit.events import Event
from kit.kafka import TopicSpec, ensure_topics, new_producer
from kit.models import ProcessedEvent, utcnow
from kit.testing import LocalPostgres, eventually, serve_app, trust_only
from services.consent.config import Settings
from services.consent.rights import service
from services.consent.rights.consumers import CONSUMER_NAME
from tests.conftest import Broker
from tests.services.consent.conftest import ISSUER, KEY, Consent
from tests.services.consent.test_rights import (
    answer_event,
    file,
    move_deadline_to_the_past,
    new_user,
)

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/consent.db"
        return
    postgres: LocalPostgres = request.getfixturevalue("postgres")
    async with postgres.database() as url:
        yield url


@dataclass
class Privacy:
    """The consent app on the real broker, and the other services' side of it."""

    consent: Consent
    consumer: EventConsumer
    producer: AIOKafkaProducer

    async def publish(self, service_name: str, event: Event) -> None:
        """``event`` on ``service_name``'s events topic, as that service would send it."""
        await self.producer.send_and_wait(
            self.consent.settings.topic(f"{service_name}.events"),
            value=event.to_json_bytes(),
            key=event.subject.encode(),
        )

    async def view(self, request_id: str, headers: dict[str, str]) -> dict[str, Any]:
        response = await self.consent.client.get(f"/rights-requests/{request_id}", headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def statuses(self, request_id: str, headers: dict[str, str]) -> dict[str, str]:
        view = await self.view(request_id, headers)
        return {p["service"]: p["status"] for p in view["participants"]}

    async def handled(self, event_id: str) -> bool:
        async with self.consent.context.database.session() as session:
            seen = await session.get(ProcessedEvent, (self.consumer.name, event_id))
        return seen is not None


@pytest.fixture
async def privacy(kafka: Broker, tmp_path: Path, database_url: str) -> AsyncIterator[Privacy]:
    settings = Settings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        kafka_topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
        auth_issuer=ISSUER,
        log_json=False,
        first_policy_path=None,  # these tests publish their own versions
    )
    # The other services' topics, as they would have made them.
    await ensure_topics(
        kafka.bootstrap_servers,
        [
            TopicSpec(settings.topic(f"{p}.events"), partitions=1)
            for p in settings.rights_participants
            if p != "consent"
        ],
    )
    async with serve_app("services.consent", settings) as (app, client):
        trust_only(app, KEY)
        consent = Consent(
            app=app, client=client, settings=settings, key=KEY, database_path=tmp_path
        )
        (consumer,) = [
            c
            for c in consent.context.consumers
            if isinstance(c, EventConsumer) and c.name == CONSUMER_NAME
        ]
        producer = new_producer(kafka.bootstrap_servers, client_id="rights-test")
        await producer.start()
        try:
            yield Privacy(consent=consent, consumer=consumer, producer=producer)
        finally:
            await producer.stop()


@pytest.mark.obligation("OB-R-1")
async def test_a_request_completes_when_every_service_answered_on_kafka(
    privacy: Privacy,
) -> None:
    consent = privacy.consent
    subject, headers = new_user(consent)
    _, stranger = new_user(consent)
    request_id = (await file(consent, headers, kind="deletion"))["id"]

    # Identity and orders answer; the consent service answers itself from its own
    # rights.requested event; transfer stays silent.
    await privacy.publish("identity", answer_event("identity", subject, request_id, "done"))
    await privacy.publish(
        "orders", answer_event("orders", subject, request_id, "partial", anonymised=["user.name"])
    )

    async def three_answered() -> bool:
        return await privacy.statuses(request_id, headers) == {
            "consent": "partial",
            "identity": "done",
            "orders": "partial",
            "transfer": "pending",
        }

    await eventually(three_answered, timeout_s=90, what="three of four answers")
    assert (await privacy.view(request_id, headers))["status"] == "open"

    # Past the deadline it is overdue, naming transfer, and the periodic report says so.
    await move_deadline_to_the_past(consent, request_id)
    late = await privacy.view(request_id, headers)
    assert (late["status"], late["overdue_services"]) == ("overdue", ["transfer"])
    async with consent.context.database.session() as session:
        reported = await service.report_overdue(
            session, events=consent.context.events, now=utcnow()
        )
    assert reported == [request_id]
    (overdue,) = [e for e in await consent.outbox_events() if e.type == service.OVERDUE]
    assert overdue.data["overdue_services"] == ["transfer"]

    # The last answer completes it.
    last = answer_event("transfer", subject, request_id, "done")
    await privacy.publish("transfer", last)

    async def completed() -> bool:
        status: str = (await privacy.view(request_id, headers))["status"]
        return status == "completed"

    await eventually(completed, timeout_s=60, what="the request to complete")
    final = await privacy.view(request_id, headers)
    assert final["overdue_services"] == []
    assert (await privacy.statuses(request_id, headers))["transfer"] == "done"

    # The same event again, and a second answer from orders: nothing changes.
    duplicates = privacy.consumer.duplicates
    await privacy.publish("transfer", last)
    second = answer_event("orders", subject, request_id, "done", deleted=["user.name"])
    await privacy.publish("orders", second)

    async def both_consumed() -> bool:
        return privacy.consumer.duplicates > duplicates and await privacy.handled(second.id)

    await eventually(both_consumed, timeout_s=60, what="the repeated answers to be consumed")
    assert await privacy.view(request_id, headers) == final

    response = await consent.client.get(f"/rights-requests/{request_id}", headers=stranger)
    assert response.status_code == 404
