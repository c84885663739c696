"""Notices to users: one row per user and the notification event that tells their app,
and the user's view of their notices. No HTTP here.

A notice is sent as ``com.signature.consent.notification.v1`` on the notifications topic,
subject = the user, ``data`` = the incident or cessation id and the notice kind only. The
text never travels through Kafka: the app fetches it from ``GET /notices/me``, which
composes it from the incident or cessation the notice refers to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit import contracts
from kit.catalogue import Catalogue
from kit.events import new_event
from kit.ids import new_id
from kit.outbox import EventWriter, add_to_outbox
from services.consent.incidents.models import Cessation, SecurityIncident, SubjectNotice
from services.consent.incidents.schemas import (
    ControllerChangeNotice,
    IncidentNotice,
    Notice,
    PurposeCeasedNotice,
)

NOTIFICATION_EVENT = "com.signature.consent.notification.v1"
NoticeKind = Literal["incident", "purpose_ceased", "controller_change"]


@dataclass(frozen=True)
class Notifier:
    """Where notification events go: the app's event source, the notifications topic."""

    events: EventWriter
    topic: str


def send_notices(
    session: AsyncSession,
    *,
    notifier: Notifier,
    subjects: Mapping[str, Iterable[str]],
    kind: NoticeKind,
    reference: str,
    purpose: str,
) -> int:
    """A notice row and a notification event for each subject (with the categories of
    theirs that the notice concerns); returns how many were sent."""
    reference_key = "incident_id" if kind == "incident" else "cessation_id"
    sent = 0
    for subject in sorted(subjects):
        event = new_event(
            source=notifier.events.source,
            type=NOTIFICATION_EVENT,
            subject=subject,
            purpose=purpose,
            data=contracts.NotificationSent.model_validate(
                {reference_key: reference, "kind": kind}
            ),
            personal_fields=notifier.events.personal_fields,
        )
        add_to_outbox(session, event, topic=notifier.topic)
        session.add(
            SubjectNotice(
                id=new_id("ntc"),
                subject=subject,
                kind=kind,
                reference=reference,
                categories=sorted(set(subjects[subject])),
                event_id=event.id,
            )
        )
        sent += 1
    return sent


def _incident_notice(notice: SubjectNotice, incident: SecurityIncident) -> IncidentNotice:
    return IncidentNotice(
        id=notice.id,
        created_at=notice.created_at,
        incident_id=incident.id,
        title=incident.title,
        what_happened=incident.what_happened,
        impact=incident.impact,
        window_start=incident.window_start,
        window_end=incident.window_end,
        your_categories=notice.categories,
        measures=incident.measures,
        advice=incident.advice,
        remedies=incident.remedies,
        contact=incident.contact,
    )


def _cessation_notice(
    notice: SubjectNotice, cessation: Cessation, catalogue: Catalogue
) -> PurposeCeasedNotice | ControllerChangeNotice:
    if cessation.kind == "purpose_ceased":
        purpose = cessation.purpose or ""
        known = catalogue.purpose(purpose) if catalogue.has_purpose(purpose) else None
        return PurposeCeasedNotice(
            id=notice.id,
            created_at=notice.created_at,
            cessation_id=cessation.id,
            purpose=purpose,
            purpose_description=known.description if known else None,
            effective_date=cessation.effective_date,
            deletion_due=cessation.effective_date,
            reason=cessation.reason,
        )
    return ControllerChangeNotice.model_validate(
        {
            "id": notice.id,
            "created_at": notice.created_at,
            "cessation_id": cessation.id,
            "change": cessation.change,
            "recipient_name": cessation.recipient_name,
            "recipient_contact": cessation.recipient_contact,
            "effective_date": cessation.effective_date,
            "consent_renewal_required": cessation.changes_purpose_or_method,
            "reason": cessation.reason,
        }
    )


async def list_own_notices(
    session: AsyncSession,
    *,
    catalogue: Catalogue,
    subject: str,
    limit: int | None = 100,
    offset: int = 0,
) -> list[Notice]:
    """The subject's notices, newest first, with their full text; a page of ``limit``
    (None: all of them, for the access export)."""
    notices = list(
        await session.scalars(
            select(SubjectNotice)
            .where(col(SubjectNotice.subject) == subject)
            .order_by(col(SubjectNotice.created_at).desc(), col(SubjectNotice.id))
            .limit(limit)
            .offset(offset)
        )
    )
    references = {notice.reference for notice in notices}
    incidents = {
        item.id: item
        for item in await session.scalars(
            select(SecurityIncident).where(col(SecurityIncident.id).in_(references))
        )
    }
    cessations = {
        item.id: item
        for item in await session.scalars(
            select(Cessation).where(col(Cessation.id).in_(references))
        )
    }
    views: list[Notice] = []
    for notice in notices:
        if notice.kind == "incident" and notice.reference in incidents:
            views.append(_incident_notice(notice, incidents[notice.reference]))
        elif notice.reference in cessations:
            views.append(_cessation_notice(notice, cessations[notice.reference], catalogue))
    return views
