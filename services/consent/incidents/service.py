"""Security incidents (policy 4 "Response to personal information security incidents",
PIPL art. 57, OB-4-8). No HTTP here.

Recording an incident derives the affected users from the processing ledger: every user
with an entry inside the incident's time window (inclusive) that touched one of the
affected categories (a parent category covers its children) and, when actors are named,
was processed by one of them (a service name or a partner id). When both categories and
actors are given, an entry must match both: the incident concerns those data at those
actors. Each affected user gets a notice (what happened, the possible impact, the
measures taken, advice, remedies, contact; the categories of theirs concerned). When more
users are affected than ``incident_announcement_threshold``, a public announcement
replaces the individual notices (policy 4: "if it is difficult to inform you one by one").
The counts are kept with the incident, so the regulator report says what was known and
done when the incident was recorded.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit import contracts
from kit.catalogue import Catalogue
from kit.errors import Conflict, DomainError, NotFound
from kit.ids import new_id
from kit.models import utcnow
from kit.outbox import EventWriter
from services.consent.incidents.models import IncidentAnnouncement, SecurityIncident
from services.consent.incidents.notices import Notifier, send_notices
from services.consent.incidents.schemas import (
    AffectedCounts,
    AnnouncementRef,
    AnnouncementView,
    IncidentCreate,
    IncidentFacts,
    IncidentView,
    NotificationRecord,
    RegulatorClock,
    RegulatorFiling,
    RegulatorReport,
    ReportStatus,
    TimelineItem,
)
from services.consent.ledger import service as ledger

INCIDENT_RECORDED = "com.signature.consent.incident.recorded.v1"
REPORT_FILED = "com.signature.consent.incident.regulator_report_filed.v1"
#: Hours from discovery to the regulator report (National Cybersecurity Incident Reporting
#: Measures, 2025): 4, or 1 for a critical information infrastructure operator (OB-L-10).
REPORT_HOURS = 4
CII_REPORT_HOURS = 1
NOTICE_PURPOSE = "incident.notification"


class UnknownCategory(DomainError):
    status, code, title = 422, "unknown-category", "Unknown data category"


def _check_categories(catalogue: Catalogue, categories: list[str]) -> None:
    known = [category.id for category in catalogue.data_categories]
    unknown = [c for c in categories if not any(k == c or k.startswith(c + ".") for k in known)]
    if unknown:
        raise UnknownCategory(
            "not a data category of the catalogue: " + ", ".join(unknown),
            extra={"unknown_categories": unknown},
        )


async def _announcement(session: AsyncSession, incident_id: str) -> IncidentAnnouncement | None:
    found: IncidentAnnouncement | None = await session.scalar(
        select(IncidentAnnouncement).where(col(IncidentAnnouncement.incident_id) == incident_id)
    )
    return found


def _ref(announcement: IncidentAnnouncement | None) -> AnnouncementRef | None:
    if announcement is None:
        return None
    return AnnouncementRef(id=announcement.id, published_at=announcement.published_at)


def report_deadline(
    level: str, discovered_at: datetime, *, critical_infrastructure: bool
) -> datetime | None:
    """When a regulator report is due: discovery plus 4 hours (1 for a CII operator) for a
    reportable level; None for a general incident."""
    if level == "general":
        return None
    return discovered_at + timedelta(
        hours=CII_REPORT_HOURS if critical_infrastructure else REPORT_HOURS
    )


def regulator_clock(incident: SecurityIncident, *, now: datetime) -> RegulatorClock:
    """Discovery, the deadline, when it was filed, and whether it is (or was) late."""
    deadline, filed = incident.regulator_deadline, incident.regulator_filed_at
    status: ReportStatus
    if deadline is None:
        status = "not_required"
    elif filed is not None:
        status = "filed" if filed <= deadline else "filed_late"
    else:
        status = "overdue" if now >= deadline else "due"
    return RegulatorClock(
        level=incident.level,
        discovered_at=incident.detected_at or incident.recorded_at,
        deadline=deadline,
        filed_at=filed,
        reference=incident.regulator_reference,
        status=status,
        overdue=status in ("overdue", "filed_late"),
    )


def _view(incident: SecurityIncident, announcement: IncidentAnnouncement | None) -> IncidentView:
    return IncidentView.model_validate(
        {
            **incident.model_dump(
                exclude={
                    "recorded_by",
                    "level",
                    "regulator_deadline",
                    "regulator_filed_at",
                    "regulator_reference",
                },
            ),
            "announcement": _ref(announcement),
            "regulator": regulator_clock(incident, now=utcnow()),
        }
    )


async def record_incident(
    session: AsyncSession,
    *,
    events: EventWriter,
    notifier: Notifier,
    catalogue: Catalogue,
    announcement_threshold: int,
    request: IncidentCreate,
    recorded_by: str,
    critical_infrastructure: bool = False,
) -> IncidentView:
    """Record the incident, find the affected users in the ledger, and tell them:
    individually, or by a public announcement above the threshold."""
    categories = sorted(set(request.categories))
    actors = sorted(set(request.actors))
    _check_categories(catalogue, categories)
    affected = await ledger.affected_subjects(
        session,
        start=request.window_start,
        end=request.window_end,
        categories=categories,
        actors=actors,
    )
    per_category: Counter[str] = Counter()
    for matched in affected.values():
        per_category.update(matched)
    announce = len(affected) > announcement_threshold
    incident = SecurityIncident(
        id=new_id("inc"),
        title=request.title,
        what_happened=request.what_happened,
        impact=request.impact,
        measures=request.measures,
        advice=request.advice,
        remedies=request.remedies,
        contact=request.contact,
        window_start=request.window_start,
        window_end=request.window_end,
        detected_at=request.detected_at,
        categories=categories,
        actors=actors,
        affected_users=len(affected),
        users_per_category=dict(sorted(per_category.items())),
        delivery="announcement" if announce else "individual",
        recorded_by=recorded_by,
        level=request.level,
    )
    incident.regulator_deadline = report_deadline(
        request.level,
        request.detected_at or incident.recorded_at,
        critical_infrastructure=critical_infrastructure,
    )
    session.add(incident)
    await session.flush()
    announcement: IncidentAnnouncement | None = None
    if announce:
        announcement = IncidentAnnouncement(id=new_id("ann"), incident_id=incident.id)
        session.add(announcement)
    else:
        incident.notices_sent = send_notices(
            session,
            notifier=notifier,
            subjects=affected,
            kind="incident",
            reference=incident.id,
            purpose=NOTICE_PURPOSE,
        )
    events.add(
        session,
        type=INCIDENT_RECORDED,
        subject=incident.id,
        purpose=NOTICE_PURPOSE,
        categories=categories,
        data=contracts.IncidentRecorded(
            incident_id=incident.id,
            affected_users=incident.affected_users,
            delivery=incident.delivery,
            notices_sent=incident.notices_sent,
            level=incident.level,
            regulator_deadline=(
                incident.regulator_deadline.isoformat() if incident.regulator_deadline else None
            ),
        ),
    )
    await session.flush()
    return _view(incident, announcement)


class ReportNotRequired(Conflict):
    code, title = "report-not-required", "No regulator report for this incident"


class ReportAlreadyFiled(Conflict):
    code, title = "report-already-filed", "Regulator report already filed"


async def file_regulator_report(
    session: AsyncSession,
    *,
    events: EventWriter,
    incident_id: str,
    filing: RegulatorFiling,
    now: datetime,
) -> IncidentView:
    """Record that the regulator report was filed now, with the regulator's receipt."""
    incident = await _incident(session, incident_id)
    if incident.regulator_deadline is None:
        raise ReportNotRequired("a general incident is not reported to the regulator")
    if incident.regulator_filed_at is not None:
        raise ReportAlreadyFiled("the report was filed already")
    incident.regulator_filed_at = now
    incident.regulator_reference = filing.reference
    clock = regulator_clock(incident, now=now)
    events.add(
        session,
        type=REPORT_FILED,
        subject=incident.id,
        purpose=NOTICE_PURPOSE,
        data=contracts.IncidentReportFiled(
            incident_id=incident.id,
            deadline=incident.regulator_deadline.isoformat(),
            filed_at=now.isoformat(),
            late=clock.overdue,
        ),
    )
    await session.flush()
    return _view(incident, await _announcement(session, incident_id))


