"""List tables: the third parties the privacy center learnt from the registries, and every
version of the two lists (OB-L-1).

- ``third_party``: a partner registered with identity or an overseas recipient registered
  with transfer, as their registration events describe them (organisations, no person).
- ``list_version``: one row per version of the two lists, numbered from 1; a new one is
  made whenever the generated lists differ from the latest or the policy version in effect
  changed. Versions are never changed or deleted, so any two can be compared.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field

from kit.db import timestamp_column
from kit.models import utcnow
from services.consent.base import ConsentModel


class ThirdParty(ConsentModel, table=True):
    """A partner or an overseas recipient personal information is shared with."""

    __tablename__ = "third_party"

    id: str = Field(primary_key=True, max_length=64, description="ptn_... or rcp_...")
    kind: str = Field(max_length=20, description="partner or overseas_recipient")
    name: str = Field(max_length=200, description="the organisation's name")
    purposes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    categories: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    method: str = Field(max_length=200)
    registered_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    revoked_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))


class ListVersion(ConsentModel, table=True):
    """One version of the two lists, with the policy version in effect when it was made."""

    __tablename__ = "list_version"

    number: int = Field(primary_key=True, description="from 1, in the order made")
    policy_version: str | None = Field(default=None, max_length=32)
    digest: str = Field(max_length=64, description="SHA-256 of the two lists")
    made_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    collected: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    shared: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
