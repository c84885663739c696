"""``GET /rights/export/{subject}``: the privacy center reads what orders holds about a
subject, with a service token for ``rights.access`` (never exposed by the gateway)."""

from __future__ import annotations

from fastapi import APIRouter

from kit import rights
from kit.app import ContextDep
from kit.db import SessionDep
from services.orders.rights import service
from services.orders.rights.schemas import OrdersExport

router = APIRouter(tags=["rights"])


@router.get(
    "/rights/export/{subject}",
    response_model=OrdersExport,
    summary="Everything orders holds about a subject, for the privacy center's export",
    responses={403: {"description": "not an internal service with service:rights.access"}},
)
async def export(
    *,
    subject: rights.ExportSubject,
    session: SessionDep,
    context: ContextDep,
    actor: rights.ExportCaller,
) -> OrdersExport:
    return await service.export(
        session,
        cipher=context.cipher,
        events=context.events,
        catalogue=context.catalogue,
        actor=actor,
        subject=subject,
    )
