"""Consent tables.

- ``consent_record``: one row per grant or withdrawal, never updated or deleted by this
  domain: the receipt (who decided what, for which purpose and recipient, under which
  policy version, having been shown what, when, through which channel).
- ``consent_state``: the current value of each of a subject's consents (purpose, or
  ``cross_border.transfer:<recipient_id>``), replaced by every change; what is published.
- ``consent_subject``: one row per subject that ever decided; it is locked by every change
  so that one subject's changes, and the state events they publish, are serialised, and it
  counts them (``version``).
- ``guardianship``: which account is the guardian of which minor, from identity's
  ``guardian.linked`` events (OB-2A-4).
- ``verified_age``: whether identity's latest real-name verification of a subject found a
  minor (under 14), and when, from its ``verification.completed`` events: a token issued
  before that verification still carries the flag from before (OB-2A-4).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field

from kit.db import timestamp_column
from kit.models import utcnow
from services.consent.base import ConsentModel


class ConsentRecord(ConsentModel, table=True):
    """A consent receipt: append-only evidence of one grant or withdrawal (PIPL art. 14-15)."""

    __tablename__ = "consent_record"

    id: str = Field(primary_key=True, max_length=40)
    subject: str = Field(index=True, max_length=128)
    purpose: str = Field(max_length=100)
    recipient_id: str | None = Field(default=None, max_length=64)
    recipient_name: str | None = Field(default=None, max_length=200)
    granted: bool
    policy_version: str | None = Field(default=None, max_length=64)
    shown: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    shown_sha256: str = Field(max_length=64)
    channel: str = Field(max_length=20, description="the token's client_type")
    actor: str = Field(max_length=128, description="the subject, or the guardian for a minor")
    actor_role: str = Field(max_length=20, description="subject or guardian")
    state_version: int = Field(description="the subject's change counter after this change")
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    purpose_fingerprint: str | None = Field(
        default=None,
        max_length=64,
        description="SHA-256 of the purpose, its method and data types as the catalogue "
        "stated them at the decision: a refusal is not asked again until it changes "
        "(OB-L-13)",
    )


class CurrentConsent(ConsentModel, table=True):
    """The current value of one consent of one subject."""

    __tablename__ = "consent_state"

    subject: str = Field(primary_key=True, max_length=128)
    key: str = Field(primary_key=True, max_length=200)
    purpose: str = Field(max_length=100)
    recipient_id: str | None = Field(default=None, max_length=64)
    recipient_name: str | None = Field(default=None, max_length=200)
    granted: bool
    receipt_id: str = Field(max_length=40)
    changed_at: datetime = Field(sa_column=timestamp_column())


class ConsentSubject(ConsentModel, table=True):
    """A subject that decided at least once; locked while one of its consents changes."""

    __tablename__ = "consent_subject"

    subject: str = Field(primary_key=True, max_length=128)
    version: int = 0
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class Guardianship(ConsentModel, table=True):
    """``guardian_account_id`` is the guardian of the minor ``ward_account_id``."""

    __tablename__ = "guardianship"

    ward_account_id: str = Field(primary_key=True, max_length=128)
    guardian_account_id: str = Field(index=True, max_length=128)
    linked_at: datetime = Field(sa_column=timestamp_column())
    event_id: str = Field(max_length=64, description="the identity event that linked them")


class VerifiedAge(ConsentModel, table=True):
    """Identity's latest verification of ``subject``: a minor or not, and when."""

    __tablename__ = "verified_age"

    subject: str = Field(primary_key=True, max_length=128)
    minor: bool
    verified_at: datetime = Field(sa_column=timestamp_column())
    event_id: str = Field(max_length=64, description="the identity event that told it")
