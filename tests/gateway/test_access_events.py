"""Group commit of access events (:mod:`gateway.access_events`): concurrent owner reads
share transactions, each still gets its own event, and none is answered without it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.access_events import AccessEventBatcher
from gateway.handler import Gateway
from kit.db import Database
from kit.migrations import upgrade
from kit.outbox import EventWriter
from kit.testing import outbox_events
from tests.gateway.conftest import GatewayUnderTest

READS = 20


@contextmanager
def failing_commits(database: Database) -> Iterator[None]:
    """Every commit on ``database`` fails (as a lost connection or a full disk would)."""

    def fail(connection: Any) -> None:
        raise RuntimeError("commit failed")

    event.listen(database.engine.sync_engine, "commit", fail)
    try:
        yield
    finally:
        event.remove(database.engine.sync_engine, "commit", fail)


def batcher_of(gw: GatewayUnderTest) -> AccessEventBatcher:
    gateway: Gateway = gw.app.state.gateway
    return gateway.access_events.outbox


@pytest.mark.obligation("OB-3-1")
async def test_concurrent_reads_each_get_their_event_in_shared_commits(
    gw: GatewayUnderTest,
) -> None:
    users = [gw.user() for _ in range(READS)]
    batcher = batcher_of(gw)
    answers = await asyncio.gather(
        *(gw.client.get(f"/orders/orders/o{i}", headers=h) for i, (_, h) in enumerate(users))
    )
    assert [a.status_code for a in answers] == [200] * READS
    events = await gw.outbox_events()
    assert sorted(e.subject for e in events) == sorted(subject for subject, _ in users)
    assert len({e.id for e in events}) == READS
    assert all(e.purpose == "order.query" and e.data["action"] == "read" for e in events)
    assert batcher.events == READS
    assert batcher.batches < READS, "concurrent reads should share transactions"


async def test_a_failed_commit_fails_every_read_of_its_batch(gw: GatewayUnderTest) -> None:
    users = [gw.user() for _ in range(5)]
    database: Database = gw.app.state.context.database
    with failing_commits(database):
        answers = await asyncio.gather(
            *(gw.client.get("/orders/orders/o1", headers=h) for _, h in users),
            return_exceptions=True,
        )
    for answer in answers:  # an error answer, or the app's error itself: never the order
        assert isinstance(answer, BaseException) or answer.status_code >= 500
        if not isinstance(answer, BaseException):
            assert "consignee_name" not in answer.text
    assert await gw.outbox_events() == []
    subject, user = gw.user()  # the database is back: reads and their events are too
    assert (await gw.client.get("/orders/orders/o1", headers=user)).status_code == 200
    assert [e.subject for e in await gw.outbox_events()] == [subject]


async def test_an_event_that_cannot_be_built_fails_its_own_request_only(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/gateway.db"
    await upgrade("gateway", url)
    database = Database(url)
    writer = EventWriter(source="/gateway", topic="gateway.events")
    batcher = AccessEventBatcher(database)

    def read_by(subject: str) -> Any:
        def add(session: AsyncSession) -> object:
            return writer.processing(
                session,
                subject=subject,
                actor=subject,
                action="read",
                purpose="order.query",
                resource="orders.order",
                categories=["user.contact.phone_number"],
            )

        return add

    def broken(session: AsyncSession) -> object:
        raise ValueError("not a valid event")

    try:
        outcomes = await asyncio.gather(
            batcher.record(read_by("usr_a")),
            batcher.record(broken),
            batcher.record(read_by("usr_b")),
            return_exceptions=True,
        )
        assert outcomes[0] is None and outcomes[2] is None
        assert isinstance(outcomes[1], ValueError)
        assert batcher.batches == 1
        assert [e.subject for e in await outbox_events(database)] == ["usr_a", "usr_b"]
        await batcher.aclose()
        with pytest.raises(RuntimeError):
            await batcher.record(read_by("usr_c"))
    finally:
        await database.dispose()
