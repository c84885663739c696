"""Two gateway workers (``GATEWAY_WORKERS=2``): two gateway apps on one database, one topic
prefix and one consumer group, as uvicorn's worker processes are. Each keeps its share of
the rate limit; a consent withdrawal and a closed account reach both."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway.config import Settings
from gateway.main import create_app
from kit.events import new_event
from kit.kafka import TopicSpec, ensure_topics, new_producer
from kit.migrations import upgrade
from kit.testing import TEST_ISSUER, eventually, trust_only
from tests.conftest import Broker
from tests.gateway.conftest import (
    KEY,
    POINT,
    GatewayUnderTest,
    client_factory,
    fake_orders_app,
)
from tests.gateway.test_gateway_kafka import ConsentPublisher

OWN_ORDER = "/orders/orders/ord_1"
NEARBY = "/orders/location/nearby"  # location: a purpose that needs the user's consent


@asynccontextmanager
async def two_workers(
    tmp_path: Path, kafka: Broker, orders: FastAPI, **overrides: Any
) -> AsyncIterator[list[GatewayUnderTest]]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/gateway.db",
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        kafka_topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        auth_issuer=TEST_ISSUER,
        log_json=False,
        outbox_poll_interval_s=0.05,
        workers=2,
        policy_facts_refresh_s=0.2,
        **overrides,
    )
    await ensure_topics(
        kafka.bootstrap_servers,
        [
            TopicSpec(settings.topic("consent.state"), partitions=1, compacted=True),
            TopicSpec(settings.topic("consent.events")),
            TopicSpec(settings.topic("identity.events")),
        ],
    )
    await upgrade("gateway", settings.database_url)
    workers: list[GatewayUnderTest] = []
    async with AsyncExitStack() as stack:
        for port in (1, 2):
            app = create_app(settings, client_factory=client_factory({"orders": orders}))
            await stack.enter_async_context(app.router.lifespan_context(app))
            trust_only(app, KEY)
            assert await app.state.consent_view.wait_ready(60), "the consent view never caught up"
            transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 4320 + port))
            client = await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://gateway")
            )
            workers.append(GatewayUnderTest(app=app, client=client, settings=settings))
        yield workers


async def test_each_worker_keeps_its_share_of_the_rate_limit(kafka: Broker, tmp_path: Path) -> None:
    limits = {"rate_limit_burst": 4, "rate_limit_per_s": 0.001}
    async with two_workers(tmp_path, kafka, fake_orders_app(), **limits) as workers:
        _, user = workers[0].user()
        answers = [
            [(await worker.client.get(OWN_ORDER, headers=user)).status_code for _ in range(3)]
            for worker in workers
        ]
    # A burst of 4 over two workers: 2 each, so the client gets 4 in all, never 6.
    assert answers == [[200, 200, 429], [200, 200, 429]]


@pytest.mark.obligation("OB-2G-1")
async def test_a_withdrawal_and_a_closed_account_reach_both_workers(
    kafka: Broker, tmp_path: Path
) -> None:
    async with two_workers(tmp_path, kafka, fake_orders_app()) as workers:
        settings = workers[0].settings
        subject, user = workers[0].user()

        async def statuses(path: str) -> list[int]:
            if path == NEARBY:  # the coordinates go in the body
                return [
                    (await w.client.post(path, headers=user, json=POINT)).status_code
                    for w in workers
                ]
            return [(await w.client.get(path, headers=user)).status_code for w in workers]

        async with ConsentPublisher(
            kafka.bootstrap_servers, settings.topic("consent.state")
        ) as consents:
            await consents.publish(subject, "location", granted=True)

            async def granted() -> bool:
                return await statuses(NEARBY) == [200, 200]

            await eventually(granted, timeout_s=30, what="the grant to reach both workers")
            await consents.publish(subject, "location", granted=False)

            async def withdrawn() -> bool:
                return await statuses(NEARBY) == [403, 403]

            await eventually(withdrawn, timeout_s=30, what="the withdrawal to reach both")

        assert await statuses(OWN_ORDER) == [200, 200]
        closed = new_event(
            source="/identity",
            type="com.signature.identity.account.closed.v1",
            subject=subject,
            purpose="account",
        )
        producer = new_producer(kafka.bootstrap_servers, client_id="test-identity-events")
        await producer.start()
        try:
            await producer.send_and_wait(
                settings.topic("identity.events"),
                closed.to_json_bytes(),
                key=subject.encode(),
            )
        finally:
            await producer.stop()

        # One worker's consumer records it (the group is shared); the other rereads it.
        async def refused() -> bool:
            return await statuses(OWN_ORDER) == [401, 401]

        await eventually(refused, timeout_s=30, what="the closed account to reach both workers")