async def _incident(session: AsyncSession, incident_id: str) -> SecurityIncident:
    incident = await session.get(SecurityIncident, incident_id)
    if incident is None:
        raise NotFound("no such incident")
    return incident


async def get_incident(session: AsyncSession, *, incident_id: str) -> IncidentView:
    incident = await _incident(session, incident_id)
    return _view(incident, await _announcement(session, incident_id))


async def list_incidents(session: AsyncSession) -> list[IncidentView]:
    incidents = list(
        await session.scalars(
            select(SecurityIncident).order_by(col(SecurityIncident.recorded_at).desc())
        )
    )
    announcements = {
        item.incident_id: item
        for item in await session.scalars(
            select(IncidentAnnouncement).where(
                col(IncidentAnnouncement.incident_id).in_([i.id for i in incidents])
            )
        )
    }
    return [_view(incident, announcements.get(incident.id)) for incident in incidents]


async def list_announcements(session: AsyncSession) -> list[AnnouncementView]:
    """Every public incident announcement, newest first."""
    rows = (
        await session.execute(
            select(IncidentAnnouncement, SecurityIncident)
            .join(
                SecurityIncident,
                col(SecurityIncident.id) == col(IncidentAnnouncement.incident_id),
            )
            .order_by(col(IncidentAnnouncement.published_at).desc())
        )
    ).all()
    return [
        AnnouncementView(
            id=announcement.id,
            incident_id=incident.id,
            published_at=announcement.published_at,
            title=incident.title,
            what_happened=incident.what_happened,
            impact=incident.impact,
            window_start=incident.window_start,
            window_end=incident.window_end,
            categories=incident.categories,
            measures=incident.measures,
            advice=incident.advice,
            remedies=incident.remedies,
            contact=incident.contact,
        )
        for announcement, incident in rows
    ]


