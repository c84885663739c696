"""The gateway restarted on its consent store (kit.consent_store), on the real broker: a
withdrawal published while it was down is enforced after the restart, and what it knew
before comes from its file, not from reading the topic again."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from gateway.config import Settings
from gateway.main import create_app
from kit.auth import USER_SCOPES
from kit.consent_state import ConsentStateView
from kit.kafka import TopicSpec, ensure_topics
from kit.migrations import upgrade
from kit.testing import TEST_ISSUER, bearer, eventually, mint_token, trust_only
from tests.conftest import Broker
from tests.gateway.conftest import KEY, POINT, client_factory, fake_orders_app
from tests.gateway.test_gateway_kafka import ConsentPublisher


@asynccontextmanager
async def gateway(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, ConsentStateView]]:
    """A gateway process's life: started, its real consent view, stopped at the end."""
    app = create_app(settings, client_factory=client_factory({"orders": fake_orders_app()}))
    async with app.router.lifespan_context(app):
        trust_only(app, KEY)
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 4321))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client, app.state.consent_view


@pytest.mark.integration
@pytest.mark.obligation("OB-2G-1")
async def test_a_withdrawal_made_while_the_gateway_was_down_is_enforced_after_its_restart(
    kafka: Broker, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/gateway.db",
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        kafka_topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        auth_issuer=TEST_ISSUER,
        log_json=False,
        consent_state_dir=tmp_path / "consent-state",
    )
    topic = settings.topic("consent.state")
    await ensure_topics(kafka.bootstrap_servers, [TopicSpec(topic, partitions=1, compacted=True)])
    await upgrade("gateway", settings.database_url)
    staying, leaving = f"acc_{uuid.uuid4().hex[:12]}", f"acc_{uuid.uuid4().hex[:12]}"

    def user(subject: str) -> dict[str, str]:
        return bearer(
            mint_token(
                KEY,
                issuer=settings.auth_issuer,
                audience=settings.auth_audience,
                subject=subject,
                scopes=USER_SCOPES,
            )
        )

    async def nearby(client: httpx.AsyncClient, subject: str) -> int:
        response = await client.post("/orders/location/nearby", headers=user(subject), json=POINT)
        return response.status_code

    async with ConsentPublisher(kafka.bootstrap_servers, topic) as consents:
        await consents.publish(staying, "location", granted=True)
        await consents.publish(leaving, "location", granted=True)
        async with gateway(settings) as (client, view):
            assert await view.wait_ready(60), view.last_error
            assert await nearby(client, staying) == 200
            assert await nearby(client, leaving) == 200
            store = view.store_path
        # The gateway is down: the withdrawal waits on the topic.
        await consents.publish(leaving, "location", granted=False)

    async with gateway(settings) as (client, view):
        assert view.store_path == store  # the file the first process left
        assert await view.wait_ready(60), view.last_error
        assert view.rebuilds == 0, view.rebuild_reason
        assert view.records_read == 1  # the withdrawal alone: the grants came from the file
        refused = await client.post("/orders/location/nearby", headers=user(leaving), json=POINT)
        assert refused.status_code == 403
        assert refused.json()["type"].endswith("/consent-required")
        assert await nearby(client, staying) == 200

        async def also_followed() -> bool:
            return await nearby(client, staying) == 403

        async with ConsentPublisher(kafka.bootstrap_servers, topic) as consents:
            consents.versions = {staying: 1}
            await consents.publish(staying, "location", granted=False)
        await eventually(also_followed, timeout_s=30, what="a withdrawal after the restart")
