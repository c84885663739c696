"""Alembic's environment for every app; see ``kit/migrations/__init__.py``.

Runs on the connection handed over in ``config.attributes["connection"]`` (async callers),
or opens one from ``config.attributes["database_url"]`` (the command line).
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

from kit.db import Database, is_sqlite

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=config.attributes["target_metadata"],
        render_as_batch=is_sqlite(config.attributes["database_url"]),
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_connection() -> None:
    database = Database(config.attributes["database_url"])
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(_run)
    finally:
        await database.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; give a database URL")
elif (connection := config.attributes.get("connection")) is not None:
    _run(connection)
else:
    asyncio.run(_run_with_own_connection())
