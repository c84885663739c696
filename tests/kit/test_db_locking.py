"""SQLite: a read is not queued behind a writer; writers still take turns."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select, text
from sqlmodel import col

from kit.db import Database
from tests.kit.support import AppliedDeposits, create_tables


async def test_a_read_is_answered_while_a_writer_holds_its_transaction(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/locking.db")
    await create_tables(database)
    async with database.session() as session:
        session.add(AppliedDeposits(subject="acc_1", count=1))

    writer_holds_lock = asyncio.Event()
    reader_done = asyncio.Event()

    async def slow_writer() -> None:
        async with database.session() as session:
            applied = await session.get(AppliedDeposits, "acc_1")
            assert applied is not None
            applied.count = 2
            await session.flush()
            writer_holds_lock.set()
            await reader_done.wait()  # the write commits only after the read was answered

    async def read() -> list[tuple[str, int]]:
        await writer_holds_lock.wait()
        try:
            async with database.session(reads_only=True) as session:
                rows = await session.execute(
                    select(col(AppliedDeposits.subject), col(AppliedDeposits.count))
                )
                return [(subject, count) for subject, count in rows]
        finally:
            reader_done.set()

    writing = asyncio.create_task(slow_writer())
    # A read that waited for the writer's lock would wait forever: the writer waits for it.
    seen = await asyncio.wait_for(read(), timeout=20)
    await writing
    async with database.session(reads_only=True) as session:
        after = await session.get(AppliedDeposits, "acc_1")
    await database.dispose()
    assert seen == [("acc_1", 1)], "the read sees the last commit, not the open write"
    assert after is not None and after.count == 2


async def test_postgres_serves_more_sessions_than_its_pool_on_the_same_connections(
    pg_url: str,
) -> None:
    """No overflow by default: a burst of sessions waits for the pool's connections instead
    of opening (and then closing) a server process each."""
    database = Database(pg_url, pool_size=2)
    backends: list[int] = []

    async def one_session() -> None:
        async with database.session(reads_only=True) as session:
            backends.append(int(await session.scalar(text("SELECT pg_backend_pid()"))))
            await asyncio.sleep(0)  # let the others ask for a connection meanwhile

    await asyncio.gather(*(one_session() for _ in range(12)))
    await database.dispose()
    assert len(backends) == 12
    assert len(set(backends)) <= 2


async def test_a_read_after_the_servers_connection_ended_is_answered(pg_url: str) -> None:
    """A pooled connection that sat idle is pinged before use: one whose server process
    ended (a restart, an idle timeout) is replaced instead of failing the next request."""
    database = Database(pg_url, pool_size=1, ping_after_idle_s=0.0)
    async with database.reads() as connection:
        first = int(await connection.scalar(text("SELECT pg_backend_pid()")))
    other = Database(pg_url)  # the server ends the pooled connection's process
    async with other.reads() as connection:
        await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    await other.dispose()
    async with database.reads() as connection:
        second = int(await connection.scalar(text("SELECT pg_backend_pid()")))
    async with database.session() as session:  # a write session checks out the same way
        third = int(await session.scalar(text("SELECT pg_backend_pid()")))
    await database.dispose()
    assert second != first
    assert third == second


async def test_postgres_reads_see_each_commit_without_a_transaction(pg_url: str) -> None:
    """``Database.reads`` on PostgreSQL runs in autocommit: no transaction is held open
    between its statements, and each sees the last commit."""
    database = Database(pg_url)
    await create_tables(database)
    async with database.reads() as connection:
        before = (await connection.execute(select(col(AppliedDeposits.subject)))).all()
        xids = [await connection.scalar(text("SELECT txid_current()")) for _ in range(2)]
        async with database.session() as session:
            session.add(AppliedDeposits(subject="acc_1", count=1))
        after = (await connection.execute(select(col(AppliedDeposits.subject)))).all()
    await database.dispose()
    assert before == []
    assert xids[0] != xids[1], "each statement is its own transaction"
    assert [subject for (subject,) in after] == ["acc_1"]
