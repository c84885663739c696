"""What identity gives the privacy center about one subject (``GET /rights/export/{subject}``)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from kit.rights import ExportedField


class AccountExport(BaseModel):
    account_id: str
    kind: str
    status: str = Field(description="active or deleted")
    roles: list[str]
    verification_level: str
    minor: bool
    guardian_linked: bool
    created_at: datetime
    fields: dict[str, ExportedField] = Field(
        description="personal fields as rights.access sees them (the password only as 'set')"
    )


class VerificationExport(BaseModel):
    level: str
    verified_at: datetime
    minor_until: date | None
    fields: dict[str, ExportedField]


class LoginSession(BaseModel):
    client_type: str
    created_at: datetime
    expires_at: datetime
    revoked: bool


class PlatformIdentityExport(BaseModel):
    """The user's identity at a mini-program platform (the session key only as 'set')."""

    platform: str
    app_id: str
    created_at: datetime
    fields: dict[str, ExportedField]


class NetworkIdentityExport(BaseModel):
    """The national network identity authentication kept (OB-L-11): its level, when, and
    the pseudonymous network number it gave, shown to its own subject in full."""

    level: str
    verified_at: datetime
    network_number: str
    category: str


class IdentityExport(BaseModel):
    """Everything identity holds about the subject; empty parts when it holds nothing."""

    service: str = "identity"
    subject: str
    account: AccountExport | None
    verification: VerificationExport | None
    sessions: list[LoginSession]
    platform_identities: list[PlatformIdentityExport] = Field(default_factory=list)
    network_identity: NetworkIdentityExport | None = None
    partner_links: list[str] = Field(
        default_factory=list, description="identity links no user to a partner"
    )
    note: str | None = None
