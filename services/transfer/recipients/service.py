"""Recipients: registration, legal bases, assessments, what is due, the user disclosure.
No HTTP here.

A recipient may receive data only while (OB-4-6, OB-3-4):

- its current legal basis (the newest recorded) exists and its review date has not passed;
- its newest assessment passed and is not older than the assessment interval.

:func:`eligibility` says so, with the reasons when not; the transfers check it before
anything leaves. The data categories a recipient may receive are catalogue ids that the
purpose ``cross_border.transfer`` may see in ``orders.order``: the catalogue decides what
may ever go abroad, the registration narrows it per recipient (OB-4-4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit import contracts, workdays
from kit.catalogue import Catalogue
from kit.consent_state import CROSS_BORDER_PURPOSE
from kit.errors import DomainError, NotFound
from kit.ids import new_id
from kit.outbox import EventWriter
from services.transfer.models import LegalBasis, Recipient, RecipientAssessment
from services.transfer.recipients.schemas import (
    AssessmentIn,
    AssessmentView,
    LegalBasisIn,
    LegalBasisView,
    RecipientCreate,
    RecipientDisclosure,
    RecipientHistory,
    RecipientView,
    security_assessment_expiry,
)
from services.transfer.transfers.package import InvalidPublicKey, load_recipient_key

EVENT_PREFIX: Final = "com.signature.transfer.recipient"
#: The resource whose fields a transfer carries (the order's delivery data, policy 4).
ORDER_RESOURCE: Final = "orders.order"


class UnknownCategory(DomainError):
    status, code, title = 422, "unknown-category", "Unknown data category"


class CategoryNotTransferable(DomainError):
    status, code, title = 422, "category-not-transferable", "Category may not go abroad"


class InvalidRecipientKey(DomainError):
    status, code, title = 422, "invalid-public-key", "Invalid public key"


@dataclass(frozen=True)
class ReviewRules:
    """How early a review is due, and how old an assessment may be."""

    warning_days: int = 30
    assessment_interval_days: int = 365
    #: a security assessment's renewal is flagged this many working days before it lapses
    security_assessment_renewal_working_days: int = 60


@dataclass(frozen=True)
class Eligibility:
    """Whether a recipient may receive data today; the basis it would receive under."""

    basis: LegalBasis | None
    assessment: RecipientAssessment | None
    blocked_because: tuple[str, ...]
    due: tuple[str, ...]

    @property
    def may_receive(self) -> bool:
        return not self.blocked_because


def transferable_categories(catalogue: Catalogue) -> frozenset[str]:
    """The data categories ``cross_border.transfer`` may see in an order: the most that
    may ever leave the country."""
    return frozenset(
        catalogue.field_policy(ORDER_RESOURCE, name).category
        for name in catalogue.visible_fields(ORDER_RESOURCE, CROSS_BORDER_PURPOSE)
    )


def _check_categories(catalogue: Catalogue, categories: Sequence[str]) -> list[str]:
    known = {category.id for category in catalogue.data_categories}
    unknown = sorted(set(categories) - known)
    if unknown:
        raise UnknownCategory(
            f"not catalogue data categories: {', '.join(unknown)}", extra={"unknown": unknown}
        )
    allowed = transferable_categories(catalogue)
    outside = sorted(set(categories) - allowed)
    if outside:
        raise CategoryNotTransferable(
            f"the catalogue lets {CROSS_BORDER_PURPOSE} carry only "
            f"{', '.join(sorted(allowed))}; refused: {', '.join(outside)}",
            extra={"refused": outside, "transferable": sorted(allowed)},
        )
    return sorted(set(categories))


async def _current_basis(session: AsyncSession, recipient_id: str) -> LegalBasis | None:
    result = await session.scalars(
        select(LegalBasis)
        .where(col(LegalBasis.recipient_id) == recipient_id)
        .order_by(col(LegalBasis.recorded_at).desc(), col(LegalBasis.id).desc())
        .limit(1)
    )
    return result.first()


async def _latest_assessment(
    session: AsyncSession, recipient_id: str
) -> RecipientAssessment | None:
    result = await session.scalars(
        select(RecipientAssessment)
        .where(col(RecipientAssessment.recipient_id) == recipient_id)
        .order_by(
            col(RecipientAssessment.assessed_on).desc(),
            col(RecipientAssessment.recorded_at).desc(),
        )
        .limit(1)
    )
    return result.first()


async def eligibility(
    session: AsyncSession, recipient_id: str, *, today: date, rules: ReviewRules
) -> Eligibility:
    """Whether the recipient may receive data ``today``, and what is due soon."""
    basis = await _current_basis(session, recipient_id)
    assessment = await _latest_assessment(session, recipient_id)
    blocked: list[str] = []
    due: list[str] = []
    soon = today + timedelta(days=rules.warning_days)
    if basis is None:
        blocked.append("legal_basis_missing")
        due.append("legal_basis_missing")
    else:
        if basis.review_due < today:
            blocked.append("legal_basis_past_review")
        if basis.review_due <= soon:
            due.append("legal_basis_review_due")
        if basis.kind == "security_assessment":
            # OB-L-8: valid 3 years; renewal flagged 60 working days before; then it stops.
            expiry = security_assessment_expiry(basis.decided_on)
            if today >= expiry:
                blocked.append("security_assessment_lapsed")
                due.append("security_assessment_lapsed")
            elif (
                workdays.working_days_between(today, expiry)
                <= rules.security_assessment_renewal_working_days
            ):
                due.append("security_assessment_renewal_due")
    if assessment is None:
        blocked.append("assessment_missing")
        due.append("assessment_missing")
    else:
        if assessment.result != "passed":
            blocked.append("assessment_failed")
            due.append("assessment_failed")
        next_assessment = assessment.assessed_on + timedelta(days=rules.assessment_interval_days)
        if next_assessment < today:
            blocked.append("assessment_overdue")
        if next_assessment <= soon:
            due.append("assessment_due")
    return Eligibility(
        basis=basis, assessment=assessment, blocked_because=tuple(blocked), due=tuple(due)
    )


def _basis_view(basis: LegalBasis) -> LegalBasisView:
    return LegalBasisView.model_validate(basis, from_attributes=True)


def _assessment_view(assessment: RecipientAssessment) -> AssessmentView:
    return AssessmentView.model_validate(assessment, from_attributes=True)


def _view(recipient: Recipient, state: Eligibility) -> RecipientView:
    return RecipientView(
        id=recipient.id,
        legal_name=recipient.legal_name,
        contact=recipient.contact,
        country_region=recipient.country_region,
        purpose=recipient.purpose,
        processing_method=recipient.processing_method,
        data_categories=list(recipient.data_categories),
        how_to_exercise_rights=recipient.how_to_exercise_rights,
        dpa_reference=recipient.dpa_reference,
        key_type="rsa" if recipient.key_type == "rsa" else "x25519",
        key_fingerprint=recipient.key_fingerprint,
        delivery="kafka" if recipient.delivery == "kafka" else "https",
        endpoint_url=recipient.endpoint_url,
        cross_border_logistics=recipient.cross_border_logistics,
        goods_ids=list(recipient.goods_ids),
        legal_basis=_basis_view(state.basis) if state.basis else None,
        latest_assessment=_assessment_view(state.assessment) if state.assessment else None,
        may_receive=state.may_receive,
        blocked_because=list(state.blocked_because),
        due=list(state.due),
        security_assessment_expires_on=(
            security_assessment_expiry(state.basis.decided_on)
            if state.basis is not None and state.basis.kind == "security_assessment"
            else None
        ),
        created_at=recipient.created_at,
    )


async def _recipient(session: AsyncSession, recipient_id: str) -> Recipient:
    recipient = await session.get(Recipient, recipient_id)
    if recipient is None:
        raise NotFound("no such recipient")
    return recipient


async def get_recipient_row(session: AsyncSession, recipient_id: str) -> Recipient:
    """The recipient's row (for the transfers domain); :class:`NotFound` if none."""
    return await _recipient(session, recipient_id)


