"""Rights-request API shapes, the completion-event contract and the export document.

Inputs forbid unknown fields. :class:`CompletionData` is the ``data`` of a participant's
``com.signature.<service>.rights.completed.v1`` event; it ignores fields it does not know,
so a participant may add some without breaking the privacy center.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kit.rights import RetentionView
from services.consent.consents.schemas import ConsentValue, Receipt
from services.consent.incidents.schemas import Notice
from services.consent.policies.schemas import MyAgreements

RightsKind = Literal[
    "access", "correction", "deletion", "withdraw_all", "restriction", "explanation", "portability"
]
RequestStatus = Literal["open", "overdue", "completed"]
Outcome = Literal["done", "partial", "refused"]
ParticipantStatus = Literal["pending", "overdue", "done", "partial", "refused"]

MAX_CORRECTIONS_BYTES = 16 * 1024
Category = Annotated[str, Field(min_length=1, max_length=200)]
CatalogueId = Annotated[str, Field(min_length=1, max_length=100)]


class Destination(BaseModel):
    """The other processor a portability copy goes to (PIPL art. 45): its name and the
    HTTPS endpoint that takes the copy."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    url: str = Field(min_length=8, max_length=2000, pattern=r"^https?://[^\s]+$")


class RightsRequestCreate(BaseModel):
    """A rights request. ``corrections`` (kind ``correction`` only) maps a service to the
    fields it should correct, as that service understands them: ``{"orders": {...}}``."""

    model_config = ConfigDict(extra="forbid")

    kind: RightsKind
    corrections: dict[str, dict[str, Any]] | None = Field(
        default=None, description="kind=correction only: service -> fields to correct"
    )
    purposes: list[CatalogueId] | None = Field(
        default=None, max_length=50, description="kind=restriction: purposes to restrict"
    )
    categories: list[CatalogueId] | None = Field(
        default=None, max_length=50, description="kind=restriction: data categories to restrict"
    )
    destination: Destination | None = Field(
        default=None, description="kind=portability only: the processor the copy goes to"
    )

    @model_validator(mode="after")
    def _restriction_and_destination_fit_the_kind(self) -> RightsRequestCreate:
        if self.kind == "restriction":
            if not self.purposes and not self.categories:
                raise ValueError("a restriction names at least one purpose or category")
        elif self.purposes is not None or self.categories is not None:
            raise ValueError("only a restriction names purposes or categories")
        if self.kind == "portability":
            if self.destination is None:
                raise ValueError("a portability request names its destination")
        elif self.destination is not None:
            raise ValueError("only a portability request names a destination")
        return self

    @model_validator(mode="after")
    def _corrections_fit_the_kind(self) -> RightsRequestCreate:
        if self.kind == "correction":
            if not self.corrections or not any(self.corrections.values()):
                raise ValueError("a correction names at least one service and field to correct")
            if len(json.dumps(self.corrections).encode()) > MAX_CORRECTIONS_BYTES:
                raise ValueError(f"corrections are limited to {MAX_CORRECTIONS_BYTES} bytes")
        elif self.corrections is not None:
            raise ValueError("only a correction request carries corrections")
        return self


class KeptCategory(BaseModel):
    """Data a service keeps despite the request, why, and until when."""

    model_config = ConfigDict(extra="ignore")

    category: Category
    legal_basis: str = Field(min_length=1, max_length=2000)
    until: date | None = None
    retention: str | None = Field(
        default=None, max_length=100, description="the catalogue's retention period id, if one"
    )

    @field_validator("until", mode="before")
    @classmethod
    def _date_of_a_timestamp(cls, value: Any) -> Any:
        if isinstance(value, str) and "T" in value:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).date()
        if isinstance(value, datetime):
            return value.date()
        return value


class CompletionData(BaseModel):
    """``data`` of ``com.signature.<service>.rights.completed.v1`` (subject = the user)."""

    model_config = ConfigDict(extra="ignore")

    request_id: str = Field(min_length=1, max_length=40)
    outcome: Outcome
    deleted: list[Category] = Field(default_factory=list, max_length=200)
    anonymised: list[Category] = Field(default_factory=list, max_length=200)
    kept: list[KeptCategory] = Field(default_factory=list, max_length=200)
    reason: str | None = Field(default=None, max_length=2000)


class ParticipantView(BaseModel):
    """A participant service's part: ``pending`` (or ``overdue``) until it answers, then
    its outcome with what it deleted, anonymised and kept."""

    service: str
    status: ParticipantStatus
    answered_at: datetime | None = None
    deleted: list[str] = []
    anonymised: list[str] = []
    kept: list[KeptCategory] = []
    reason: str | None = None


