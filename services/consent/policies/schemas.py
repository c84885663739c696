"""Policy API shapes: publishing a version, the public views, the diff, agreements.

:class:`PolicyVersionCreate` encodes policy section 5's rules on the input itself, so a
refusal is a 422 naming the field: a major change names at least one of the six kinds of
major change and a minor change names none; a change that reduces users' rights is only
accepted as a major change of kind ``user_rights`` (OB-5-2), which needs renewed consent.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

#: Policy section 5's six kinds of major change, in its order.
MajorChangeKind = Literal[
    "business_model",
    "controller",
    "sharing_recipients",
    "user_rights",
    "contact_channel",
    "impact_assessment",
]

#: What each kind means, in the policy's words (shown on the policy page).
MAJOR_CHANGE_DESCRIPTIONS: dict[str, str] = {
    "business_model": (
        "The product's business model has changed (the purposes of processing, the types "
        "of personal information processed, or how it is used)."
    ),
    "controller": (
        "The organisation responsible for this policy has changed, and the new one changes "
        "the purpose or method of processing."
    ),
    "sharing_recipients": (
        "The main recipients of shared or publicly disclosed personal information have changed."
    ),
    "user_rights": (
        "Your rights over your personal information, or how you exercise them, have changed."
    ),
    "contact_channel": (
        "The contact details or complaint channels of the person responsible for personal "
        "information protection have changed."
    ),
    "impact_assessment": (
        "A personal information protection impact assessment found a significant impact on "
        "your rights and interests."
    ),
}

VERSION_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z._-]{0,31}$"
# A version is a short label ("2026.2"); a long run of digits is refused so that no version
# can look like a phone or card number in an event.
_LONG_DIGIT_RUN = re.compile(r"\d{9,}")

VersionStatus = Literal["upcoming", "current", "superseded"]


def check_version_label(value: str) -> str:
    if _LONG_DIGIT_RUN.search(value):
        raise ValueError("a version is a short label such as 2026.2, not a long number")
    return value


class PolicyVersionCreate(BaseModel):
    """A new version of the policy, published by an admin. Published versions never change."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(pattern=VERSION_PATTERN, description='a unique label, e.g. "2026.2"')
    effective_date: date = Field(description="takes effect on this day; today or later")
    text: str = Field(min_length=1, max_length=200_000, description="the full text, Markdown")
    summary_of_changes: str = Field(min_length=1, max_length=5000)
    major: bool = Field(description="a major change (policy section 5) needs renewed consent")
    major_change_kinds: list[MajorChangeKind] = Field(
        default_factory=list,
        validate_default=True,
        description="for a major change, which of section 5's kinds; none for a minor one",
    )
    reduces_rights: bool = Field(
        description=(
            "the change reduces users' rights: accepted only as a major change of kind "
            "user_rights, so that it takes effect for a user only with their renewed consent"
        )
    )

    @field_validator("version")
    @classmethod
    def _short_label(cls, value: str) -> str:
        return check_version_label(value)

    @field_validator("text")
    @classmethod
    def _plain_text(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("the text may not contain NUL characters")
        return value.replace("\r\n", "\n").replace("\r", "\n")

    @field_validator("major_change_kinds")
    @classmethod
    def _kinds_match_major(cls, value: list[str], info: ValidationInfo) -> list[str]:
        kinds = list(dict.fromkeys(value))
        major = info.data.get("major")
        if major is True and not kinds:
            raise ValueError("a major change names at least one kind of major change")
        if major is False and kinds:
            raise ValueError("a minor change names no kind of major change")
        return kinds

    @field_validator("reduces_rights")
    @classmethod
    def _reduction_needs_consent(cls, value: bool, info: ValidationInfo) -> bool:
        if value and not (
            info.data.get("major") is True
            and "user_rights" in info.data.get("major_change_kinds", ())
        ):
            raise ValueError(
                "a change that reduces users' rights needs their explicit consent: publish "
                "it as a major change of kind user_rights"
            )
        return value


class PolicyVersionSummary(BaseModel):
    """A version in the archive (without its text)."""

    version: str
    sequence: int = Field(description="publication order; a higher number is newer")
    status: VersionStatus
    effective_date: date
    published_at: datetime
    summary_of_changes: str
    major: bool
    major_change_kinds: list[MajorChangeKind]
    reduces_rights: bool
    renewed_consent_required: bool = Field(
        description="a major version: users who agreed to an older one must agree again"
    )
    text_sha256: str


class PolicyVersionView(PolicyVersionSummary):
    """A version with its full text (Markdown)."""

    text: str


class PolicyDiff(BaseModel):
    from_version: str
    to_version: str
    format: Literal["unified"] = "unified"
    diff: str = Field(description="a unified diff of the two texts; empty when they are equal")


class AgreementCreate(BaseModel):
    """The signed-in user agrees to a version (the current one, or a published upcoming one)."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(pattern=VERSION_PATTERN)


class AgreementReceipt(BaseModel):
    """Proof of one agreement: who agreed to which text, when, through which channel."""

    receipt_id: str
    subject: str
    version: str
    effective_date: date
    agreed_at: datetime
    channel: str = Field(description="the client the user agreed through: app, web, ...")
    text_sha256: str = Field(description="SHA-256 of the exact text agreed to")


class AgreementState(BaseModel):
    """Where a user stands with the policy (for the consent-state topic and the gateway)."""

    policy_version_agreed: str | None = Field(description="the newest version agreed to")
    policy_sequence_agreed: int | None
    current_version: str | None
    renewal_required: bool = Field(
        description=(
            "the user must agree (again) before relying on the policy: never agreed to any "
            "version, or a major version in effect is newer than the one agreed to"
        )
    )
    version_to_agree: str | None = Field(description="the version to agree to, when required")
    reason: Literal["never_agreed", "major_change"] | None = None


class MyAgreements(AgreementState):
    subject: str
    agreements: list[AgreementReceipt] = Field(description="newest first")
