"""``GET /rights/export/{subject}``: the privacy center reads what transfer holds about a
subject, with a service token for ``rights.access`` (never exposed by the gateway)."""

from __future__ import annotations

from fastapi import APIRouter

from kit import rights
from kit.app import ContextDep
from kit.db import SessionDep
from services.transfer.rights import service
from services.transfer.rights.schemas import TransferServiceExport

router = APIRouter(tags=["rights"])


@router.get(
    "/rights/export/{subject}",
    response_model=TransferServiceExport,
    summary="Every transfer about a subject, for the privacy center's export",
    responses={403: {"description": "not an internal service with service:rights.access"}},
)
async def export(
    *,
    subject: rights.ExportSubject,
    session: SessionDep,
    context: ContextDep,
    actor: rights.ExportCaller,
) -> TransferServiceExport:
    return await service.export(
        session,
        events=context.events,
        actor=actor,
        subject=subject,
    )
