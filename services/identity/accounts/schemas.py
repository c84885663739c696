"""Account API shapes. Phone numbers leave only as the catalogue's masking allows."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kit.auth import STAFF_ROLE_SCOPES

StaffRole = Literal["privacy_officer", "catalogue_manager", "customer_service", "security"]
UserRole = Literal["seller", "content_creator"]
assert set(StaffRole.__args__) == set(STAFF_ROLE_SCOPES)  # type: ignore[attr-defined]


class Registration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(min_length=11, max_length=20, examples=["13812345678"])
    password: str = Field(min_length=8, max_length=128)


class StaffCreate(Registration):
    roles: list[StaffRole] = Field(min_length=1)


class RoleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: UserRole


class AccountCreated(BaseModel):
    account_id: str
    kind: Literal["user", "staff"]
    roles: list[str]


class AccountView(BaseModel):
    """What the owner sees of their account."""

    account_id: str
    kind: Literal["user", "staff"]
    phone: str | None
    roles: list[str]
    verification_level: Literal["none", "real_name", "real_person"]
    minor: bool
    guardian_linked: bool
    created_at: datetime
