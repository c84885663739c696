"""Partner API shapes. The client secret appears once, in :class:`PartnerCreated`."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kit.auth import Scope

PartnerKind = Literal["logistics", "customs_broker", "tax", "payment_provider", "overseas_seller"]
AgreementType = Literal["entrusted_processing", "joint_processing", "third_party_provision"]

# The scope each kind of partner may be given: its duty, nothing more (OB-3-1).
KIND_SCOPES: dict[str, Scope] = {
    "logistics": Scope.PARTNER_LOGISTICS,
    "customs_broker": Scope.PARTNER_CUSTOMS,
    "tax": Scope.PARTNER_TAX,
    "payment_provider": Scope.PARTNER_PAYMENT,
    "overseas_seller": Scope.PARTNER_SELLER,
}


class Assessment(BaseModel):
    """The assessment of the partner's purpose and security capability (OB-3-4)."""

    model_config = ConfigDict(extra="forbid")

    assessed_on: date
    result: Literal["passed", "failed"]
    valid_until: date
    notes: str = Field(default="", max_length=2000)


class PartnerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    contact: str = Field(min_length=1, max_length=200, description="the partner's business contact")
    kind: PartnerKind
    agreement_type: AgreementType
    agreement_reference: str = Field(min_length=1, max_length=200)
    assessment: Assessment
    purposes: list[str] = Field(min_length=1, description="purpose ids from the catalogue")


class PartnerView(BaseModel):
    client_id: str
    name: str
    contact: str
    kind: PartnerKind
    agreement_type: AgreementType
    agreement_reference: str
    assessment_date: date
    assessment_result: Literal["passed", "failed"]
    assessment_valid_until: date
    purposes: list[str]
    scopes: list[str]
    status: Literal["active", "revoked"]
    created_at: datetime


class PartnerCreated(PartnerView):
    client_secret: str = Field(description="shown once; only its hash is kept")


class ClientCredentials(BaseModel):
    """OAuth2 client-credentials grant (RFC 6749 section 4.4), form fields."""

    grant_type: Literal["client_credentials"]
    client_id: str | None = None
    client_secret: str | None = None
    scope: str | None = None
