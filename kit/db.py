"""Database access: one async engine per app, sessions that commit or roll back as a unit.

- :func:`new_registry` gives each app its own SQLModel registry (own ``MetaData`` with the
  naming conventions below), so one app's tables never land in another app's database.
  Name it on a base class (``class OrdersModel(SQLModel, registry=registry)``) and derive
  tables from that base: a ``table=True`` class naming the registry itself is not mapped.
- :class:`Database` owns the engine and hands out sessions; ``session()`` commits on success
  and rolls back on any error, and tells listeners (the outbox relay) after each commit.
- :data:`SessionDep` is the FastAPI dependency; it commits before the response is sent, so a
  failed commit is an error response, never a false success. :data:`ReadSessionDep` is the
  one for routes that only read: on SQLite its transactions begin DEFERRED and take no write
  lock, so a read is never queued behind a writer (WAL readers see the last commit); writes
  begin IMMEDIATE, so a writer waits for the lock instead of failing when its read turns
  into a write.
- :meth:`Database.reads` is for reads that need no session: a plain connection for Core
  statements (rows, no ORM objects, no unit of work). On PostgreSQL it runs in autocommit:
  no ``BEGIN``/``COMMIT`` round trips, and each statement sees the last commit, as it does
  inside a READ COMMITTED transaction; on SQLite its statements share one DEFERRED
  transaction (one snapshot, no write lock). Build each statement once (a module constant
  with ``bindparam``): SQLAlchemy then neither rebuilds its cache key nor recompiles it.
- On PostgreSQL the pool keeps ``pool_size`` connections open and opens at most
  ``max_overflow`` more (default none): overflow connections are closed as soon as they are
  returned, so under load they would open and close a server process per request.
  A connection is pinged at checkout only when it sat in the pool for
  :data:`PING_AFTER_IDLE_S` or more (one that failed is replaced, as ``pool_pre_ping``
  does): under load a connection comes back within milliseconds, and a ping on every
  checkout was three round trips (``BEGIN``, ``;``, ``ROLLBACK``) per request.
- :func:`insert_ignoring_duplicates` is ``INSERT ... ON CONFLICT DO NOTHING`` in the
  session's dialect: the key decides, atomically, which of two concurrent writers goes
  first, without a SAVEPOINT round trip for the loser's failed insert.
- Every engine hides bound parameters (``hide_parameters=True``): a failed statement's
  exception text names the statement, never its values, so no personal value reaches a log
  line or a dead-letter record's headers through an error message.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, Final

from fastapi import Depends, Request
from sqlalchemy import (
    Column,
    DateTime,
    Dialect,
    MetaData,
    Numeric,
    String,
    TypeDecorator,
    event,
    text,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import registry
from sqlalchemy.pool import StaticPool

from kit.errors import DomainError

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every database: SQLite keeps no zone, so values
    are stored as UTC and always come back aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)


def timestamp_column(*, nullable: bool = False, index: bool = False) -> Column[datetime]:
    """A column of :class:`UtcDateTime`, for ``Field(sa_column=timestamp_column())``."""
    return Column(UtcDateTime(), nullable=nullable, index=index)


CENT: Final = Decimal("0.01")


def to_cents(value: Decimal) -> Decimal:
    """``value`` rounded half-up to 0.01, the unit every stored amount has."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