class RightsRequestView(BaseModel):
    """A request as its owner sees it."""

    id: str
    kind: RightsKind
    status: RequestStatus
    filed_at: datetime
    deadline: datetime = Field(description="every answer is due before this instant")
    due_date: date = Field(description="the last working day, China Standard Time")
    completed_at: datetime | None
    has_corrections: bool
    corrections: dict[str, dict[str, Any]] | None = Field(
        default=None, description="the owner's corrections (shown on the detail only)"
    )
    participants: list[ParticipantView]
    overdue_services: list[str]
    restriction: RestrictionView | None = Field(
        default=None, description="kind=restriction: what is restricted, and until when"
    )


class RestrictionView(BaseModel):
    """What a restriction request restricts: only stored until ``lifted_at``."""

    purposes: list[str]
    categories: list[str]
    since: datetime
    lifted_at: datetime | None


class RightsRequestAdminView(BaseModel):
    """A request as a privacy officer sees it: whose, and who has not answered."""

    id: str
    subject: str
    kind: RightsKind
    status: RequestStatus
    filed_at: datetime
    deadline: datetime
    due_date: date = Field(description="the last working day, China Standard Time")
    completed_at: datetime | None
    has_corrections: bool
    participants: list[ParticipantView]
    overdue_services: list[str]


class ServiceCorrections(BaseModel):
    """The corrections one participant service is asked to make."""

    request_id: str
    service: str
    corrections: dict[str, Any]


class ServiceExportOk(BaseModel):
    status: Literal["ok"] = "ok"
    data: Any


class ServiceExportError(BaseModel):
    status: Literal["error"] = "error"
    error: str


ServiceExport = Annotated[ServiceExportOk | ServiceExportError, Field(discriminator="status")]


class ExportDocument(BaseModel):
    """Everything the participant services hold about the subject, gathered at once."""

    subject: str
    generated_at: datetime
    services: dict[str, ServiceExport]


class ConsentServiceExport(BaseModel):
    """The privacy center's own part of the access export: everything it holds about the
    subject (PIPL art. 45)."""

    service: str = "consent"
    subject: str
    policy: MyAgreements = Field(description="every policy agreement, with its receipt")
    consents: list[ConsentValue] = Field(description="each consent's current value")
    consent_history: list[Receipt] = Field(
        description="every grant and withdrawal, oldest first, with what was shown"
    )
    transfer_consents: list[ConsentValue] = Field(
        description="the separate consents to transfers abroad, one per recipient decided"
    )
    rights_requests: list[RightsRequestView] = Field(
        description="every rights request, newest first, with the corrections asked for"
    )
    notices: list[Notice] = Field(description="incident and cessation notices, newest first")
    ledger_entries: int = Field(
        description="entries of the processing ledger (read them at GET /consent/ledger/me)"
    )
    retention: dict[str, RetentionView] = Field(
        description="how long each kind of record is kept: consent_receipt (agreements, "
        "consent receipts, rights requests) and processing_ledger"
    )


class ExplainedPurpose(BaseModel):
    purpose: str
    description: str | None
    legal_basis: str
    by: list[str] = Field(description="who processed it, as the ledger names them")


class ExplainedCategory(BaseModel):
    """One kind of the user's data: what it is, for which purposes, by whom, on which
    basis, and how long it is kept."""

    category: str
    description: str | None
    sensitive: bool
    purposes: list[ExplainedPurpose]
    retention: list[RetentionView]


class Explanation(BaseModel):
    """The answer to an explanation request (PIPL art. 48), from the catalogue and the
    user's own processing ledger."""

    request_id: str
    generated_at: datetime
    categories: list[ExplainedCategory]


class RefusedPart(BaseModel):
    service: str
    category: str
    reason: str


class PortabilityReceipt(BaseModel):
    """What was delivered to the destination, and what was left out and why."""

    request_id: str
    destination: str
    delivered_at: datetime
    format: str = Field(description="the copy's documented format")
    sha256: str = Field(description="of the copy as delivered")
    services: dict[str, str] = Field(description="each service's part: ok or error")
    categories: list[str] = Field(description="the categories in the copy")
    refused: list[RefusedPart] = Field(
        description="data left out: not collected by consent or contract"
    )


class KindStatistics(BaseModel):
    """One kind of request filed in a year: how many, how long they took, how many late."""

    kind: RightsKind
    count: int = Field(description="requests of this kind filed in the year")
    completed: int = Field(description="of them, answered by every service")
    median_working_days: float | None = Field(
        description="working days from filing to completion (Chinese calendar), median of "
        "the completed ones; None when none is completed"
    )
    max_working_days: int | None = Field(description="the longest of them")
    overdue: int = Field(description="completed after their deadline, or still unanswered past it")


class RightsStatistics(BaseModel):
    """Rights-request statistics for the yearly report (NDSMR art. 44, OB-L-14)."""

    year: int = Field(description="the year of filing, China Standard Time")
    deadline_working_days: int
    generated_at: datetime
    kinds: list[KindStatistics] = Field(description="every kind, requests or not")
