"""Tables and helpers the kit's tests share: a state change that emits an event, and a
consumer effect to count."""

from __future__ import annotations

from typing import Any

from aiokafka.structs import ConsumerRecord
from cloudevents.core.bindings import kafka as kafka_binding
from cloudevents.v1 import kafka as v1_kafka
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


def parsed_by_cloudevents_sdk(record: ConsumerRecord[bytes, bytes]) -> dict[str, Any]:
    """The attributes of a Kafka record as the CloudEvents SDK's own readers see it: the
    mode-detecting ``from_kafka_event`` and the 1.x structured reader must agree, and
    neither may find an attribute the event does not carry (a stray ``ce_`` header)."""
    headers = {name: value for name, value in record.headers}
    detected = kafka_binding.from_kafka_event(
        kafka_binding.KafkaMessage(headers=headers, key=record.key, value=record.value or b"")
    )
    structured = v1_kafka.from_structured(
        v1_kafka.KafkaMessage(headers=headers, key=record.key, value=record.value or b"")
    )
    attributes: dict[str, Any] = detected.get_attributes()
    # 1.x keeps the time as text and the key as bytes, and takes the record's content-type
    # for the data's: those differ by design, every other attribute must be the same.
    differing = {"time", "datacontenttype"}
    read_by_v1 = {
        name: value.decode() if isinstance(value, bytes) else value
        for name, value in structured.get_attributes().items()
        if name not in differing
    }
    assert read_by_v1 == {
        name: value for name, value in attributes.items() if name not in differing
    }, "the 1.x structured reader sees other attributes"
    return attributes
