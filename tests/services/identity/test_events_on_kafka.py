"""What identity publishes to the real broker: its events arrive, and none of them holds a
phone number, a name, an ID number or a face image (design principle 1)."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import pytest

from kit.outbox import outbox_stats
from kit.testing import eventually, read_events, serve_app
from services.identity.config import Settings
from tests.conftest import Broker
from tests.services.identity.conftest import ISSUER
from tests.services.identity.ids import ADULT

pytestmark = pytest.mark.integration

PHONE = "13812345678"
NAME = "李四"
FACE = b"\x89PNG-face-bytes-of-a-real-person" * 64


@pytest.mark.obligation("OB-2A-3")
async def test_identity_events_reach_kafka_without_personal_data(
    kafka: Broker, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/identity.db",
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        kafka_topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
        auth_issuer=ISSUER,
        log_json=False,
    )
    async with serve_app("services.identity", settings, base_url=ISSUER) as (app, client):
        password = "correct horse battery"
        assert (
            await client.post("/accounts", json={"phone": PHONE, "password": password})
        ).status_code == 201
        token = (await client.post("/login", json={"phone": PHONE, "password": password})).json()[
            "access_token"
        ]
        auth = {"Authorization": f"Bearer {token}"}
        verified = await client.post(
            "/verifications",
            headers=auth,
            json={
                "real_name": NAME,
                "id_number": ADULT,
                "face_image": base64.b64encode(FACE).decode(),
            },
        )
        assert verified.status_code == 201, verified.text
        assert (await client.get("/verifications/me", headers=auth)).status_code == 200
        assert (
            await client.post("/accounts/me/roles", headers=auth, json={"role": "seller"})
        ).status_code == 200

        database = app.state.context.database

        async def all_published() -> bool:
            async with database.session() as session:
                return (await outbox_stats(session)).pending == 0

        await eventually(all_published, timeout_s=60, what="identity's outbox to drain")
        published = app.state.context.relay.published_total
    events = await read_events(kafka.bootstrap_servers, settings.events_topic, count=published)
    types = {event.type for event in events}
    assert {
        "com.signature.identity.account.created.v1",
        "com.signature.identity.verification.completed.v1",
        "com.signature.identity.role.granted.v1",
        "com.signature.identity.personal_data.write.v1",
    } <= types
    raw = b"".join(event.to_json_bytes() for event in events)
    for secret in (
        PHONE.encode(),
        NAME.encode(),
        "李四".encode("unicode_escape"),
        ADULT.encode(),
        FACE[:32],
        base64.b64encode(FACE)[:40],
    ):
        assert secret not in raw
