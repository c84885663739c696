"""While Kafka is down the relay backs off, however often commits wake it: a busy app
must not turn every commit into a new connection attempt."""

from __future__ import annotations

import asyncio
from pathlib import Path

from kit.db import Database
from kit.outbox import EventWriter, OutboxRelay
from tests.kit.support import create_tables, make_deposit


async def test_commits_do_not_cut_the_back_off_short(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/relay.db")
    await create_tables(database)
    relay = OutboxRelay(
        database=database,
        bootstrap_servers="127.0.0.1:1",
        app_name="backoff-test",
        poll_interval_s=0.2,
        max_backoff_s=5.0,
    )
    writer = EventWriter(source="/kit-test", topic="kit-test.backoff")
    relay.start()
    try:
        for number in range(60):  # a commit every 25 ms for 1.5 s, each waking the relay
            await make_deposit(database, writer, subject="acc_backoff", number=number)
            await asyncio.sleep(0.025)
    finally:
        await relay.stop()
        await database.dispose()
    # Back-offs of 0.2, 0.4 and 0.8 s fit in 1.5 s: a handful of tries, not sixty.
    assert 1 <= relay.failed_cycles <= 5