def _add_basis(
    session: AsyncSession, recipient_id: str, basis: LegalBasisIn, recorded_by: str
) -> LegalBasis:
    row = LegalBasis(
        id=new_id("lgb"),
        recipient_id=recipient_id,
        kind=basis.kind,
        reference=basis.reference,
        decided_on=basis.decided_on,
        review_due=basis.review_due,
        recorded_by=recorded_by,
    )
    session.add(row)
    return row


def _add_assessment(
    session: AsyncSession, recipient_id: str, assessment: AssessmentIn, recorded_by: str
) -> RecipientAssessment:
    row = RecipientAssessment(
        id=new_id("asm"),
        recipient_id=recipient_id,
        assessed_on=assessment.assessed_on,
        result=assessment.result,
        notes=assessment.notes,
        recorded_by=recorded_by,
    )
    session.add(row)
    return row


async def register_recipient(
    session: AsyncSession,
    *,
    events: EventWriter,
    catalogue: Catalogue,
    request: RecipientCreate,
    registered_by: str,
    today: date,
    rules: ReviewRules,
) -> RecipientView:
    categories = _check_categories(catalogue, request.data_categories)
    try:
        key = load_recipient_key(request.public_key_pem)
    except InvalidPublicKey as exc:
        raise InvalidRecipientKey(str(exc)) from exc
    recipient = Recipient(
        id=new_id("rcp"),
        legal_name=request.legal_name,
        contact=request.contact,
        country_region=request.country_region,
        purpose=request.purpose,
        processing_method=request.processing_method,
        data_categories=categories,
        how_to_exercise_rights=request.how_to_exercise_rights,
        dpa_reference=request.dpa_reference,
        public_key_pem=request.public_key_pem.strip() + "\n",
        key_type=key.key_type,
        key_fingerprint=key.fingerprint,
        delivery=request.delivery,
        endpoint_url=request.endpoint_url,
        cross_border_logistics=request.cross_border_logistics,
        goods_ids=list(request.goods_ids),
        created_by=registered_by,
    )
    session.add(recipient)
    await session.flush()
    basis = _add_basis(session, recipient.id, request.legal_basis, registered_by)
    _add_assessment(session, recipient.id, request.assessment, registered_by)
    await session.flush()
    events.add(
        session,
        type=f"{EVENT_PREFIX}.registered.v1",
        subject=recipient.id,
        purpose=CROSS_BORDER_PURPOSE,
        data=contracts.RecipientRegistered(
            legal_name=recipient.legal_name,  # an organisation: the ledger shows it to users
            delivery=recipient.delivery,
            key_type=recipient.key_type,
            basis_kind=basis.kind,
            review_due=basis.review_due.isoformat(),
            assessment_result=request.assessment.result,
            by=registered_by,
        ),
        categories=categories,
    )
    return _view(recipient, await eligibility(session, recipient.id, today=today, rules=rules))


