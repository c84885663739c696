"""Incident, notice, announcement and cessation endpoints.

- ``/incidents`` (``admin:incidents``): record, list, read; ``/incidents/{id}/regulator-report``
- ``/announcements`` (public): incident announcements
- ``/notices/me`` (``consent:read``): the user's notices, with their text
- ``/cessations``: declare (``admin:policy``), list (public)
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response, status

from kit.app import ContextDep
from kit.auth import Principal, Scope, require
from kit.db import SessionDep
from kit.models import utcnow
from kit.pagination import PageLimit, PageOffset
from services.consent.incidents import cessation, notices, service
from services.consent.incidents.dependencies import NotifierDep, SettingsDep
from services.consent.incidents.schemas import (
    AnnouncementView,
    CessationCreate,
    CessationView,
    IncidentCreate,
    IncidentView,
    Notice,
    RegulatorFiling,
    RegulatorReport,
)

router = APIRouter(tags=["incidents"])
IncidentAdmin = Annotated[Principal, require(Scope.ADMIN_INCIDENTS)]
PolicyAdmin = Annotated[Principal, require(Scope.ADMIN_POLICY)]
Reader = Annotated[Principal, require(Scope.CONSENT_READ)]


@router.post(
    "/incidents",
    response_model=IncidentView,
    status_code=status.HTTP_201_CREATED,
    summary="Record a security incident and tell the affected users",
)
async def record_incident(
    body: IncidentCreate,
    session: SessionDep,
    *,
    context: ContextDep,
    settings: SettingsDep,
    notifier: NotifierDep,
    admin: IncidentAdmin,
) -> IncidentView:
    return await service.record_incident(
        session,
        events=context.events,
        notifier=notifier,
        catalogue=context.catalogue,
        announcement_threshold=settings.incident_announcement_threshold,
        request=body,
        recorded_by=admin.subject,
        critical_infrastructure=settings.critical_infrastructure_operator,
    )


@router.get("/incidents", response_model=list[IncidentView], summary="Every incident")
async def list_incidents(session: SessionDep, admin: IncidentAdmin) -> list[IncidentView]:
    return await service.list_incidents(session)


@router.get("/incidents/{incident_id}", response_model=IncidentView, summary="One incident")
async def get_incident(incident_id: str, session: SessionDep, admin: IncidentAdmin) -> IncidentView:
    return await service.get_incident(session, incident_id=incident_id)


@router.get(
    "/incidents/{incident_id}/regulator-report",
    response_model=RegulatorReport,
    summary="The incident report for the regulator (JSON)",
)
async def regulator_report(
    incident_id: str,
    response: Response,
    session: SessionDep,
    context: ContextDep,
    admin: IncidentAdmin,
) -> RegulatorReport:
    report = await service.regulator_report(
        session, catalogue=context.catalogue, incident_id=incident_id
    )
    response.headers["Content-Disposition"] = (
        f'attachment; filename="incident-{report.incident.id}-report.json"'
    )
    return report


@router.post(
    "/incidents/{incident_id}/regulator-filing",
    response_model=IncidentView,
    summary="Record that the regulator report was filed now (OB-L-10)",
)
async def file_regulator_report(
    incident_id: str,
    body: RegulatorFiling,
    session: SessionDep,
    context: ContextDep,
    admin: IncidentAdmin,
) -> IncidentView:
    return await service.file_regulator_report(
        session, events=context.events, incident_id=incident_id, filing=body, now=utcnow()
    )


@router.get(
    "/announcements", response_model=list[AnnouncementView], summary="Public incident notices"
)
async def list_announcements(session: SessionDep) -> list[AnnouncementView]:
    return await service.list_announcements(session)


@router.get("/notices/me", response_model=list[Notice], summary="My notices, newest first")
async def my_notices(
    session: SessionDep,
    context: ContextDep,
    user: Reader,
    limit: PageLimit = 100,
    offset: PageOffset = 0,
) -> list[Notice]:
    return await notices.list_own_notices(
        session, catalogue=context.catalogue, subject=user.subject, limit=limit, offset=offset
    )


@router.post(
    "/cessations",
    response_model=CessationView,
    status_code=status.HTTP_201_CREATED,
    summary="Declare a ceased purpose or a change of controller",
)
async def declare_cessation(
    body: CessationCreate,
    session: SessionDep,
    context: ContextDep,
    notifier: NotifierDep,
    admin: PolicyAdmin,
) -> CessationView:
    return await cessation.declare_cessation(
        session,
        events=context.events,
        notifier=notifier,
        catalogue=context.catalogue,
        request=body,
        declared_by=admin.subject,
    )


@router.get(
    "/cessations", response_model=list[CessationView], summary="Ceased purposes and controllers"
)
async def list_cessations(session: SessionDep, context: ContextDep) -> list[CessationView]:
    return await cessation.list_cessations(session, catalogue=context.catalogue)
