"""Security API shapes: an account as the security team sees it under
``security.anti_fraud`` (the catalogue decides each field's masking)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from kit.fraud import FlagView


class SecurityAccountView(BaseModel):
    account_id: str
    kind: str
    status: str
    phone: str | None = Field(description="as the catalogue shows it to security.anti_fraud")
    roles: list[str]
    verification_level: str
    created_at: datetime
    failed_logins: int = Field(description="failed logins counted against the account's phone")
    locked_until: datetime | None
    flags: list[FlagView]
