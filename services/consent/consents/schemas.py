"""Consent API shapes.

``shown`` is what the user was shown when deciding (the function's explanation, the
policy excerpt, for a cross-border transfer the overseas recipient's disclosure): any JSON
object, stored as given with its SHA-256 over the canonical JSON (keys sorted, no spaces,
UTF-8), so a receipt proves what the decision was based on.

For ``cross_border.transfer`` the recipient is named in ``shown.recipient``; to grant,
every field of :data:`RECIPIENT_DISCLOSURE` must be there and non-empty (OB-4-5)::

    "shown": {"recipient": {"id": "rcp_1", "name": "...", "contact": "...",
              "purpose": "...", "processing_method": "...", "data_types": ["..."],
              "how_to_exercise_rights": "..."}, ...}

To withdraw, ``shown.recipient.id`` is enough. Other withdrawals need no ``shown`` at all:
withdrawing is never harder than granting.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: What must be disclosed about an overseas recipient before a cross-border consent
#: (PIPL art. 39): field of ``shown.recipient`` -> what it says.
RECIPIENT_DISCLOSURE: Final[dict[str, str]] = {
    "id": "the recipient's id (the transfer service's recipient id)",
    "name": "the overseas recipient's name",
    "contact": "the recipient's contact information",
    "purpose": "the purpose of the processing",
    "processing_method": "how the data is processed",
    "data_types": "the types of personal information provided",
    "how_to_exercise_rights": "how the user exercises their rights with the recipient",
}

MAX_SHOWN_BYTES: Final = 64 * 1024

ActorRole = Literal["subject", "guardian"]


def canonical_json(value: Any) -> bytes:
    """The canonical JSON that ``shown_sha256`` is computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class ConsentChange(BaseModel):
    """Grant (``granted: true``) or withdraw / refuse (``granted: false``) one purpose."""

    model_config = ConfigDict(extra="forbid")

    purpose: str = Field(min_length=1, max_length=100, examples=["location"])
    granted: bool
    shown: dict[str, Any] = Field(
        default_factory=dict,
        description="what the user was shown when deciding (stored with its SHA-256); "
        "required for a grant, optional for a withdrawal",
    )

    @field_validator("shown")
    @classmethod
    def _shown_is_bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(canonical_json(value)) > MAX_SHOWN_BYTES:
            raise ValueError(f"shown must be at most {MAX_SHOWN_BYTES} bytes of JSON")
        return value


class GrantablePurpose(BaseModel):
    """A purpose the user decides on: an additional function or a separate consent."""

    id: str
    kind: Literal["additional", "separate"]
    description: str
    description_zh: str | None = Field(
        description="the description in Simplified Chinese (the catalogue's description_zh)"
    )
    policy_section: str
    per_recipient: bool = Field(description="consented per overseas recipient")
    required_disclosure: list[str] = Field(
        description="fields of shown that a grant must carry, non-empty"
    )


class ConsentPrompt(BaseModel):
    """Whether an app may ask the user for an additional purpose now (OB-L-13, NDSMR art.
    22): not while it is granted, and not after a refusal unless the purpose, its method
    or the data types it uses changed since."""

    purpose: str
    description: str
    ask: bool
    reason: Literal["never_decided", "granted", "refused", "changed_since_refusal"]
    refused_at: datetime | None = Field(default=None, description="the refusal in force")


class Receipt(BaseModel):
    """The receipt of one grant or withdrawal."""

    id: str
    subject: str
    purpose: str
    recipient_id: str | None
    recipient_name: str | None
    granted: bool
    policy_version: str | None
    shown: dict[str, Any]
    shown_sha256: str
    recorded_at: datetime
    channel: str
    actor: str
    actor_role: ActorRole


class ConsentValue(BaseModel):
    """One consent's current value. ``changed_at`` null: never decided, so not granted."""

    key: str = Field(description="the purpose, or cross_border.transfer:<recipient_id>")
    purpose: str
    recipient_id: str | None = None
    recipient_name: str | None = None
    granted: bool
    changed_at: datetime | None = None
    receipt_id: str | None = None


class ConsentStateRead(BaseModel):
    """A subject's current consents: every grantable purpose (cross-border ones per
    recipient decided). Basic functions are not listed: they are not consents."""

    subject: str
    version: int = Field(description="how many changes the subject made")
    consents: list[ConsentValue]
