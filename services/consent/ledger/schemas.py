"""Ledger API shapes: the user's view of their processing ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

ActorKind = Literal["self", "partner", "recipient", "staff", "user", "service"]


class Actor(BaseModel):
    """Who processed the data. Staff account ids are not shown to users: their role is."""

    kind: ActorKind
    service: str = Field(description="the service that reported the processing")
    id: str | None = Field(description="the partner, account or service id; null for staff")
    name: str | None = Field(
        description="the actor's registered name: a partner's or overseas recipient's name, "
        "a service's name, a staff member's role; null for you and for another account"
    )
    role: str | None = Field(description="a staff member's role, when known")
    display: str = Field(description="a readable label, e.g. 'logistics partner ptn_...'")


class CategoryView(BaseModel):
    id: str
    name: str | None = Field(
        default=None, description="the short display name in English; null for an unknown id"
    )
    name_zh: str | None = Field(
        default=None, description="the short display name in Simplified Chinese"
    )
    description: str | None
    sensitive: bool


class LedgerEntryView(BaseModel):
    id: str = Field(description="the source event's id")
    occurred_at: datetime
    who: Actor
    action: str
    resource: str
    categories: list[CategoryView]
    purpose: str
    purpose_description: str | None
    purpose_description_zh: str | None = Field(
        default=None, description="the purpose's description in Simplified Chinese"
    )
    legal_basis: str


class LedgerPage(BaseModel):
    entries: list[LedgerEntryView] = Field(description="newest first")
    total: int = Field(description="the entries the filters match (all without filters)")
    limit: int
    offset: int
    next_offset: int | None
    chain_valid: bool = Field(
        description="false when an entry of this page was altered or unlinked, or any entry "
        "was removed"
    )


class PurposeChoice(BaseModel):
    id: str
    description: str | None
    description_zh: str | None


class LedgerChoices(BaseModel):
    """What a user's ledger can be filtered by: what its entries name."""

    purposes: list[PurposeChoice] = Field(description="by id")
    categories: list[CategoryView] = Field(description="by id")
    actors: list[Actor] = Field(
        description="by display label; staff members are not offered (their id is not shown)"
    )


class ChainCheck(BaseModel):
    """The result of :func:`services.consent.ledger.service.verify_chain`."""

    subject: str
    valid: bool
    entries: int
    first_invalid_seq: int | None = None
    first_invalid_event_id: str | None = None
    reason: str | None = None
