"""Cessation: a purpose (a product or service) stops, or the controller changes by merger,
division, dissolution or bankruptcy. No HTTP here.

- A ceased purpose (policy 2J, OB-2J-1) publishes ``com.signature.consent.purpose.ceased.v1``
  (subject: the cessation id; ``purpose``: the ceased purpose; data: cessation id, purpose,
  effective date, ``deletion_due``; categories: those the catalogue lets the purpose see
  and those the ledger saw processed under it).
  The gateway refuses collection for that purpose from the effective date; each service
  schedules deletion or anonymisation of its data for it by ``deletion_due`` (= the
  effective date). Every user with a ledger entry under the purpose gets a notice.
  Purposes imposed by law (kind ``legal``) cannot cease: the duty outlives the product.
- A change of controller (policy 2H, OB-2H-1; PIPL art. 22) publishes
  ``com.signature.consent.controller.changed.v1`` (ids, kind of change, effective date,
  ``consent_renewal_required``; the recipient's name stays out of Kafka) and tells every
  user with any ledger entry the recipient's name and contact. When the recipient changes
  the original purpose or processing method, the users' consent must be renewed: the notice
  and ``GET /cessations`` say so (``consent_renewal_required``).
- Every cessation is public (``GET /cessations``), which is also the announcement the
  policy speaks of.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit import contracts
from kit.catalogue import Catalogue
from kit.errors import Conflict, DomainError
from kit.ids import new_id
from kit.outbox import EventWriter
from services.consent.incidents.models import Cessation
from services.consent.incidents.notices import Notifier, send_notices
from services.consent.incidents.schemas import (
    CessationCreate,
    CessationView,
    ControllerChangeCreate,
    PurposeCessationCreate,
)
from services.consent.ledger import service as ledger

PURPOSE_CEASED = "com.signature.consent.purpose.ceased.v1"
CONTROLLER_CHANGED = "com.signature.consent.controller.changed.v1"
# Telling users about the service they hold an account for; the catalogue has no purpose
# of its own for it yet.
NOTICE_PURPOSE = "account"


class UnknownPurpose(DomainError):
    status, code, title = 422, "unknown-purpose", "Unknown purpose"


class PurposeCannotCease(DomainError):
    status, code, title = 422, "purpose-cannot-cease", "Purpose imposed by law"


def purpose_categories(catalogue: Catalogue, purpose: str) -> set[str]:
    """The data categories the catalogue lets ``purpose`` see."""
    return {
        policy.category
        for resource in catalogue.resources.values()
        for policy in resource.fields.values()
        if purpose in policy.purposes
    }


def view(cessation: Cessation, catalogue: Catalogue) -> CessationView:
    purpose = cessation.purpose
    known = catalogue.purpose(purpose) if purpose and catalogue.has_purpose(purpose) else None
    ceased = cessation.kind == "purpose_ceased"
    return CessationView.model_validate(
        {
            "id": cessation.id,
            "kind": cessation.kind,
            "purpose": purpose,
            "purpose_description": known.description if known else None,
            "effective_date": cessation.effective_date,
            "deletion_due": cessation.effective_date if ceased else None,
            "change": cessation.change,
            "recipient_name": cessation.recipient_name,
            "recipient_contact": cessation.recipient_contact,
            "consent_renewal_required": cessation.changes_purpose_or_method,
            "reason": cessation.reason,
            "declared_at": cessation.declared_at,
            "notified_users": cessation.notified_users,
        }
    )


def _everyone(subjects: Iterable[str]) -> dict[str, list[str]]:
    return {subject: [] for subject in subjects}


async def _cease_purpose(
    session: AsyncSession,
    *,
    events: EventWriter,
    notifier: Notifier,
    catalogue: Catalogue,
    request: PurposeCessationCreate,
    declared_by: str,
) -> Cessation:
    if not catalogue.has_purpose(request.purpose):
        raise UnknownPurpose(f"not a purpose of the catalogue: {request.purpose}")
    if catalogue.purpose(request.purpose).kind == "legal":
        raise PurposeCannotCease(
            f"{request.purpose} is imposed by law and does not cease with a product"
        )
    existing = await session.scalar(
        select(col(Cessation.id)).where(
            col(Cessation.kind) == "purpose_ceased", col(Cessation.purpose) == request.purpose
        )
    )
    if existing is not None:
        raise Conflict(f"{request.purpose} has already ceased ({existing})")
    cessation = Cessation(
        id=new_id("ces"),
        kind="purpose_ceased",
        purpose=request.purpose,
        effective_date=request.effective_date,
        reason=request.reason,
        declared_by=declared_by,
    )
    session.add(cessation)
    await session.flush()
    events.add(
        session,
        type=PURPOSE_CEASED,
        subject=cessation.id,
        purpose=request.purpose,
        categories=purpose_categories(catalogue, request.purpose)
        | await ledger.categories_for_purpose(session, request.purpose),
        data=contracts.PurposeCeased(
            cessation_id=cessation.id,
            purpose=request.purpose,
            effective_date=request.effective_date.isoformat(),
            deletion_due=request.effective_date.isoformat(),
        ),
    )
    users = await ledger.subjects_with_purpose(session, request.purpose)
    cessation.notified_users = send_notices(
        session,
        notifier=notifier,
        subjects=_everyone(users),
        kind="purpose_ceased",
        reference=cessation.id,
        purpose=NOTICE_PURPOSE,
    )
    return cessation


async def _change_controller(
    session: AsyncSession,
    *,
    events: EventWriter,
    notifier: Notifier,
    request: ControllerChangeCreate,
    declared_by: str,
) -> Cessation:
    cessation = Cessation(
        id=new_id("ces"),
        kind="controller_change",
        change=request.change,
        recipient_name=request.recipient_name,
        recipient_contact=request.recipient_contact,
        changes_purpose_or_method=request.changes_purpose_or_method,
        effective_date=request.effective_date,
        reason=request.reason,
        declared_by=declared_by,
    )
    session.add(cessation)
    await session.flush()
    events.add(
        session,
        type=CONTROLLER_CHANGED,
        subject=cessation.id,
        purpose=NOTICE_PURPOSE,
        data=contracts.ControllerChanged(
            cessation_id=cessation.id,
            change=request.change,
            effective_date=request.effective_date.isoformat(),
            consent_renewal_required=request.changes_purpose_or_method,
        ),
    )
    users = await ledger.all_subjects(session)
    cessation.notified_users = send_notices(
        session,
        notifier=notifier,
        subjects=_everyone(users),
        kind="controller_change",
        reference=cessation.id,
        purpose=NOTICE_PURPOSE,
    )
    return cessation


async def declare_cessation(
    session: AsyncSession,
    *,
    events: EventWriter,
    notifier: Notifier,
    catalogue: Catalogue,
    request: CessationCreate,
    declared_by: str,
) -> CessationView:
    """Declare a ceased purpose or a change of controller, publish it, tell the users."""
    if isinstance(request, PurposeCessationCreate):
        cessation = await _cease_purpose(
            session,
            events=events,
            notifier=notifier,
            catalogue=catalogue,
            request=request,
            declared_by=declared_by,
        )
    else:
        cessation = await _change_controller(
            session, events=events, notifier=notifier, request=request, declared_by=declared_by
        )
    await session.flush()
    return view(cessation, catalogue)


async def list_cessations(session: AsyncSession, *, catalogue: Catalogue) -> list[CessationView]:
    """Every ceased purpose and change of controller, newest first (public)."""
    cessations = await session.scalars(
        select(Cessation).order_by(col(Cessation.declared_at).desc(), col(Cessation.id))
    )
    return [view(cessation, catalogue) for cessation in cessations]