class Money(TypeDecorator[Decimal]):
    """An exact amount with two decimals: ``NUMERIC(14, 2)`` on PostgreSQL; on SQLite,
    which has no exact decimal type, its canonical text (``"12.50"``)."""

    impl = Numeric(14, 2, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(32))
        return dialect.type_descriptor(Numeric(14, 2, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        amount = to_cents(Decimal(value))
        return str(amount) if dialect.name == "sqlite" else amount

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return to_cents(Decimal(str(value)))


def money_column(*, nullable: bool = False) -> Column[Decimal]:
    return Column(Money(), nullable=nullable)


def new_registry() -> registry:
    """A fresh SQLModel/SQLAlchemy registry whose metadata follows :data:`NAMING_CONVENTION`."""
    return registry(metadata=MetaData(naming_convention=NAMING_CONVENTION))


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


READS_ONLY: Final = "kit_reads_only"  # execution option of a read session's connections
DEFAULT_POOL_SIZE: Final = 10
DEFAULT_MAX_OVERFLOW: Final = 0
#: A pooled PostgreSQL connection idle this long is pinged before it is handed out.
PING_AFTER_IDLE_S: Final = 1.0
_RETURNED_AT: Final = "kit_returned_at"  # pool record info: when the connection came back


def create_engine(
    url: str,
    *,
    echo: bool = False,
    pool_size: int = DEFAULT_POOL_SIZE,
    max_overflow: int = DEFAULT_MAX_OVERFLOW,
    ping_after_idle_s: float = PING_AFTER_IDLE_S,
) -> AsyncEngine:
    """An async engine for SQLite (aiosqlite) or PostgreSQL (asyncpg; ``pool_size`` kept
    open, ``max_overflow`` more at most, a connection idle ``ping_after_idle_s`` pinged
    before use)."""
    if not is_sqlite(url):
        server = create_async_engine(
            url,
            echo=echo,
            hide_parameters=True,
            pool_size=pool_size,
            max_overflow=max_overflow,
        )
        _ping_when_idle(server, ping_after_idle_s)
        return server
    in_memory = make_url(url).database in (None, "", ":memory:")
    engine = create_async_engine(
        url,
        echo=echo,
        hide_parameters=True,
        connect_args={"timeout": 30},
        **({"poolclass": StaticPool} if in_memory else {}),
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, begin transactions, so SAVEPOINTs and DDL
        # roll back as they do on PostgreSQL (the pysqlite/aiosqlite recipe). Writing
        # transactions begin IMMEDIATE: writers queue on busy_timeout instead of failing at
        # once when a read turns into a write; a read session's begin DEFERRED (no lock).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Any) -> None:
        reads_only = connection.get_execution_options().get(READS_ONLY, False)
        connection.exec_driver_sql("BEGIN DEFERRED" if reads_only else "BEGIN IMMEDIATE")

    return engine


def _ping_when_idle(engine: AsyncEngine, idle_s: float) -> None:
    """``pool_pre_ping`` for connections that sat idle for ``idle_s`` or more only
    (SQLAlchemy's recipe: a failed ping raises ``DisconnectionError`` and the pool replaces
    the connection)."""
    dialect = engine.sync_engine.dialect

    @event.listens_for(engine.sync_engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get(_RETURNED_AT)
        if returned is None or time.monotonic() - returned < idle_s:
            return  # just opened, or back from a request a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError("the pooled connection failed its ping") from exc


class Database:
    """An app's engine, its session factory, and the listeners told after each commit."""

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        pool_size: int = DEFAULT_POOL_SIZE,
        max_overflow: int = DEFAULT_MAX_OVERFLOW,
        ping_after_idle_s: float = PING_AFTER_IDLE_S,
    ) -> None:
        self.url = url
        self.engine = create_engine(
            url,
            echo=echo,
            pool_size=pool_size,
            max_overflow=max_overflow,
            ping_after_idle_s=ping_after_idle_s,
        )
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        self.read_sessionmaker = async_sessionmaker(
            self.engine.execution_options(**{READS_ONLY: True}), expire_on_commit=False
        )
        self._sqlite = is_sqlite(url)
        self._reads_engine = (
            self.engine.execution_options(**{READS_ONLY: True})
            if self._sqlite
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self._after_commit: list[Callable[[AsyncSession], None]] = []

    def on_commit(self, listener: Callable[[AsyncSession], None]) -> None:
        """Call ``listener(session)`` after every commit made through :meth:`session`."""
        self._after_commit.append(listener)

    @asynccontextmanager
    async def session(self, *, reads_only: bool = False) -> AsyncIterator[AsyncSession]:
        """A unit of work: commits when the block ends normally, rolls back otherwise
        (but commits for a :class:`DomainError` whose ``keep_changes`` is set).
        ``reads_only``: the block only reads (on SQLite it takes no write lock)."""
        maker = self.read_sessionmaker if reads_only else self.sessionmaker
        async with maker() as session:
            try:
                yield session
                await session.commit()
            except DomainError as error:
                await (session.commit() if error.keep_changes else session.rollback())
                raise
            except BaseException:
                await session.rollback()
                raise
            for listener in self._after_commit:
                listener(session)

    @asynccontextmanager
    async def reads(self) -> AsyncIterator[AsyncConnection]:
        """A connection for Core statements that only read (no session, no ORM objects):
        autocommit on PostgreSQL, one DEFERRED transaction on SQLite (see the module)."""
        async with self._reads_engine.connect() as connection:
            if self._sqlite:
                async with connection.begin():
                    yield connection
            else:
                yield connection

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def insert_ignoring_duplicates(session: AsyncSession, table: Any) -> Any:
    """``INSERT INTO table ... ON CONFLICT DO NOTHING`` (PostgreSQL or SQLite, as the
    session's bind): a row whose key exists is skipped, and the result's ``rowcount`` says
    whether it was written. ``table``: a mapped class or a ``Table``. Built once per
    dialect and table."""
    return _ignoring_duplicates(session.get_bind().dialect.name, table)


@functools.cache
def _ignoring_duplicates(dialect: str, table: Any) -> Any:
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    return insert(table).on_conflict_do_nothing()


def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with get_database(request).session() as session:
        yield session


async def get_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with get_database(request).session(reads_only=True) as session:
        yield session


async def get_reads(request: Request) -> AsyncIterator[AsyncConnection]:
    async with get_database(request).reads() as connection:
        yield connection


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session, scope="function")]
#: A connection for Core reads (:meth:`Database.reads`), for routes that only read.
ReadsDep = Annotated[AsyncConnection, Depends(get_reads, scope="function")]
