"""Rights-request tables: the request a user files and each participant service's answer.

- ``rights_request``: who filed what, when it is due, whether every participant answered.
  Corrections (``kind=correction``) may hold personal data, so they are stored only as
  ciphertext under the subject's key (``kit.crypto``), never in an event.
- ``rights_answer``: one row per participant service, made ``pending`` at filing and
  filled by that service's completion event (first answer wins).

``status`` is stored as ``open`` or ``completed``; ``overdue`` is derived on read from the
deadline and the missing answers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Index, String, Text
from sqlmodel import Field

from kit.db import timestamp_column
from kit.models import utcnow
from services.consent.base import ConsentModel


class RightsRequest(ConsentModel, table=True):
    """A rights request (access, correction, deletion, withdraw_all, restriction,
    explanation, portability) of one subject."""

    __tablename__ = "rights_request"
    __table_args__ = (Index("ix_rights_request_status_deadline", "status", "deadline"),)

    id: str = Field(primary_key=True, max_length=40)
    subject: str = Field(index=True, max_length=200, description="the account id")
    kind: str = Field(max_length=20, description="access, correction, deletion, withdraw_all, ...")
    status: str = Field(default="open", max_length=20, description="open or completed")
    corrections_encrypted: str | None = Field(
        default=None,
        sa_column=Column(Text, nullable=True),
        description="the corrections as JSON, encrypted under the subject's key",
    )
    filed_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    deadline: datetime = Field(sa_column=timestamp_column(), description="answers due before")
    completed_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    overdue_reported_at: datetime | None = Field(
        default=None, sa_column=timestamp_column(nullable=True)
    )


class RightsAnswer(ConsentModel, table=True):
    """One participant service's answer to a request; ``outcome`` is None while pending."""

    __tablename__ = "rights_answer"

    request_id: str = Field(
        sa_column=Column(
            String(40), ForeignKey("rights_request.id", ondelete="CASCADE"), primary_key=True
        )
    )
    service: str = Field(primary_key=True, max_length=40)
    outcome: str | None = Field(default=None, max_length=20, description="done, partial, refused")
    deleted: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    anonymised: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    kept: list[dict[str, Any]] = Field(
        default_factory=list,
        sa_column=Column(JSON, nullable=False),
        description="[{category, legal_basis, until}]",
    )
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    event_id: str | None = Field(default=None, max_length=64, description="the answer's event")
    answered_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))


class Restriction(ConsentModel, table=True):
    """What a request put under storage only (OB-L-2, OB-L-5): a restriction's purposes and
    categories until the user lifts it, or, after a deletion, everything the services keep
    under a legal hold (``storage_only``; never lifted by the user)."""

    __tablename__ = "restriction"

    request_id: str = Field(
        sa_column=Column(
            String(40), ForeignKey("rights_request.id", ondelete="CASCADE"), primary_key=True
        )
    )
    subject: str = Field(index=True, max_length=200)
    purposes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    categories: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    storage_only: bool = Field(default=False)
    since: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    lifted_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))


class PortabilityDestination(ConsentModel, table=True):
    """The processor a portability request's copy goes to, and the last delivery."""

    __tablename__ = "portability_destination"

    request_id: str = Field(
        sa_column=Column(
            String(40), ForeignKey("rights_request.id", ondelete="CASCADE"), primary_key=True
        )
    )
    name: str = Field(max_length=200)
    url: str = Field(sa_column=Column(Text, nullable=False))
    delivered_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    sha256: str | None = Field(default=None, max_length=64)