async def list_recipients(
    session: AsyncSession, *, due_only: bool, today: date, rules: ReviewRules
) -> list[RecipientView]:
    """Every recipient; with ``due_only``, those whose basis or assessment is due (soon,
    or already: they may be blocked)."""
    views: list[RecipientView] = []
    for recipient in await session.scalars(
        select(Recipient).order_by(col(Recipient.created_at), col(Recipient.id))
    ):
        state = await eligibility(session, recipient.id, today=today, rules=rules)
        if due_only and not state.due and state.may_receive:
            continue
        views.append(_view(recipient, state))
    return views


async def get_recipient(
    session: AsyncSession, *, recipient_id: str, today: date, rules: ReviewRules
) -> RecipientView:
    recipient = await _recipient(session, recipient_id)
    return _view(recipient, await eligibility(session, recipient.id, today=today, rules=rules))


async def recipient_history(session: AsyncSession, *, recipient_id: str) -> RecipientHistory:
    await _recipient(session, recipient_id)
    bases = await session.scalars(
        select(LegalBasis)
        .where(col(LegalBasis.recipient_id) == recipient_id)
        .order_by(col(LegalBasis.recorded_at).desc(), col(LegalBasis.id).desc())
    )
    assessments = await session.scalars(
        select(RecipientAssessment)
        .where(col(RecipientAssessment.recipient_id) == recipient_id)
        .order_by(
            col(RecipientAssessment.assessed_on).desc(),
            col(RecipientAssessment.recorded_at).desc(),
        )
    )
    return RecipientHistory(
        recipient_id=recipient_id,
        legal_bases=[_basis_view(basis) for basis in bases],
        assessments=[_assessment_view(assessment) for assessment in assessments],
    )


async def record_basis(
    session: AsyncSession,
    *,
    events: EventWriter,
    recipient_id: str,
    basis: LegalBasisIn,
    recorded_by: str,
    today: date,
    rules: ReviewRules,
) -> RecipientView:
    """Record a new legal basis; it becomes the recipient's current one."""
    recipient = await _recipient(session, recipient_id)
    row = _add_basis(session, recipient_id, basis, recorded_by)
    await session.flush()
    events.add(
        session,
        type=f"{EVENT_PREFIX}.basis_recorded.v1",
        subject=recipient_id,
        purpose=CROSS_BORDER_PURPOSE,
        data=contracts.BasisRecorded(
            basis_id=row.id,
            kind=row.kind,
            review_due=row.review_due.isoformat(),
            by=recorded_by,
        ),
    )
    return _view(recipient, await eligibility(session, recipient_id, today=today, rules=rules))


async def record_assessment(
    session: AsyncSession,
    *,
    events: EventWriter,
    recipient_id: str,
    assessment: AssessmentIn,
    recorded_by: str,
    today: date,
    rules: ReviewRules,
) -> RecipientView:
    """Record a periodic assessment; the newest decides whether the recipient may receive."""
    recipient = await _recipient(session, recipient_id)
    row = _add_assessment(session, recipient_id, assessment, recorded_by)
    await session.flush()
    events.add(
        session,
        type=f"{EVENT_PREFIX}.assessed.v1",
        subject=recipient_id,
        purpose=CROSS_BORDER_PURPOSE,
        data=contracts.RecipientAssessed(
            assessment_id=row.id,
            result=row.result,
            assessed_on=row.assessed_on.isoformat(),
            by=recorded_by,
        ),
    )
    return _view(recipient, await eligibility(session, recipient_id, today=today, rules=rules))


def disclosure_of(recipient: Recipient, *, catalogue: Catalogue) -> RecipientDisclosure:
    """The recipient as users are told about it (PIPL art. 39, OB-4-5)."""
    return RecipientDisclosure(
        id=recipient.id,
        name=recipient.legal_name,
        contact=recipient.contact,
        country_region=recipient.country_region,
        purpose=recipient.purpose,
        processing_method=recipient.processing_method,
        data_types=[
            catalogue.category(category).description for category in recipient.data_categories
        ],
        data_categories=list(recipient.data_categories),
        how_to_exercise_rights=recipient.how_to_exercise_rights,
    )


async def get_disclosure(
    session: AsyncSession, *, catalogue: Catalogue, recipient_id: str
) -> RecipientDisclosure:
    return disclosure_of(await _recipient(session, recipient_id), catalogue=catalogue)
