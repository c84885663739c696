"""The kit's own tables, present in every app's database.

- ``outbox``: events written in the same transaction as the state change they describe.
- ``processed_event``: which event ids a consumer has handled (at-least-once in,
  exactly-once effects out).
- ``subject_key``: each subject's AES data key, wrapped by the master key; shredding
  empties it.
- ``revocation``: subjects identity revoked (closed accounts, revoked partners and
  service clients) until every token they could hold has expired (:mod:`kit.revocation`).

They live in their own registry (:data:`kit_registry`); each app's Alembic run targets
this metadata and its own. Their migration lives once, in ``kit/migrations/versions``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, Column, Identity, Integer, Text
from sqlmodel import Field, SQLModel

from kit.db import new_registry, timestamp_column

kit_registry = new_registry()


def utcnow() -> datetime:
    return datetime.now(UTC)


class KitModel(SQLModel, registry=kit_registry):
    pass


class OutboxMessage(KitModel, table=True):
    """One event waiting to be published. ``seq`` fixes the publishing order; the relay
    deletes the row once Kafka acknowledged the event (Kafka then holds it)."""

    __tablename__ = "outbox"

    seq: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer(), "sqlite"), Identity(), primary_key=True
        ),
    )
    event_id: str = Field(max_length=64, unique=True)
    topic: str = Field(max_length=200)
    key: str = Field(max_length=200, description="the partition key: the event's subject")
    event_type: str = Field(max_length=200)
    payload: str = Field(
        sa_column=Column(Text, nullable=False),
        description="the CloudEvent as JSON, exactly as it will be published",
    )
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    attempts: int = 0


class ProcessedEvent(KitModel, table=True):
    """An event a consumer group has already applied; its id is never applied twice."""

    __tablename__ = "processed_event"

    consumer: str = Field(primary_key=True, max_length=200)
    event_id: str = Field(primary_key=True, max_length=64)
    outcome: str = Field(default="handled", max_length=20, description="handled or dead_letter")
    processed_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class SubjectKey(KitModel, table=True):
    """A subject's data key, wrapped (AES-GCM) by the master key. Shredding sets it to NULL
    and keeps the row as a tombstone, so decryption can say "shredded" rather than "unknown".
    """

    __tablename__ = "subject_key"

    subject: str = Field(primary_key=True, max_length=200)
    wrapped_key: bytes | None = Field(default=None)
    #: The version of the master key that wraps ``wrapped_key`` (rotate-master-key).
    key_version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    shredded_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))


class Revocation(KitModel, table=True):
    """A subject whose tokens still in date are refused (401): learnt from identity's
    events, kept until ``expires_at``, when every token it could hold has expired."""

    __tablename__ = "revocation"

    subject: str = Field(primary_key=True, max_length=200)
    reason: str = Field(max_length=40, description="account_closed, partner_revoked, ...")
    revoked_at: datetime = Field(sa_column=timestamp_column())
    expires_at: datetime = Field(sa_column=timestamp_column(index=True))
