"""Incident and cessation tables.

- :class:`SecurityIncident`  an incident as the privacy officer recorded it, with the
  affected users' counts derived from the ledger when it was recorded (OB-4-8).
- :class:`IncidentAnnouncement`  the public announcement that replaces individual notices
  when too many users are affected.
- :class:`Cessation`  a ceased purpose (OB-2J-1) or a change of controller (OB-2H-1).
- :class:`SubjectNotice`  one notice to one user. It refers to its incident or cessation;
  the text is composed from that record when the user reads it, so no free text is copied
  per user, and none goes into Kafka.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field

from kit.db import timestamp_column
from kit.models import utcnow
from services.consent.base import ConsentModel


class SecurityIncident(ConsentModel, table=True):
    __tablename__ = "security_incident"

    id: str = Field(primary_key=True, max_length=40)
    title: str = Field(max_length=200)
    what_happened: str = Field(sa_column=Column(Text, nullable=False))
    impact: str = Field(sa_column=Column(Text, nullable=False))
    measures: str = Field(sa_column=Column(Text, nullable=False))
    advice: str = Field(sa_column=Column(Text, nullable=False))
    remedies: str = Field(sa_column=Column(Text, nullable=False))
    contact: str = Field(max_length=500)
    window_start: datetime = Field(sa_column=timestamp_column())
    window_end: datetime = Field(sa_column=timestamp_column())
    detected_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    categories: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    actors: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    affected_users: int = 0
    users_per_category: dict[str, int] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    delivery: str = Field(max_length=20, description="individual or announcement")
    notices_sent: int = 0
    recorded_by: str = Field(max_length=128)
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    # The regulator report's clock (OB-L-10): a reportable incident's report is due
    # ``regulator_deadline`` (discovery + 4 h, or 1 h for a CII operator).
    level: str = Field(
        default="general",
        max_length=30,
        description="general, relatively_major, major or particularly_major",
    )
    regulator_deadline: datetime | None = Field(
        default=None, sa_column=timestamp_column(nullable=True)
    )
    regulator_filed_at: datetime | None = Field(
        default=None, sa_column=timestamp_column(nullable=True)
    )
    regulator_reference: str | None = Field(default=None, max_length=200)


class IncidentAnnouncement(ConsentModel, table=True):
    __tablename__ = "incident_announcement"

    id: str = Field(primary_key=True, max_length=40)
    incident_id: str = Field(max_length=40, unique=True, foreign_key="security_incident.id")
    published_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class Cessation(ConsentModel, table=True):
    __tablename__ = "cessation"

    id: str = Field(primary_key=True, max_length=40)
    kind: str = Field(max_length=20, description="purpose_ceased or controller_change")
    purpose: str | None = Field(default=None, max_length=100, index=True)
    change: str | None = Field(
        default=None, max_length=20, description="merger, division, dissolution, bankruptcy"
    )
    recipient_name: str | None = Field(default=None, max_length=200)
    recipient_contact: str | None = Field(default=None, max_length=500)
    changes_purpose_or_method: bool = False
    effective_date: date
    reason: str = Field(default="", sa_column=Column(Text, nullable=False))
    notified_users: int = 0
    declared_by: str = Field(max_length=128)
    declared_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class SubjectNotice(ConsentModel, table=True):
    __tablename__ = "subject_notice"
    __table_args__ = (UniqueConstraint("subject", "reference"),)

    id: str = Field(primary_key=True, max_length=40)
    subject: str = Field(max_length=128, index=True)
    kind: str = Field(max_length=30, description="incident, purpose_ceased, controller_change")
    reference: str = Field(max_length=40, description="the incident or cessation id")
    categories: list[str] = Field(
        default_factory=list,
        sa_column=Column(JSON, nullable=False),
        description="the user's own categories concerned (incidents)",
    )
    event_id: str = Field(max_length=64, description="the notification event sent for it")
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
