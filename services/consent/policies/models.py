"""Policy tables: the published versions and the users' agreements to them.

Both are append-only. A published :class:`PolicyVersion` is never changed or deleted (old
versions stay readable, OB-5-4): the ORM refuses an update or delete of one. A
:class:`PolicyAgreement` is never changed either; deleting a subject's agreements is left
to erasure and retention (``consent_receipt`` in the catalogue).

``sequence`` numbers versions in publication order; effective dates never go backwards
along it, so "newer" always means "higher sequence".
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, String, Text, event, inspect
from sqlmodel import Field

from kit.db import timestamp_column
from kit.errors import Conflict
from kit.models import utcnow
from services.consent.base import ConsentModel


class PolicyRecordImmutable(Conflict):
    """A published version or an agreement was about to be changed."""

    code, title = "policy-record-immutable", "Policy records are immutable"


class PolicyVersion(ConsentModel, table=True):
    """A published version of the privacy policy."""

    __tablename__ = "policy_version"

    version: str = Field(primary_key=True, max_length=32)
    sequence: int = Field(unique=True, description="publication order, from 1")
    effective_date: date = Field(index=True)
    text: str = Field(sa_column=Column(Text, nullable=False))
    text_sha256: str = Field(max_length=64)
    summary_of_changes: str = Field(sa_column=Column(Text, nullable=False))
    major: bool
    major_change_kinds: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    reduces_rights: bool = False
    published_by: str = Field(max_length=40)
    published_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class PolicyAgreement(ConsentModel, table=True):
    """One user's agreement to one policy version: the receipt."""

    __tablename__ = "policy_agreement"

    receipt_id: str = Field(primary_key=True, max_length=40)
    subject: str = Field(index=True, max_length=40)
    version: str = Field(
        sa_column=Column(String(32), ForeignKey("policy_version.version"), nullable=False)
    )
    channel: str = Field(max_length=20, description="the token's client_type")
    text_sha256: str = Field(max_length=64, description="hash of the text agreed to")
    agreed_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


def _refuse_changes(_mapper: Any, _connection: Any, target: object) -> None:
    state = inspect(target)
    if any(attribute.history.has_changes() for attribute in state.attrs):
        raise PolicyRecordImmutable(f"a {type(target).__name__} cannot be changed")


def _refuse_delete(_mapper: Any, _connection: Any, target: object) -> None:
    raise PolicyRecordImmutable(f"a {type(target).__name__} cannot be deleted")


event.listen(PolicyVersion, "before_update", _refuse_changes)
event.listen(PolicyVersion, "before_delete", _refuse_delete)
event.listen(PolicyAgreement, "before_update", _refuse_changes)
