"""HTTP for consents: thin handlers over :mod:`.service`.

- ``GET  /consents/purposes``               the grantable purposes (public)
- ``POST /consents``                        grant or withdraw one purpose (201 -> receipt);
  scope ``consent:write``
- ``GET  /consents/me``                     the caller's current consents; ``consent:read``
- ``GET  /consents/me/receipts``            the caller's receipts, oldest first
- ``GET  /consents/me/receipts/{id}``       one receipt
- ``POST /wards/{ward_id}/consents``        a guardian grants or withdraws for a minor
- ``GET  /wards/{ward_id}/consents``        the ward's current consents (guardian only)
- ``GET  /wards/{ward_id}/consents/receipts`` the ward's receipts (guardian only)
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter

from kit.app import AppContext, ContextDep
from kit.auth import Principal, Scope, require
from kit.db import SessionDep
from kit.errors import PROBLEM_JSON
from kit.pagination import PageLimit, PageOffset
from services.consent.config import Settings
from services.consent.consents import service
from services.consent.consents.schemas import (
    ConsentChange,
    ConsentPrompt,
    ConsentStateRead,
    GrantablePurpose,
    Receipt,
)

__all__ = ["router"]

router = APIRouter(tags=["consents"])

Writer = Annotated[Principal, require(Scope.CONSENT_WRITE)]
Reader = Annotated[Principal, require(Scope.CONSENT_READ)]

_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}
_CHANGE_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "a minor without the guardian's consent, or not the guardian", **_PROBLEM},
    422: {
        "description": "unknown purpose, a basic or legal purpose (not a consent), nothing "
        "shown, or an incomplete cross-border recipient disclosure",
        **_PROBLEM,
    },
}


def state_topic(context: AppContext) -> str:
    """The compacted consent-state topic, behind the deployment's prefix."""
    settings = context.settings
    assert isinstance(settings, Settings)
    return settings.topic(settings.consent_state_topic)


@router.get(
    "/consents/purposes",
    response_model=list[GrantablePurpose],
    summary="The purposes a user grants or withdraws: additional functions, separate consents",
)
async def list_purposes(context: ContextDep) -> list[GrantablePurpose]:
    return service.grantable_purposes(context.catalogue)


@router.post(
    "/consents",
    status_code=201,
    response_model=Receipt,
    summary="Grant or withdraw one purpose; the receipt is returned",
    responses=_CHANGE_ERRORS,
)
async def change_consent(
    body: ConsentChange,
    session: SessionDep,
    context: ContextDep,
    principal: Writer,
) -> Receipt:
    return await service.change_own_consent(
        session,
        events=context.events,
        catalogue=context.catalogue,
        state_topic=state_topic(context),
        subject=principal.subject,
        channel=principal.client_type,
        minor=principal.minor,
        guardian_consent=principal.guardian_consent,
        change=body,
        token_expires_at=principal.expires_at,
    )


@router.get(
    "/consents/me/prompts",
    response_model=list[ConsentPrompt],
    summary="Which additional purposes an app may ask me about now (a refusal is not asked "
    "again unless the purpose changed)",
)
async def my_prompts(
    session: SessionDep, context: ContextDep, principal: Reader
) -> list[ConsentPrompt]:
    return await service.prompts(session, catalogue=context.catalogue, subject=principal.subject)


@router.get("/consents/me", response_model=ConsentStateRead, summary="My current consents")
async def my_consents(
    session: SessionDep, context: ContextDep, principal: Reader
) -> ConsentStateRead:
    return await service.current_state(
        session, catalogue=context.catalogue, subject=principal.subject
    )


@router.get("/consents/me/receipts", response_model=list[Receipt], summary="My consent receipts")
async def my_receipts(
    session: SessionDep, principal: Reader, limit: PageLimit = 100, offset: PageOffset = 0
) -> list[Receipt]:
    return await service.list_receipts(
        session, subject=principal.subject, limit=limit, offset=offset
    )


@router.get(
    "/consents/me/receipts/{receipt_id}",
    response_model=Receipt,
    summary="One of my consent receipts",
    responses={404: {"description": "no such receipt", **_PROBLEM}},
)
async def my_receipt(receipt_id: str, session: SessionDep, principal: Reader) -> Receipt:
    return await service.get_receipt(session, subject=principal.subject, receipt_id=receipt_id)


@router.post(
    "/wards/{ward_id}/consents",
    status_code=201,
    response_model=Receipt,
    summary="As a minor's guardian, grant or withdraw one purpose for them",
    responses=_CHANGE_ERRORS,
)
async def change_ward_consent(
    ward_id: str,
    body: ConsentChange,
    session: SessionDep,
    context: ContextDep,
    principal: Writer,
) -> Receipt:
    return await service.change_ward_consent(
        session,
        events=context.events,
        catalogue=context.catalogue,
        state_topic=state_topic(context),
        guardian=principal.subject,
        ward=ward_id,
        channel=principal.client_type,
        change=body,
    )


@router.get(
    "/wards/{ward_id}/consents",
    response_model=ConsentStateRead,
    summary="As a minor's guardian, their current consents",
    responses={403: {"description": "not the guardian", **_PROBLEM}},
)
async def ward_consents(
    ward_id: str, session: SessionDep, context: ContextDep, principal: Reader
) -> ConsentStateRead:
    return await service.ward_state(
        session, catalogue=context.catalogue, guardian=principal.subject, ward=ward_id
    )


@router.get(
    "/wards/{ward_id}/consents/receipts",
    response_model=list[Receipt],
    summary="As a minor's guardian, their consent receipts",
    responses={403: {"description": "not the guardian", **_PROBLEM}},
)
async def ward_receipts(
    ward_id: str,
    session: SessionDep,
    principal: Reader,
    limit: PageLimit = 100,
    offset: PageOffset = 0,
) -> list[Receipt]:
    return await service.ward_receipts(
        session, guardian=principal.subject, ward=ward_id, limit=limit, offset=offset
    )
