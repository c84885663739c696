"""Request and response bodies of the verification domain. Never a table object.

Personal inputs are kept out of ``repr`` (so a logged model shows no name, ID number or
image), and outputs carry only masked values (OB-2A-3). The ID number is checked by
:mod:`.id_number` in the service, so its failures name the check that failed.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from services.identity.verification.authority import Level

__all__ = [
    "MAX_FACE_IMAGE_BYTES",
    "GuardianLinkRequest",
    "GuardianLinkResult",
    "VerificationRequest",
    "VerificationResult",
]

MAX_FACE_IMAGE_BYTES: Final = 2 * 1024 * 1024
_MAX_FACE_IMAGE_BASE64: Final = 4 * ((MAX_FACE_IMAGE_BYTES + 2) // 3)

RealName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
IdNumberText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]


class VerificationRequest(BaseModel):
    """Name and ID number, and optionally a face image (base64) for real-person level."""

    model_config = ConfigDict(extra="forbid")

    real_name: RealName = Field(repr=False, description="As on the ID card, 1-50 characters")
    id_number: IdNumberText = Field(
        repr=False, description="The 18-character resident ID number (GB 11643-1999)"
    )
    face_image: str | None = Field(
        default=None,
        repr=False,
        max_length=_MAX_FACE_IMAGE_BASE64,
        description="A face photo, base64, at most 2 MiB decoded; checked, never stored",
    )

    @field_validator("face_image")
    @classmethod
    def _face_image_is_base64(cls, value: str | None) -> str | None:
        if value is not None:
            _decode(value)
        return value

    def face_image_bytes(self) -> bytes | None:
        """The decoded face image, or None. Lives in memory only: never store or log it."""
        return None if self.face_image is None else _decode(self.face_image)


class FaceVerificationRequest(BaseModel):
    """A face image (base64) to raise the caller's verification to real-person level. The
    name and ID number are those already verified: the caller does not send them again."""

    model_config = ConfigDict(extra="forbid")

    face_image: str = Field(
        repr=False,
        min_length=1,
        max_length=_MAX_FACE_IMAGE_BASE64,
        description="A face photo, base64, at most 2 MiB decoded; checked, never stored",
    )

    @field_validator("face_image")
    @classmethod
    def _face_image_is_base64(cls, value: str) -> str:
        _decode(value)
        return value


def _decode(value: str) -> bytes:
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("face_image must be base64") from None
    if not data:
        raise ValueError("face_image is empty")
    if len(data) > MAX_FACE_IMAGE_BYTES:
        raise ValueError("face_image is larger than 2 MiB")
    return data


class VerificationResult(BaseModel):
    """A completed verification as its owner sees it: values masked by the catalogue."""

    level: Level
    verified_at: datetime
    minor: bool = Field(description="Under 14: a guardian's consent is needed")
    real_name: str | None = Field(description="Masked, e.g. 张*")
    id_number: str | None = Field(description="Masked, e.g. 1****************X")


class GuardianLinkRequest(BaseModel):
    """The ward (a minor under 14) named by their real name and ID number."""

    model_config = ConfigDict(extra="forbid")

    real_name: RealName = Field(repr=False)
    id_number: IdNumberText = Field(repr=False)


class GuardianLinkResult(BaseModel):
    """The link made: pseudonymous ids and the time of the guardian's consent."""

    ward_account_id: str
    guardian_account_id: str
    guardian_consent_at: datetime
