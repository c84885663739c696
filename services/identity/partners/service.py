"""Partners: registration with agreement and assessment, re-assessment, revocation, and
the client-credentials grant. No HTTP here.

A partner gets a token only while its assessment passed and is in date (OB-3-4), only for
scopes its kind allows (OB-3-1), and its token carries the purposes it was registered for,
which the gateway binds every request to (OB-3-2).
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit import contracts
from kit.catalogue import Catalogue
from kit.crypto import FieldCipher
from kit.errors import DomainError, NotFound
from kit.ids import new_id
from kit.outbox import EventWriter
from services.identity.config import Settings
from services.identity.models import PartnerClient
from services.identity.partners.schemas import (
    KIND_SCOPES,
    Assessment,
    PartnerCreate,
    PartnerCreated,
    PartnerView,
)
from services.identity.secrets import hash_secret, new_token, verify_secret
from services.identity.tokens.schemas import TokenResponse
from services.identity.tokens.service import (
    InvalidClient,
    InvalidScope,
    UnauthorizedClient,
    issue_partner_token,
)

EVENT_PREFIX = "com.signature.identity.partner"


class UnknownPurpose(DomainError):
    status, code, title = 422, "unknown-purpose", "Unknown purpose"


def _view(partner: PartnerClient) -> PartnerView:
    return PartnerView.model_validate(partner, from_attributes=True)


def assessment_valid(partner: PartnerClient, *, today: date) -> bool:
    return partner.assessment_result == "passed" and partner.assessment_valid_until >= today


async def register_partner(
    session: AsyncSession,
    *,
    events: EventWriter,
    catalogue: Catalogue,
    request: PartnerCreate,
    registered_by: str,
) -> PartnerCreated:
    unknown = [p for p in request.purposes if not catalogue.has_purpose(p)]
    if unknown:
        raise UnknownPurpose(f"purposes not in the catalogue: {', '.join(unknown)}")
    secret = new_token("pcs")
    partner = PartnerClient(
        client_id=new_id("ptn"),
        secret_hash=await hash_secret(secret),
        name=request.name,
        contact=request.contact,
        kind=request.kind,
        agreement_type=request.agreement_type,
        agreement_reference=request.agreement_reference,
        assessment_date=request.assessment.assessed_on,
        assessment_result=request.assessment.result,
        assessment_valid_until=request.assessment.valid_until,
        purposes=sorted(set(request.purposes)),
        scopes=[KIND_SCOPES[request.kind].value],
        created_by=registered_by,
    )
    session.add(partner)
    await session.flush()
    events.add(
        session,
        type=f"{EVENT_PREFIX}.registered.v1",
        subject=partner.client_id,
        purpose="account",
        data=contracts.PartnerRegistered(
            kind=partner.kind,
            name=partner.name,  # an organisation's name: the ledger shows it to users
            agreement_type=partner.agreement_type,
            purposes=partner.purposes,
            by=registered_by,
        ),
    )
    return PartnerCreated(**_view(partner).model_dump(), client_secret=secret)


async def list_partners(session: AsyncSession) -> list[PartnerView]:
    partners = await session.scalars(select(PartnerClient).order_by(col(PartnerClient.created_at)))
    return [_view(partner) for partner in partners]


async def get_partner(session: AsyncSession, *, client_id: str) -> PartnerView:
    partner = await session.get(PartnerClient, client_id)
    if partner is None:
        raise NotFound("no such partner")
    return _view(partner)


async def record_assessment(
    session: AsyncSession,
    *,
    events: EventWriter,
    client_id: str,
    assessment: Assessment,
    assessed_by: str,
) -> PartnerView:
    partner = await session.get(PartnerClient, client_id)
    if partner is None:
        raise NotFound("no such partner")
    partner.assessment_date = assessment.assessed_on
    partner.assessment_result = assessment.result
    partner.assessment_valid_until = assessment.valid_until
    events.add(
        session,
        type=f"{EVENT_PREFIX}.assessed.v1",
        subject=client_id,
        purpose="account",
        data=contracts.PartnerAssessed(
            result=assessment.result,
            valid_until=str(assessment.valid_until),
            by=assessed_by,
        ),
    )
    return _view(partner)


async def revoke_partner(
    session: AsyncSession, *, events: EventWriter, client_id: str, revoked_by: str
) -> PartnerView:
    partner = await session.get(PartnerClient, client_id)
    if partner is None:
        raise NotFound("no such partner")
    partner.status = "revoked"
    events.add(
        session,
        type=f"{EVENT_PREFIX}.revoked.v1",
        subject=client_id,
        purpose="account",
        data=contracts.Revoked(by=revoked_by),
    )
    return _view(partner)


async def client_credentials_token(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    settings: Settings,
    client_id: str,
    client_secret: str,
    scope: str | None,
    today: date,
) -> TokenResponse:
    partner = await session.get(PartnerClient, client_id)
    secret_ok = await verify_secret(client_secret, partner.secret_hash if partner else None)
    if partner is None or not secret_ok or partner.status != "active":
        raise InvalidClient("unknown client, wrong secret, or revoked partner")
    if not assessment_valid(partner, today=today):
        raise UnauthorizedClient("the partner has no passed assessment in date")
    allowed = frozenset(partner.scopes)
    requested = frozenset(scope.split()) if scope else allowed
    if not requested <= allowed:
        raise InvalidScope(
            "requested scopes beyond the partner's: " + " ".join(sorted(requested - allowed))
        )
    return await issue_partner_token(
        session,
        cipher=cipher,
        settings=settings,
        client_id=partner.client_id,
        scopes=requested,
        purposes=partner.purposes,
    )
