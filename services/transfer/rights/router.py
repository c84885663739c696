"""``GET /rights/export/{subject}``: the privacy center reads what transfer holds about a
subject, with a service token for ``rights.access`` (never exposed by the gateway)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from kit import rights
from kit.app import ContextDep
from kit.auth import Principal, current_principal
from kit.db import SessionDep
from services.transfer.rights import service
from services.transfer.rights.schemas import TransferServiceExport

router = APIRouter(tags=["rights"])


async def rights_service(principal: Annotated[Principal, Depends(current_principal)]) -> str:
    return rights.check_caller(principal)


@router.get(
    "/rights/export/{subject}",
    response_model=TransferServiceExport,
    summary="Every transfer about a subject, for the privacy center's export",
    responses={403: {"description": "not an internal service with service:rights.access"}},
)
async def export(
    *,
    subject: Annotated[str, Path(min_length=1, max_length=40)],
    session: SessionDep,
    context: ContextDep,
    actor: Annotated[str, Depends(rights_service)],
) -> TransferServiceExport:
    return await service.export(
        session,
        events=context.events,
        actor=actor,
        subject=subject,
    )
