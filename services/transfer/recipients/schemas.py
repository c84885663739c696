"""Recipient API shapes. Inputs refuse unknown fields; views are built from the tables,
never the tables themselves."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

BasisKind = Literal["security_assessment", "certification", "standard_contract", "consent_only"]
#: A CAC security assessment's result is valid this many years (OB-L-8).
SECURITY_ASSESSMENT_YEARS = 3


def security_assessment_expiry(decided_on: date) -> date:
    """The day a security assessment decided on ``decided_on`` no longer covers: three
    years on (28 February for a 29 February decision in a common year)."""
    year = decided_on.year + SECURITY_ASSESSMENT_YEARS
    try:
        return decided_on.replace(year=year)
    except ValueError:
        return date(year, 2, 28)


Delivery = Literal["https", "kafka"]
AssessmentResult = Literal["passed", "failed"]


class LegalBasisIn(BaseModel):
    """A legal basis for providing personal information abroad (OB-4-6)."""

    model_config = ConfigDict(extra="forbid")

    kind: BasisKind
    reference: str = Field(
        min_length=1,
        max_length=200,
        description="security_assessment: the CAC approval reference; certification: the "
        "certificate number; standard_contract: the filing reference; consent_only (below "
        "the 2024 volume thresholds, OB-L-7): the internal record of that decision",
    )
    decided_on: date = Field(description="when it was approved, certified or filed")
    review_due: date = Field(description="the recipient receives nothing after this day")

    @model_validator(mode="after")
    def _review_after_decision(self) -> Self:
        if self.review_due <= self.decided_on:
            raise ValueError("review_due must be after decided_on")
        return self

    @field_validator("review_due")
    @classmethod
    def _assessment_valid_three_years(cls, value: date, info: ValidationInfo) -> date:
        decided_on = info.data.get("decided_on")
        if info.data.get("kind") == "security_assessment" and isinstance(decided_on, date):
            expiry = security_assessment_expiry(decided_on)
            if value >= expiry:
                raise ValueError(
                    f"a security assessment is valid {SECURITY_ASSESSMENT_YEARS} years: "
                    f"review_due must be before {expiry.isoformat()}"
                )
        return value


class AssessmentIn(BaseModel):
    """A periodic assessment of the recipient's purpose and security capability."""

    model_config = ConfigDict(extra="forbid")

    assessed_on: date
    result: AssessmentResult
    notes: str = Field(default="", max_length=2000)


class RecipientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    legal_name: str = Field(min_length=1, max_length=200)
    contact: str = Field(min_length=1, max_length=500, description="the recipient's contact")
    country_region: str = Field(min_length=2, max_length=100)
    purpose: str = Field(min_length=1, max_length=1000, description="processing purpose")
    processing_method: str = Field(min_length=1, max_length=1000)
    data_categories: list[str] = Field(
        min_length=1, max_length=20, description="catalogue data-category ids it may receive"
    )
    how_to_exercise_rights: str = Field(min_length=1, max_length=2000)
    dpa_reference: str = Field(
        min_length=1, max_length=200, description="the data-processing agreement"
    )
    public_key_pem: str = Field(
        min_length=1, max_length=16_000, description="X25519 or RSA (>= 2048 bits), PEM"
    )
    delivery: Delivery
    endpoint_url: str | None = Field(
        default=None, max_length=500, description="https delivery: the URL packages go to"
    )
    cross_border_logistics: bool = Field(
        default=False, description="receives the waybill of every cross-border order"
    )
    goods_ids: list[str] = Field(
        default_factory=list,
        max_length=1000,
        description="an overseas seller: receives the cross-border orders holding these goods",
    )
    legal_basis: LegalBasisIn
    assessment: AssessmentIn

    @field_validator("goods_ids")
    @classmethod
    def _goods_ids_are_ids(cls, value: list[str]) -> list[str]:
        if any(not item or len(item) > 40 for item in value):
            raise ValueError("goods ids are 1-40 characters")
        return sorted(set(value))

    @model_validator(mode="after")
    def _endpoint_fits_delivery(self) -> Self:
        if self.delivery == "kafka":
            if self.endpoint_url is not None:
                raise ValueError("kafka delivery takes no endpoint_url")
            return self
        if self.endpoint_url is None:
            raise ValueError("https delivery needs an endpoint_url")
        parts = urlsplit(self.endpoint_url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("endpoint_url must be an https:// URL")
        if parts.username or parts.password:
            raise ValueError("endpoint_url must not carry credentials")
        return self


class LegalBasisView(BaseModel):
    id: str
    kind: BasisKind
    reference: str
    decided_on: date
    review_due: date
    recorded_by: str
    recorded_at: datetime


class AssessmentView(BaseModel):
    id: str
    assessed_on: date
    result: AssessmentResult
    notes: str
    recorded_by: str
    recorded_at: datetime


class RecipientView(BaseModel):
    id: str
    legal_name: str
    contact: str
    country_region: str
    purpose: str
    processing_method: str
    data_categories: list[str]
    how_to_exercise_rights: str
    dpa_reference: str
    key_type: Literal["x25519", "rsa"]
    key_fingerprint: str
    delivery: Delivery
    endpoint_url: str | None
    cross_border_logistics: bool
    goods_ids: list[str]
    legal_basis: LegalBasisView | None = Field(description="the current basis (the newest)")
    latest_assessment: AssessmentView | None
    may_receive: bool = Field(description="basis in force and a passed assessment in date")
    blocked_because: list[str] = Field(description="why it may not receive data, if so")
    due: list[str] = Field(description="what is due for review soon or overdue")
    security_assessment_expires_on: date | None = Field(
        default=None,
        description="a security_assessment basis: the day it no longer covers (3 years "
        "after the decision); renewal is flagged 60 working days before",
    )
    created_at: datetime


class RecipientHistory(BaseModel):
    """Every legal basis and assessment ever recorded for a recipient, newest first."""

    recipient_id: str
    legal_bases: list[LegalBasisView]
    assessments: list[AssessmentView]


class RecipientDisclosure(BaseModel):
    """What a user is told about the recipient before a cross-border consent (OB-4-5).
    The members are those the consent service requires in ``shown.recipient``."""

    id: str
    name: str
    contact: str
    country_region: str
    purpose: str
    processing_method: str
    data_types: list[str] = Field(description="the types of personal information, in words")
    data_categories: list[str] = Field(description="the same, as catalogue category ids")
    how_to_exercise_rights: str
