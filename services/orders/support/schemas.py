"""Customer-service API shapes. ``messages`` is the catalogue's field
``orders.support.messages``; an agent's view holds it only once the user's membership is
verified (until then it is null and only ``message_count`` shows)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.orders.orders.schemas import OrderView

Topic = Literal["order", "delivery", "after_sales", "refund", "account", "other"]
MAX_TEXT = 1000
MAX_ATTACHMENTS = 5


class Attachment(BaseModel):
    """An attachment's metadata; the file itself goes to the file store, not here."""

    model_config = ConfigDict(extra="forbid")

    content_type: Literal["image/jpeg", "image/png", "application/pdf", "audio/mpeg"]
    size_bytes: int = Field(ge=1, le=20 * 1024 * 1024)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class MessageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    text: str = Field(min_length=1, max_length=MAX_TEXT)
    attachments: list[Attachment] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)


class CaseCreate(MessageCreate):
    """A user opens a case: a topic, maybe one of their orders, the first message."""

    topic: Topic
    order_id: str | None = Field(default=None, max_length=40)


class AgentCaseCreate(CaseCreate):
    """An agent opens a case for a user (a call, a complaint by letter)."""

    account_id: str = Field(min_length=1, max_length=40)


class MembershipCheck(BaseModel):
    """What the user tells the agent to prove the account is theirs: the number of one of
    their orders and the last four digits of that order's consignee phone."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    order_id: str = Field(min_length=1, max_length=40)
    phone_last4: str = Field(pattern=r"^[0-9]{4}$")


class MessageView(BaseModel):
    author: Literal["user", "agent"]
    text: str
    attachments: list[dict[str, Any]]
    sent_at: datetime


class CaseView(BaseModel):
    case_id: str
    account_id: str
    topic: str
    order_id: str | None
    opened_by: Literal["user", "agent"]
    status: Literal["open", "closed"]
    verified: bool = Field(description="the agent verified the user's membership")
    created_at: datetime
    closed_at: datetime | None
    message_count: int
    messages: list[MessageView] | None = Field(
        description="null for an agent until the user's membership is verified"
    )


class CaseSummary(BaseModel):
    """A case in an agent's list: no personal data."""

    case_id: str
    topic: str
    opened_by: Literal["user", "agent"]
    status: Literal["open", "closed"]
    verified: bool
    created_at: datetime


class CaseOrderView(BaseModel):
    account_id: str
    case_id: str
    order: OrderView


class TrainingExportView(BaseModel):
    export_id: str
    manifest: dict[str, Any]
    records: list[dict[str, Any]]
