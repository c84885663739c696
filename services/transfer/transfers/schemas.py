"""Transfer API shapes. Inputs refuse unknown fields; views are built from the tables."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.transfer.recipients.schemas import BasisKind, RecipientDisclosure

TransferStatus = Literal["awaiting_basis", "awaiting_consent", "ready", "delivered", "refused"]
Trigger = Literal["order_event", "admin"]
CategoryId = Annotated[
    str, Field(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
]


class TransferCreate(BaseModel):
    """An administrator's request to provide one order's data to one recipient."""

    model_config = ConfigDict(extra="forbid")

    subject: str = Field(
        min_length=3,
        max_length=128,
        pattern=r"^[A-Za-z][A-Za-z0-9_:.\-]{2,127}$",
        description="the buyer's pseudonymous account id",
    )
    order_id: str = Field(min_length=1, max_length=40)
    recipient_id: str = Field(min_length=1, max_length=40)
    categories: list[CategoryId] = Field(
        min_length=1, max_length=20, description="catalogue data-category ids to provide"
    )
    contract_necessary: bool = Field(
        default=False,
        description="necessary to perform a contract the person is party to (cross-border "
        "shopping, delivery, payment): exempt from the yearly volume count (OB-L-7)",
    )


class BasisRef(BaseModel):
    """The legal basis a transfer was checked against."""

    id: str
    kind: BasisKind
    reference: str
    review_due: date


class TransferView(BaseModel):
    id: str
    subject: str
    recipient_id: str
    order_id: str
    categories: list[str]
    trigger: Trigger
    requested_by: str
    contract_necessary: bool = Field(description="exempt from the yearly volume count")
    status: TransferStatus
    reason: str | None = Field(
        description="why it was refused or waits (awaiting_basis: volume_needs_<basis>), or "
        "the last delivery failure"
    )
    basis: BasisRef | None
    waybill_id: str | None = Field(description="the pseudonymous waybill id sent abroad")
    package_sha256: str | None = Field(description="SHA-256 of the encrypted package")
    rounds: int = Field(description="delivery rounds that failed so far")
    next_attempt_at: datetime | None
    requested_at: datetime
    updated_at: datetime
    delivered_at: datetime | None


class AttemptView(BaseModel):
    number: int
    at: datetime
    outcome: Literal["delivered", "failed"]
    status_code: int | None
    error: str | None


class TransferDetail(TransferView):
    attempts: list[AttemptView]


class UserTransferView(BaseModel):
    """A transfer of the user's data abroad as the user sees it: to whom (with the full
    disclosure, OB-4-5), which data, when, under which kind of legal basis, and how it went."""

    id: str
    order_id: str
    status: TransferStatus
    reason: str | None
    categories: list[str]
    data_types: list[str] = Field(description="the categories provided, in words")
    recipient: RecipientDisclosure
    legal_basis: BasisKind | None
    requested_at: datetime
    delivered_at: datetime | None
