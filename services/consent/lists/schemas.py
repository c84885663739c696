"""The two lists' shapes (OB-L-1): what is collected, with whom it is shared, a version of
both, and the difference between two versions."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class RetentionItem(BaseModel):
    id: str
    duration: str
    then: str
    legal_basis: str


class CollectedItem(BaseModel):
    """One data category collected: why, how, in which function and how long it is kept."""

    category: str
    description: str
    sensitive: bool
    purposes: list[str] = Field(description="the catalogue purposes that use it")
    method: list[str] = Field(description="how it is collected: which service takes it")
    functions: list[str] = Field(description="the resources (functions) that hold it")
    retention: list[RetentionItem]


class SharedItem(BaseModel):
    """One third party: who, why, how, which categories, and how to reach them."""

    id: str
    recipient: str
    kind: Literal["partner", "overseas_recipient"]
    purposes: list[str]
    method: str
    categories: list[str]
    contact: str


class ListVersionView(BaseModel):
    """A version of the two lists."""

    number: int
    policy_version: str | None = Field(description="the policy version in effect when made")
    made_at: datetime
    digest: str
    collected: list[CollectedItem]
    shared: list[SharedItem]


class ListVersionSummary(BaseModel):
    number: int
    policy_version: str | None
    made_at: datetime
    digest: str


class Change(BaseModel):
    """An entry of a list added, removed or changed between two versions (by its key: the
    category, or the third party's id)."""

    key: str
    change: Literal["added", "removed", "changed"]
    fields: list[str] = Field(default=[], description="for a change: which fields differ")


class ListDiff(BaseModel):
    from_version: int
    to_version: int
    collected: list[Change]
    shared: list[Change]
