"""Rights-request endpoints: users file and follow their requests, take their export;
the privacy officer lists open and overdue ones; a participant service (or the officer)
reads the corrections it is asked to make. ``export_router``: the privacy center's own
part of the export (``GET /rights/export/{subject}``), read by the export like every other
participant's, with a service token for ``rights.access`` (never exposed by the gateway)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status

from kit import rights
from kit.app import AppContext, ContextDep, app_context
from kit.auth import InsufficientScope, Principal, Scope, current_principal, require
from kit.db import SessionDep
from kit.models import utcnow
from kit.pagination import PageLimit, PageOffset
from kit.restriction import TOPIC as RESTRICTIONS_TOPIC
from services.consent.config import Settings
from services.consent.rights import service
from services.consent.rights.export import RightsExporter
from services.consent.rights.schemas import (
    ConsentServiceExport,
    Explanation,
    ExportDocument,
    PortabilityReceipt,
    RequestStatus,
    RightsRequestAdminView,
    RightsRequestCreate,
    RightsRequestView,
    RightsStatistics,
    ServiceCorrections,
)

router = APIRouter(prefix="/rights-requests", tags=["rights"])
export_router = APIRouter(tags=["rights"])
Writer = Annotated[Principal, require(Scope.CONSENT_WRITE)]
Reader = Annotated[Principal, require(Scope.CONSENT_READ)]
Officer = Annotated[Principal, require(Scope.ADMIN_RIGHTS)]


async def consent_settings(context: Annotated[AppContext, Depends(app_context)]) -> Settings:
    assert isinstance(context.settings, Settings)
    return context.settings


async def rights_exporter(request: Request) -> RightsExporter | None:
    """``app.state.rights_exporter``, set at start-up with a service token (see ``export``);
    None until then."""
    exporter = getattr(request.app.state, "rights_exporter", None)
    return exporter if isinstance(exporter, RightsExporter) else None


async def corrections_reader(
    principal: Annotated[Principal, Depends(current_principal)],
) -> str:
    """Who reads corrections: an internal service under ``rights.access`` (its client id;
    checked like the export's caller) or a privacy officer (``admin:rights``)."""
    if principal.kind == "service":
        return rights.check_caller(principal)
    if not principal.has(Scope.ADMIN_RIGHTS):
        raise InsufficientScope([Scope.ADMIN_RIGHTS])
    return principal.subject


SettingsDep = Annotated[Settings, Depends(consent_settings)]
ExporterDep = Annotated[RightsExporter | None, Depends(rights_exporter)]


@router.post(
    "",
    response_model=RightsRequestView,
    status_code=status.HTTP_202_ACCEPTED,
    summary="File a rights request: access, correction, deletion, withdraw_all, "
    "restriction, explanation or portability",
)
async def file_request(
    body: RightsRequestCreate,
    session: SessionDep,
    context: ContextDep,
    settings: SettingsDep,
    user: Writer,
) -> RightsRequestView:
    return await service.file_request(
        session,
        cipher=context.cipher,
        events=context.events,
        participants=settings.rights_participants,
        working_days=settings.rights_deadline_working_days,
        subject=user.subject,
        request=body,
        now=utcnow(),
        catalogue=context.catalogue,
        restrictions_topic=settings.topic(RESTRICTIONS_TOPIC),
        plain_http_hosts=settings.portability_plain_http_hosts,
    )


@router.get("/me", response_model=list[RightsRequestView], summary="My rights requests")
async def my_requests(
    session: SessionDep, user: Reader, limit: PageLimit = 100, offset: PageOffset = 0
) -> list[RightsRequestView]:
    return await service.list_own_requests(
        session, subject=user.subject, now=utcnow(), limit=limit, offset=offset
    )


@router.get(
    "",
    response_model=list[RightsRequestAdminView],
    summary="Rights requests by status (default: every unfinished one)",
)
async def list_requests(
    session: SessionDep,
    officer: Officer,
    status: RequestStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[RightsRequestAdminView]:
    return await service.list_requests(session, status=status, now=utcnow(), limit=limit)


@router.get(
    "/statistics",
    response_model=RightsStatistics,
    summary="Rights-request statistics of a year, per kind, for the yearly report",
)
async def statistics(
    session: SessionDep,
    settings: SettingsDep,
    officer: Officer,
    year: Annotated[int, Query(ge=2000, le=9999, description="year of filing, China time")],
) -> RightsStatistics:
    return await service.statistics(
        session,
        year=year,
        deadline_working_days=settings.rights_deadline_working_days,
        now=utcnow(),
    )


@router.get(
    "/{request_id}",
    response_model=RightsRequestView,
    summary="One of my rights requests, with each service's answer",
)
async def get_request(
    request_id: str, session: SessionDep, context: ContextDep, user: Reader
) -> RightsRequestView:
    return await service.get_own_request(
        session, cipher=context.cipher, subject=user.subject, request_id=request_id, now=utcnow()
    )


@router.get(
    "/{request_id}/export",
    response_model=ExportDocument,
    summary="The data every service holds about me (an access request)",
)
async def export(
    request_id: str,
    session: SessionDep,
    context: ContextDep,
    exporter: ExporterDep,
    user: Reader,
) -> ExportDocument:
    return await service.export_request(
        session,
        exporter=exporter,
        events=context.events,
        subject=user.subject,
        request_id=request_id,
        now=utcnow(),
    )


@router.get(
    "/{request_id}/corrections/{service_name}",
    response_model=ServiceCorrections,
    summary="The corrections one service is asked to make",
    responses={403: {"description": "neither admin:rights nor a service for rights.access"}},
)
async def corrections(
    request_id: str,
    service_name: str,
    session: SessionDep,
    context: ContextDep,
    reader: Annotated[str, Depends(corrections_reader)],
) -> ServiceCorrections:
    return await service.corrections_for_service(
        session,
        cipher=context.cipher,
        events=context.events,
        request_id=request_id,
        service=service_name,
        reader=reader,
    )


@export_router.get(
    "/rights/export/{subject}",
    response_model=ConsentServiceExport,
    summary="Everything the privacy center holds about a subject, for the access export",
    responses={403: {"description": "not an internal service with service:rights.access"}},
)
async def own_export(
    *,
    subject: rights.ExportSubject,
    session: SessionDep,
    context: ContextDep,
    actor: rights.ExportCaller,
) -> ConsentServiceExport:
    return await service.export_subject(
        session,
        cipher=context.cipher,
        events=context.events,
        catalogue=context.catalogue,
        actor=actor,
        subject=subject,
        now=utcnow(),
    )


@router.post(
    "/{request_id}/lift",
    response_model=RightsRequestView,
    summary="Lift my restriction: processing resumes",
    responses={409: {"description": "not a restriction, or lifted already"}},
)
async def lift(
    request_id: str, session: SessionDep, context: ContextDep, settings: SettingsDep, user: Writer
) -> RightsRequestView:
    return await service.lift_restriction(
        session,
        cipher=context.cipher,
        events=context.events,
        topic=settings.topic(RESTRICTIONS_TOPIC),
        subject=user.subject,
        request_id=request_id,
        now=utcnow(),
    )


@router.get(
    "/{request_id}/explanation",
    response_model=Explanation,
    summary="How my data is processed: which, for what, by whom, on which basis, how long",
    responses={409: {"description": "not an explanation request"}},
)
async def explanation(
    request_id: str, session: SessionDep, context: ContextDep, user: Reader
) -> Explanation:
    return await service.explain(
        session,
        events=context.events,
        catalogue=context.catalogue,
        subject=user.subject,
        request_id=request_id,
        now=utcnow(),
    )


@router.post(
    "/{request_id}/delivery",
    response_model=PortabilityReceipt,
    summary="Deliver my portable data to the processor I named (sign in again first)",
    responses={
        401: {"description": "sign in again: the copy needs a recent password sign-in"},
        409: {"description": "not a portability request"},
        502: {"description": "the destination did not take the copy"},
    },
)
async def delivery(
    *,
    request_id: str,
    session: SessionDep,
    context: ContextDep,
    settings: SettingsDep,
    exporter: ExporterDep,
    user: Writer,
) -> PortabilityReceipt:
    return await service.port_request(
        session,
        exporter=exporter,
        events=context.events,
        catalogue=context.catalogue,
        subject=user.subject,
        request_id=request_id,
        auth_time=user.auth_time,
        reverify_within_s=settings.portability_reverify_s,
        timeout_s=settings.portability_timeout_s,
        now=utcnow(),
    )
