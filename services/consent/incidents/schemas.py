"""Incident, notice, announcement and cessation API shapes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

LongText = Annotated[str, Field(min_length=1, max_length=5000)]
ActorName = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z][A-Za-z0-9_.:\-]{1,127}$",
        description="a service name (orders) or a partner id (ptn_...)",
    ),
]
CategoryId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")]
Delivery = Literal["individual", "announcement"]
#: The grading of the National Cybersecurity Incident Reporting Measures; every level but
#: ``general`` is reported to the regulator on the clock (OB-L-10).
IncidentLevel = Literal["general", "relatively_major", "major", "particularly_major"]
ReportStatus = Literal["not_required", "due", "overdue", "filed", "filed_late"]
ControllerChangeKind = Literal["merger", "division", "dissolution", "bankruptcy"]

# --------------------------------------------------------------------------- incidents


class IncidentCreate(BaseModel):
    """A personal information security incident (PIPL art. 57; policy 4, OB-4-8)."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    what_happened: LongText
    impact: LongText = Field(description="the possible impact on the users")
    window_start: AwareDatetime = Field(description="when the incident began")
    window_end: AwareDatetime = Field(description="when it ended or was contained")
    detected_at: AwareDatetime | None = Field(
        default=None,
        description="when it was discovered: the regulator report's clock starts there "
        "(when it is not given, at recording)",
    )
    level: IncidentLevel = Field(
        default="general",
        description="relatively_major and above are reported to the regulator within 4 "
        "hours of discovery (1 hour for a critical information infrastructure operator)",
    )
    categories: list[CategoryId] = Field(
        default=[],
        max_length=50,
        description="affected data categories (a parent such as user.contact covers its children)",
    )
    actors: list[ActorName] = Field(
        default=[], max_length=50, description="affected services or partners"
    )
    measures: LongText = Field(description="the measures taken or to be taken")
    advice: LongText = Field(description="what users can do to reduce the risk")
    remedies: LongText = Field(description="the remedies open to users")
    contact: str = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _scope_is_stated(self) -> IncidentCreate:
        if self.window_end < self.window_start:
            raise ValueError("window_end is before window_start")
        if not self.categories and not self.actors:
            raise ValueError("name the affected categories, the affected actors, or both")
        return self


class AnnouncementRef(BaseModel):
    id: str
    published_at: datetime


class RegulatorClock(BaseModel):
    """The regulator report's clock (OB-L-10)."""

    level: IncidentLevel
    discovered_at: datetime = Field(description="discovery (detected_at, else recording)")
    deadline: datetime | None = Field(description="the report is due before; None: general")
    filed_at: datetime | None = Field(description="when the report was filed")
    reference: str | None = Field(description="the regulator's receipt for it")
    status: ReportStatus
    overdue: bool = Field(description="due and not filed in time (or filed late)")


class RegulatorFiling(BaseModel):
    """The report was filed with the regulator now."""

    model_config = ConfigDict(extra="forbid")

    reference: str = Field(
        min_length=1, max_length=200, description="the regulator's receipt number"
    )


class IncidentView(BaseModel):
    id: str
    title: str
    what_happened: str
    impact: str
    window_start: datetime
    window_end: datetime
    detected_at: datetime | None
    categories: list[str]
    actors: list[str]
    measures: str
    advice: str
    remedies: str
    contact: str
    affected_users: int
    users_per_category: dict[str, int]
    delivery: Delivery
    notices_sent: int
    announcement: AnnouncementRef | None
    recorded_at: datetime
    regulator: RegulatorClock


class AnnouncementView(BaseModel):
    """A public announcement of an incident (policy 4: when users cannot be told one by
    one)."""

    id: str
    incident_id: str
    published_at: datetime
    title: str
    what_happened: str
    impact: str
    window_start: datetime
    window_end: datetime
    categories: list[str]
    measures: str
    advice: str
    remedies: str
    contact: str


class IncidentFacts(BaseModel):
    id: str
    title: str
    what_happened: str
    impact: str
    window_start: datetime
    window_end: datetime
    detected_at: datetime | None
    recorded_at: datetime
    categories: list[str]
    sensitive_categories: list[str]
    actors: list[str]
    measures: str
    advice: str
    remedies: str
    contact: str


class AffectedCounts(BaseModel):
    users: int
    per_category: dict[str, int] = Field(description="distinct affected users per category")


class NotificationRecord(BaseModel):
    delivery: Delivery
    notices_sent: int
    announcement: AnnouncementRef | None


class TimelineItem(BaseModel):
    at: datetime
    event: str


class RegulatorReport(BaseModel):
    """What the regulator is told about an incident (PIPL art. 57)."""

    report: Literal["personal-information-security-incident"] = (
        "personal-information-security-incident"
    )
    generated_at: datetime
    incident: IncidentFacts
    affected: AffectedCounts
    notification: NotificationRecord
    regulator: RegulatorClock = Field(
        description="discovery, the report's deadline and when it was filed (OB-L-10)"
    )
    timeline: list[TimelineItem]


# --------------------------------------------------------------------------- notices


class _NoticeBase(BaseModel):
    id: str
    created_at: datetime


class IncidentNotice(_NoticeBase):
    kind: Literal["incident"] = "incident"
    incident_id: str
    title: str
    what_happened: str
    impact: str
    window_start: datetime
    window_end: datetime
    your_categories: list[str] = Field(description="which of your data was concerned")
    measures: str
    advice: str
    remedies: str
    contact: str


class PurposeCeasedNotice(_NoticeBase):
    kind: Literal["purpose_ceased"] = "purpose_ceased"
    cessation_id: str
    purpose: str
    purpose_description: str | None
    effective_date: date
    deletion_due: date = Field(description="your data for it is deleted or anonymised then")
    reason: str


class ControllerChangeNotice(_NoticeBase):
    kind: Literal["controller_change"] = "controller_change"
    cessation_id: str
    change: ControllerChangeKind
    recipient_name: str
    recipient_contact: str
    effective_date: date
    consent_renewal_required: bool = Field(
        description="the recipient changes the purpose or method: your consent is asked again"
    )
    reason: str


Notice = Annotated[
    IncidentNotice | PurposeCeasedNotice | ControllerChangeNotice, Field(discriminator="kind")
]

# --------------------------------------------------------------------------- cessation


class PurposeCessationCreate(BaseModel):
    """A product, service or purpose stops (policy 2J, OB-2J-1)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["purpose_ceased"]
    purpose: str = Field(min_length=1, max_length=100, description="a catalogue purpose id")
    effective_date: date
    reason: str = Field(default="", max_length=5000)


class ControllerChangeCreate(BaseModel):
    """A merger, division, dissolution or bankruptcy hands the data to a recipient
    (policy 2H, OB-2H-1; PIPL art. 22)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["controller_change"]
    change: ControllerChangeKind
    recipient_name: str = Field(min_length=1, max_length=200)
    recipient_contact: str = Field(min_length=1, max_length=500)
    changes_purpose_or_method: bool = Field(
        description="the recipient changes the original purpose or processing method"
    )
    effective_date: date
    reason: str = Field(default="", max_length=5000)


CessationCreate = Annotated[
    PurposeCessationCreate | ControllerChangeCreate, Field(discriminator="kind")
]


class CessationView(BaseModel):
    id: str
    kind: Literal["purpose_ceased", "controller_change"]
    purpose: str | None
    purpose_description: str | None
    effective_date: date
    deletion_due: date | None
    change: ControllerChangeKind | None
    recipient_name: str | None
    recipient_contact: str | None
    consent_renewal_required: bool
    reason: str
    declared_at: datetime
    notified_users: int