def _sensitive(catalogue: Catalogue, categories: set[str]) -> list[str]:
    found: list[str] = []
    for category in sorted(categories):
        try:
            if catalogue.category(category).sensitive:
                found.append(category)
        except KeyError:
            continue
    return found


async def regulator_report(
    session: AsyncSession, *, catalogue: Catalogue, incident_id: str
) -> RegulatorReport:
    """The report for the regulator: the facts, the counts derived from the ledger, how
    users were told, and the timeline."""
    incident = await _incident(session, incident_id)
    announcement = await _announcement(session, incident_id)
    generated_at = utcnow()
    timeline = [TimelineItem(at=incident.window_start, event="incident began")]
    if incident.detected_at is not None:
        timeline.append(TimelineItem(at=incident.detected_at, event="incident detected"))
    if incident.regulator_deadline is not None:
        timeline.append(TimelineItem(at=incident.regulator_deadline, event="regulator report due"))
    if incident.regulator_filed_at is not None:
        timeline.append(
            TimelineItem(at=incident.regulator_filed_at, event="regulator report filed")
        )
    timeline.append(TimelineItem(at=incident.window_end, event="incident ended or contained"))
    timeline.append(
        TimelineItem(
            at=incident.recorded_at,
            event=f"incident recorded; {incident.affected_users} affected users found in the "
            "processing ledger",
        )
    )
    if announcement is not None:
        timeline.append(
            TimelineItem(at=announcement.published_at, event="public announcement published")
        )
    else:
        timeline.append(
            TimelineItem(
                at=incident.recorded_at,
                event=f"{incident.notices_sent} individual notices sent to affected users",
            )
        )
    timeline.append(TimelineItem(at=generated_at, event="report generated"))
    timeline.sort(key=lambda item: item.at)
    return RegulatorReport(
        generated_at=generated_at,
        incident=IncidentFacts(
            id=incident.id,
            title=incident.title,
            what_happened=incident.what_happened,
            impact=incident.impact,
            window_start=incident.window_start,
            window_end=incident.window_end,
            detected_at=incident.detected_at,
            recorded_at=incident.recorded_at,
            categories=incident.categories,
            sensitive_categories=_sensitive(
                catalogue, {*incident.categories, *incident.users_per_category}
            ),
            actors=incident.actors,
            measures=incident.measures,
            advice=incident.advice,
            remedies=incident.remedies,
            contact=incident.contact,
        ),
        affected=AffectedCounts(
            users=incident.affected_users, per_category=incident.users_per_category
        ),
        regulator=regulator_clock(incident, now=generated_at),
        notification=NotificationRecord.model_validate(
            {
                "delivery": incident.delivery,
                "notices_sent": incident.notices_sent,
                "announcement": _ref(announcement),
            }
        ),
        timeline=timeline,
    )
