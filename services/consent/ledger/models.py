"""Ledger tables: the processing ledger and the directory of actors it names.

- :class:`LedgerEntry` is one processing or access of a subject's personal data, as a
  service reported it in an event. A subject's entries form a hash chain in ``seq`` order
  (``entry_hash`` = SHA-256 over ``prev_hash`` and the entry's canonical JSON, see
  ``ledger.service.entry_hash``), so an edited, removed or reordered entry is detected.
  ``event_id`` is unique: a redelivered event never makes a second entry.
- :class:`LedgerActor` is what the ledger learned about the actors it names from
  identity's and transfer's events: a partner's kind and name, a service client's service
  name, an overseas recipient's legal name, a staff account's roles. Entries keep the
  actor's id; names are looked up when shown, so an actor learned late is still named on
  older entries.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Column, Identity, Integer, UniqueConstraint
from sqlmodel import Field

from kit.db import timestamp_column
from kit.models import utcnow
from services.consent.base import ConsentModel


class LedgerEntry(ConsentModel, table=True):
    """Who processed which categories of the subject's data, when, for what, on which
    legal basis. Rows are only ever added."""

    __tablename__ = "ledger_entry"
    __table_args__ = (UniqueConstraint("subject", "seq"),)

    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer(), "sqlite"), Identity(), primary_key=True
        ),
    )
    event_id: str = Field(max_length=64, unique=True, description="the source event's id")
    subject: str = Field(max_length=128, index=True, description="the account id")
    seq: int = Field(description="position in the subject's chain, from 1")
    occurred_at: datetime = Field(sa_column=timestamp_column(index=True))
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    event_type: str = Field(max_length=200)
    service: str = Field(max_length=100, description="the service that reported it")
    actor: str = Field(max_length=128, description="account, partner or service id")
    actor_role: str | None = Field(default=None, max_length=100)
    action: str = Field(max_length=20, description="read, write or delete")
    resource: str = Field(max_length=200)
    purpose: str = Field(max_length=100)
    legal_basis: str = Field(max_length=100)
    categories: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    prev_hash: str = Field(max_length=64)
    entry_hash: str = Field(max_length=64)


class LedgerActor(ConsentModel, table=True):
    """A partner, service client, overseas recipient or staff account the ledger may name,
    learned from identity's and transfer's events."""

    __tablename__ = "ledger_actor"

    actor: str = Field(primary_key=True, max_length=128)
    kind: str = Field(max_length=20, description="partner, service, recipient or staff")
    name: str | None = Field(
        default=None, max_length=200, description="a partner's, service's or recipient's name"
    )
    partner_kind: str | None = Field(default=None, max_length=50)
    roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
