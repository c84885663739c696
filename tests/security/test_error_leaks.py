"""Personal values never leave through an error message (issue 23 item 4).

A statement that fails carries its bound values in SQLAlchemy's exception text unless the
engine hides them; a consumer logs that text and writes it into the ``dlq.error`` header of
the dead-letter record. ``kit.db`` creates every engine with ``hide_parameters=True``.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from kit.consumer import EventConsumer
from kit.events import Event, new_event
from kit.testing import eventually
from tests.conftest import Broker
from tests.kit.support import EVENT_TYPE
from tests.kit.test_consumer import new_topic_and_database, publish, read_dead_letters

PHONE = "13987654321"  # a personal value the failing statement binds


async def insert_twice(session: AsyncSession, event: Event) -> None:
    """A handler whose statement breaks the primary key with a personal value bound."""
    statement = text("INSERT INTO applieddeposits (subject, count) VALUES (:subject, 1)")
    await session.execute(statement, {"subject": PHONE})
    await session.execute(statement, {"subject": PHONE})


@pytest.mark.integration
async def test_a_failed_statement_leaves_no_bound_value_in_logs_or_dead_letters(
    kafka: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    topic, database = await new_topic_and_database(kafka, tmp_path)
    event = new_event(
        source="/kit-test",
        type=EVENT_TYPE,
        subject="acc_1",
        purpose="order.fulfilment",
        data={"number": 1},
    )
    await publish(kafka.bootstrap_servers, topic, [event.to_json_bytes()])
    consumer = EventConsumer(
        name=f"leaks-{uuid.uuid4().hex[:8]}",
        topics=[topic],
        database=database,
        bootstrap_servers=kafka.bootstrap_servers,
        handler=insert_twice,
        max_attempts=2,
        retry_delay_s=0.01,
    )
    caplog.set_level(logging.INFO)
    consumer.start()

    async def dead_lettered() -> bool:
        return consumer.dead_lettered == 1

    try:
        await eventually(dead_lettered, timeout_s=60, what="the event to be dead-lettered")
    finally:
        await consumer.stop()
        await database.dispose()

    [letter] = await read_dead_letters(kafka.bootstrap_servers, topic, 1)
    error = letter["dlq.error"]
    # The header still says what failed: the error class and the statement.
    assert error.startswith("IntegrityError") and "INSERT INTO applieddeposits" in error
    assert PHONE not in error
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "INSERT INTO applieddeposits" in logged  # the failures were logged ...
    assert PHONE not in logged  # ... without the value
