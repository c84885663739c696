"""Tables and helpers the kit's tests share: a state change that emits an event, and a
consumer effect to count."""

from __future__ import annotations

from sqlmodel import Field, SQLModel

from kit.db import Database, new_registry
from kit.models import kit_registry
from kit.outbox import EventWriter

test_registry = new_registry()

EVENT_TYPE = "com.signature.kit_test.deposit.made.v1"


class TestModel(SQLModel, registry=test_registry):
    """Base of the test tables (a table class must not name the registry itself)."""


class Deposit(TestModel, table=True):
    """The state change: one deposit on a subject's account."""

    id: int | None = Field(default=None, primary_key=True)
    subject: str = Field(index=True)
    number: int


class AppliedDeposits(TestModel, table=True):
    """A consumer's effect: how many deposits it applied per subject."""

    subject: str = Field(primary_key=True)
    count: int = 0


async def create_tables(database: Database) -> None:
    async with database.engine.begin() as connection:
        await connection.run_sync(kit_registry.metadata.create_all)
        await connection.run_sync(test_registry.metadata.create_all)


async def make_deposit(
    database: Database, writer: EventWriter, *, subject: str, number: int
) -> None:
    """Commit one deposit and its event together."""
    async with database.session() as session:
        session.add(Deposit(subject=subject, number=number))
        writer.add(
            session,
            type=EVENT_TYPE,
            subject=subject,
            purpose="order.fulfilment",
            data={"number": number},
        )
