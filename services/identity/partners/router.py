"""Partner administration (privacy officer): register, list, re-assess, revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, status

from kit.app import ContextDep
from kit.auth import Principal, Scope, require
from kit.db import SessionDep
from services.identity.partners import service
from services.identity.partners.schemas import (
    Assessment,
    PartnerCreate,
    PartnerCreated,
    PartnerView,
)

router = APIRouter(prefix="/partners", tags=["partners"])
Admin = Annotated[Principal, require(Scope.ADMIN_PARTNERS)]


@router.post(
    "",
    response_model=PartnerCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Register a partner; the client secret is shown this once",
)
async def register(
    body: PartnerCreate, session: SessionDep, context: ContextDep, admin: Admin
) -> PartnerCreated:
    return await service.register_partner(
        session,
        events=context.events,
        catalogue=context.catalogue,
        request=body,
        registered_by=admin.subject,
    )


@router.get("", response_model=list[PartnerView], summary="Every partner")
async def list_partners(session: SessionDep, admin: Admin) -> list[PartnerView]:
    return await service.list_partners(session)


@router.get("/{client_id}", response_model=PartnerView, summary="One partner")
async def get_partner(client_id: str, session: SessionDep, admin: Admin) -> PartnerView:
    return await service.get_partner(session, client_id=client_id)


@router.post(
    "/{client_id}/assessments",
    response_model=PartnerView,
    summary="Record a new assessment of purpose and security capability",
)
async def assess(
    client_id: str, body: Assessment, session: SessionDep, context: ContextDep, admin: Admin
) -> PartnerView:
    return await service.record_assessment(
        session,
        events=context.events,
        client_id=client_id,
        assessment=body,
        assessed_by=admin.subject,
    )


@router.post(
    "/{client_id}/revoke", response_model=PartnerView, summary="Revoke the partner: no new tokens"
)
async def revoke(
    client_id: str, session: SessionDep, context: ContextDep, admin: Admin
) -> PartnerView:
    return await service.revoke_partner(
        session, events=context.events, client_id=client_id, revoked_by=admin.subject
    )
