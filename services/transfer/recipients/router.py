"""Recipient administration (privacy officer) and the disclosure users are shown."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from kit.app import ContextDep
from kit.auth import Principal, Scope, require
from kit.db import SessionDep
from services.transfer.dependencies import RulesDep, TodayDep
from services.transfer.recipients import service
from services.transfer.recipients.schemas import (
    AssessmentIn,
    LegalBasisIn,
    RecipientCreate,
    RecipientDisclosure,
    RecipientHistory,
    RecipientView,
)

router = APIRouter(prefix="/recipients", tags=["recipients"])
Admin = Annotated[Principal, require(Scope.ADMIN_TRANSFERS)]
User = Annotated[Principal, require(Scope.CONSENT_READ)]


@router.post(
    "",
    response_model=RecipientView,
    status_code=status.HTTP_201_CREATED,
    summary="Register an overseas recipient with its legal basis and first assessment",
)
async def register(
    *,
    body: RecipientCreate,
    session: SessionDep,
    context: ContextDep,
    admin: Admin,
    today: TodayDep,
    rules: RulesDep,
) -> RecipientView:
    return await service.register_recipient(
        session,
        events=context.events,
        catalogue=context.catalogue,
        request=body,
        registered_by=admin.subject,
        today=today,
        rules=rules,
    )


@router.get("", response_model=list[RecipientView], summary="Every recipient, or those due")
async def list_recipients(
    session: SessionDep,
    admin: Admin,
    today: TodayDep,
    rules: RulesDep,
    due: Annotated[
        bool, Query(description="only recipients whose basis or assessment is due or lapsed")
    ] = False,
) -> list[RecipientView]:
    return await service.list_recipients(session, due_only=due, today=today, rules=rules)


@router.get("/{recipient_id}", response_model=RecipientView, summary="One recipient")
async def get_recipient(
    recipient_id: str, session: SessionDep, admin: Admin, today: TodayDep, rules: RulesDep
) -> RecipientView:
    return await service.get_recipient(session, recipient_id=recipient_id, today=today, rules=rules)


@router.get(
    "/{recipient_id}/history",
    response_model=RecipientHistory,
    summary="Every legal basis and assessment recorded",
)
async def history(recipient_id: str, session: SessionDep, admin: Admin) -> RecipientHistory:
    return await service.recipient_history(session, recipient_id=recipient_id)


@router.post(
    "/{recipient_id}/legal-bases",
    response_model=RecipientView,
    summary="Record a new legal basis (it becomes the current one)",
)
async def record_basis(
    *,
    recipient_id: str,
    body: LegalBasisIn,
    session: SessionDep,
    context: ContextDep,
    admin: Admin,
    today: TodayDep,
    rules: RulesDep,
) -> RecipientView:
    return await service.record_basis(
        session,
        events=context.events,
        recipient_id=recipient_id,
        basis=body,
        recorded_by=admin.subject,
        today=today,
        rules=rules,
    )


@router.post(
    "/{recipient_id}/assessments",
    response_model=RecipientView,
    summary="Record a periodic assessment of purpose and security capability",
)
async def record_assessment(
    *,
    recipient_id: str,
    body: AssessmentIn,
    session: SessionDep,
    context: ContextDep,
    admin: Admin,
    today: TodayDep,
    rules: RulesDep,
) -> RecipientView:
    return await service.record_assessment(
        session,
        events=context.events,
        recipient_id=recipient_id,
        assessment=body,
        recorded_by=admin.subject,
        today=today,
        rules=rules,
    )


@router.get(
    "/{recipient_id}/disclosure",
    response_model=RecipientDisclosure,
    summary="What the user is told before consenting (shown.recipient of the consent)",
)
async def disclosure(
    recipient_id: str, session: SessionDep, context: ContextDep, user: User
) -> RecipientDisclosure:
    return await service.get_disclosure(
        session, catalogue=context.catalogue, recipient_id=recipient_id
    )
