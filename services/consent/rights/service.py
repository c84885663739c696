"""Rights requests (OB-R-1): filing, per-service answers, deadlines, the consent service's
own answer, and the access export. No HTTP here (the export's HTTP lives in ``export``).

The flow: a user files a request; the request and its ``rights.requested`` event commit
together (outbox). Each participant service answers on its own events topic with
``com.signature.<service>.rights.completed.v1``; :func:`record_answer` keeps the first
answer of each participant, and the request is ``completed`` once every participant
answered. The consent service answers like any other participant, from its own
``rights.requested`` event (:func:`answer_as_consent`).

Deadline: ``rights_deadline_working_days`` working days after the filing day in China
Standard Time, on the Chinese calendar (public holidays and make-up working days,
``kit.workdays``); answers are due before midnight at the end of the last one. A request
past its deadline with answers missing reads as ``overdue``, naming the services that have
not answered; :func:`report_overdue`, run periodically, publishes ``rights.overdue`` once per
request.

Events carry ids, kinds, states and categories only: corrections may be personal data, so
they stay in the request row, encrypted under the subject's key; the event says
``has_corrections: true`` and a participant fetches its part
(:func:`corrections_for_service`, ``GET /rights-requests/{id}/corrections/{service}``
with its own service token for ``rights.access``; see ``kit.rights.CorrectionsFetcher``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from statistics import median
from typing import Any, Final, get_args

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit import contracts, rights, workdays
from kit.catalogue import Catalogue
from kit.clock import CHINA_TZ, china_today
from kit.crypto import FieldCipher, SubjectKeyShredded
from kit.errors import Conflict, DomainError, NotFound
from kit.events import Event
from kit.ids import new_id
from kit.outbox import EventWriter
from services.consent.consents import service as consents
from services.consent.incidents import notices
from services.consent.ledger import service as ledger
from services.consent.policies import service as policies
from services.consent.rights.export import ExportNotConfigured, RightsExporter
from services.consent.rights.models import RightsAnswer, RightsRequest
from services.consent.rights.schemas import (
    CompletionData,
    ConsentServiceExport,
    ExportDocument,
    KeptCategory,
    KindStatistics,
    ParticipantStatus,
    ParticipantView,
    RequestStatus,
    RightsKind,
    RightsRequestAdminView,
    RightsRequestCreate,
    RightsRequestView,
    RightsStatistics,
    ServiceCorrections,
)

logger = logging.getLogger("services.consent.rights")

PURPOSE: Final = "rights.access"
EVENT_PREFIX: Final = "com.signature.consent.rights"
REQUESTED: Final = f"{EVENT_PREFIX}.requested.v1"
OVERDUE: Final = f"{EVENT_PREFIX}.overdue.v1"
FULFILLED: Final = f"{EVENT_PREFIX}.fulfilled.v1"  # every participant answered
EXPORTED: Final = f"{EVENT_PREFIX}.exported.v1"
CONSENT_SERVICE: Final = "consent"
CORRECTIONS_CONTEXT: Final = "consent.rights_request.corrections"
RESOURCE: Final = "consent.rights_request"
RECEIPT_RETENTION: Final = "consent_receipt"
#: Consent records name the user by account id only.
RECEIPT_CATEGORY: Final = "user.account.id"
#: What the privacy center's own export reads: its records about the subject.
EXPORT_RESOURCE: Final = "consent.records"
LEDGER_RETENTION: Final = "processing_ledger"
_COMPLETED: Final = re.compile(r"^com\.signature\.([a-z_]+)\.rights\.completed\.v1$")

#: The consents domain's "withdraw every consent of this subject" (see :func:`answer_as_consent`).
WithdrawAll = Callable[[AsyncSession, str], Awaitable[object]]


class UnknownParticipant(DomainError):
    status, code, title = 422, "unknown-participant", "Unknown service"


class NotAnAccessRequest(Conflict):
    code, title = "not-an-access-request", "Not an access request"


class InvalidAnswer(DomainError):
    """A completion event that cannot be recorded; the consumer retries, then dead-letters."""

    status, code, title = 422, "invalid-rights-answer", "Invalid rights answer"


def completion_type(service: str) -> str:
    """The type of ``service``'s answer: ``com.signature.<service>.rights.completed.v1``."""
    return f"com.signature.{service}.rights.completed.v1"


def completion_service(event_type: str) -> str | None:
    """The service that sent a completion event of this type, or None for other types."""
    match = _COMPLETED.match(event_type)
    return match[1] if match else None


def new_request_id() -> str:
    return new_id("rr")


# --------------------------------------------------------------------------- deadlines


def deadline_after(filed_at: datetime, working_days: int) -> datetime:
    """The instant answers are due before: midnight (China Standard Time) ending the
    ``working_days``-th working day after the filing day, on the Chinese calendar (public
    holidays and make-up working days, ``kit.workdays``; OB-L-6)."""
    if working_days < 1:
        raise ValueError("working_days must be at least 1")
    day = workdays.add_working_days(filed_at.astimezone(CHINA_TZ).date(), working_days)
    return datetime.combine(day + timedelta(days=1), time(), CHINA_TZ).astimezone(UTC)


def due_date(deadline: datetime) -> date:
    """The last working day of a deadline from :func:`deadline_after`."""
    return (deadline.astimezone(CHINA_TZ) - timedelta(microseconds=1)).date()


# --------------------------------------------------------------------------- views


def _participant_statuses(
    request: RightsRequest, answers: Sequence[RightsAnswer], now: datetime
) -> tuple[RequestStatus, list[ParticipantView], list[str]]:
    late = request.status != "completed" and now >= request.deadline
    views: list[ParticipantView] = []
    overdue: list[str] = []
    for answer in sorted(answers, key=lambda a: a.service):
        status: ParticipantStatus
        if answer.outcome is None:
            status = "overdue" if late else "pending"
            if late:
                overdue.append(answer.service)
        else:
            status = answer.outcome  # type: ignore[assignment]  # checked on the way in
        views.append(
            ParticipantView(
                service=answer.service,
                status=status,
                answered_at=answer.answered_at,
                deleted=list(answer.deleted),
                anonymised=list(answer.anonymised),
                kept=[KeptCategory.model_validate(kept) for kept in answer.kept],
                reason=answer.reason,
            )
        )
    if request.status == "completed":
        return "completed", views, []
    return ("overdue" if overdue else "open"), views, overdue


def _owner_view(
    request: RightsRequest,
    answers: Sequence[RightsAnswer],
    now: datetime,
    corrections: dict[str, dict[str, Any]] | None = None,
) -> RightsRequestView:
    status, participants, overdue = _participant_statuses(request, answers, now)
    return RightsRequestView(
        id=request.id,
        kind=_kind(request),
        status=status,
        filed_at=request.filed_at,
        deadline=request.deadline,
        due_date=due_date(request.deadline),
        completed_at=request.completed_at,
        has_corrections=request.corrections_encrypted is not None,
        corrections=corrections,
        participants=participants,
        overdue_services=overdue,
    )


def _admin_view(
    request: RightsRequest, answers: Sequence[RightsAnswer], now: datetime
) -> RightsRequestAdminView:
    status, participants, overdue = _participant_statuses(request, answers, now)
    return RightsRequestAdminView(
        id=request.id,
        subject=request.subject,
        kind=_kind(request),
        status=status,
        filed_at=request.filed_at,
        deadline=request.deadline,
        due_date=due_date(request.deadline),
        completed_at=request.completed_at,
        has_corrections=request.corrections_encrypted is not None,
        participants=participants,
        overdue_services=overdue,
    )


def _kind(request: RightsRequest) -> RightsKind:
    return request.kind  # type: ignore[return-value]  # written from RightsKind only


async def _answers(
    session: AsyncSession, request_ids: Iterable[str]
) -> dict[str, list[RightsAnswer]]:
    ids = list(request_ids)
    grouped: dict[str, list[RightsAnswer]] = {request_id: [] for request_id in ids}
    for start in range(0, len(ids), 500):
        rows = await session.scalars(
            select(RightsAnswer).where(col(RightsAnswer.request_id).in_(ids[start : start + 500]))
        )
        for row in rows:
            grouped[row.request_id].append(row)
    return grouped


async def _owned(session: AsyncSession, *, request_id: str, subject: str) -> RightsRequest:
    """The request if ``subject`` filed it; anyone else learns nothing (404)."""
    request = await session.get(RightsRequest, request_id)
    if request is None or request.subject != subject:
        raise NotFound("no such rights request")
    return request


async def _decrypt_corrections(
    session: AsyncSession, *, cipher: FieldCipher, request: RightsRequest
) -> dict[str, dict[str, Any]] | None:
    if request.corrections_encrypted is None:
        return None
    plain = await cipher.decrypt(
        session,
        subject=request.subject,
        token=request.corrections_encrypted,
        context=CORRECTIONS_CONTEXT,
    )
    corrections: dict[str, dict[str, Any]] = json.loads(plain)
    return corrections


# --------------------------------------------------------------------------- filing


async def file_request(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    participants: Sequence[str],
    working_days: int,
    subject: str,
    request: RightsRequestCreate,
    now: datetime,
) -> RightsRequestView:
    """File ``subject``'s request and publish ``rights.requested`` (through the outbox).

    Every configured participant must answer, except for a correction, which goes to the
    services it names only. Corrections are stored encrypted and never put in the event.
    """
    if request.kind == "correction":
        assert request.corrections is not None  # the schema requires them
        unknown = sorted(set(request.corrections) - set(participants))
        if unknown:
            raise UnknownParticipant(
                "corrections name services that take no rights requests: " + ", ".join(unknown),
                extra={"known_services": sorted(participants)},
            )
        asked = [p for p in participants if request.corrections.get(p)]
    else:
        asked = list(dict.fromkeys(participants))
    row = RightsRequest(
        id=new_request_id(),
        subject=subject,
        kind=request.kind,
        filed_at=now,
        deadline=deadline_after(now, working_days),
    )
    if request.corrections is not None:
        row.corrections_encrypted = await cipher.encrypt(
            session,
            subject=subject,
            value=json.dumps(request.corrections, ensure_ascii=False, sort_keys=True),
            context=CORRECTIONS_CONTEXT,
        )
    session.add(row)
    await session.flush()
    answers = [RightsAnswer(request_id=row.id, service=service) for service in asked]
    session.add_all(answers)
    data = contracts.RightsRequested(
        request_id=row.id,
        kind=row.kind,
        deadline=row.deadline.isoformat(),
        participants=asked,
        **({"has_corrections": True} if row.corrections_encrypted is not None else {}),
    )
    events.add(session, type=REQUESTED, subject=subject, purpose=PURPOSE, data=data)
    await session.flush()
    return _owner_view(row, answers, now)


# --------------------------------------------------------------------------- reading


async def list_own_requests(
    session: AsyncSession, *, subject: str, now: datetime, limit: int = 100, offset: int = 0
) -> list[RightsRequestView]:
    requests = list(
        await session.scalars(
            select(RightsRequest)
            .where(col(RightsRequest.subject) == subject)
            .order_by(col(RightsRequest.filed_at).desc(), col(RightsRequest.id))
            .limit(limit)
            .offset(offset)
        )
    )
    answers = await _answers(session, (r.id for r in requests))
    return [_owner_view(r, answers[r.id], now) for r in requests]


async def get_own_request(
    session: AsyncSession, *, cipher: FieldCipher, subject: str, request_id: str, now: datetime
) -> RightsRequestView:
    """The owner's view of one request, corrections included; 404 for anyone else."""
    request = await _owned(session, request_id=request_id, subject=subject)
    answers = await _answers(session, [request.id])
    corrections = await _decrypt_corrections(session, cipher=cipher, request=request)
    return _owner_view(request, answers[request.id], now, corrections)


async def list_requests(
    session: AsyncSession, *, status: RequestStatus | None, now: datetime, limit: int = 100
) -> list[RightsRequestAdminView]:
    """Requests by status for the privacy officer, soonest deadline first; without a
    status, every unfinished one (open and overdue)."""
    query = select(RightsRequest)
    if status == "completed":
        query = query.where(col(RightsRequest.status) == "completed").order_by(
            col(RightsRequest.completed_at).desc()
        )
    else:
        query = query.where(col(RightsRequest.status) == "open")
        if status == "open":
            query = query.where(col(RightsRequest.deadline) > now)
        elif status == "overdue":
            query = query.where(col(RightsRequest.deadline) <= now)
        query = query.order_by(col(RightsRequest.deadline))
    requests = list(await session.scalars(query.limit(limit)))
    answers = await _answers(session, (r.id for r in requests))
    return [_admin_view(r, answers[r.id], now) for r in requests]


async def corrections_for_service(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    request_id: str,
    service: str,
    reader: str,
) -> ServiceCorrections:
    """The corrections one service is asked to make (its part only); the read is recorded
    in the processing ledger."""
    request = await session.get(RightsRequest, request_id)
    corrections = (
        await _decrypt_corrections(session, cipher=cipher, request=request) if request else None
    )
    if request is None or not corrections or service not in corrections:
        raise NotFound("no corrections for this service in this request")
    events.processing(
        session,
        subject=request.subject,
        actor=reader,
        action="read",
        purpose=PURPOSE,
        resource=RESOURCE,
        categories=(),
    )
    return ServiceCorrections(
        request_id=request.id, service=service, corrections=corrections[service]
    )


# --------------------------------------------------------------------------- answers


async def record_answer(
    session: AsyncSession, *, events: EventWriter, event: Event, now: datetime
) -> bool:
    """Record a participant's completion event; complete the request when it was the last
    answer missing. False when the event is no completion event or the service answered
    before (the first answer stands). Raises :class:`InvalidAnswer` for an answer that does
    not fit its request (the consumer dead-letters it after retries)."""
    service = completion_service(event.type)
    if service is None:
        return False
    if event.source != f"/{service}":
        raise InvalidAnswer(f"a {service} answer must come from /{service}")
    try:
        answer = CompletionData.model_validate(event.data)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in error["loc"]) for error in exc.errors())
        raise InvalidAnswer(f"malformed answer from {service}: {fields}") from exc
    request = await session.get(RightsRequest, answer.request_id, with_for_update=True)
    if request is None:
        raise InvalidAnswer(f"{service} answered an unknown rights request")
    if request.subject != event.subject:
        raise InvalidAnswer(f"{service} answered for another subject than the request's")
    row = await session.get(RightsAnswer, (request.id, service))
    if row is None:
        raise InvalidAnswer(f"{service} is not a participant of this request")
    if row.outcome is not None:
        logger.info(
            "ignoring a second answer from %s to %s (event %s)", service, request.id, event.id
        )
        return False
    row.outcome = answer.outcome
    row.deleted = list(answer.deleted)
    row.anonymised = list(answer.anonymised)
    row.kept = [kept.model_dump(mode="json") for kept in answer.kept]
    row.reason = answer.reason
    row.event_id = event.id
    row.answered_at = now
    await session.flush()
    answers = (await _answers(session, [request.id]))[request.id]
    if all(a.outcome is not None for a in answers):
        request.status = "completed"
        request.completed_at = now
        events.add(
            session,
            type=FULFILLED,
            subject=request.subject,
            purpose=PURPOSE,
            data=contracts.RightsFulfilled(
                request_id=request.id,
                kind=request.kind,
                outcomes={a.service: a.outcome for a in answers},
            ),
        )
    return True


async def answer_as_consent(
    session: AsyncSession,
    *,
    events: EventWriter,
    catalogue: Catalogue,
    request_id: str,
    subject: str,
    now: datetime,
    withdraw_all: WithdrawAll | None,
) -> Event | None:
    """The consent service's own answer to a request it takes part in, published as
    ``com.signature.consent.rights.completed.v1`` (recorded when it comes back, like any
    participant's). Agreements and consent receipts are evidence of consent: they are
    kept under the catalogue's ``consent_receipt`` retention, never deleted on request.

    ``withdraw_all`` is the consents domain's "withdraw every consent of this subject";
    without it a ``withdraw_all`` request is refused as not available yet. A deletion
    withdraws every consent too.
    """
    request = await session.get(RightsRequest, request_id)
    if request is None or request.subject != subject:
        raise InvalidAnswer("a rights request the consent service does not hold")
    own = await session.get(RightsAnswer, (request.id, CONSENT_SERVICE))
    if own is None or own.outcome is not None or own.event_id is not None:
        return None  # not asked, or answered already (the answer's event id is noted)
    retention = catalogue.retention_period(RECEIPT_RETENTION)
    receipts = KeptCategory(
        category=RECEIPT_CATEGORY,
        legal_basis=retention.legal_basis,
        until=retention.expires_at(now).date(),
        retention=RECEIPT_RETENTION,
    )
    answer: CompletionData
    if request.kind == "withdraw_all":
        if withdraw_all is None:
            answer = CompletionData(
                request_id=request.id, outcome="refused", reason="not available yet"
            )
        else:
            await withdraw_all(session, subject)
            answer = CompletionData(
                request_id=request.id,
                outcome="done",
                kept=[receipts],
                reason="every consent withdrawn; agreements and consent receipts are kept "
                "as evidence",
            )
    elif request.kind == "deletion":
        # A deleted account consents to nothing: every consent is withdrawn first, so no
        # service acts on a consent its holder can no longer take back.
        if withdraw_all is not None:
            await withdraw_all(session, subject)
        answer = CompletionData(
            request_id=request.id,
            outcome="partial",
            kept=[receipts],
            reason="every consent withdrawn; agreements and consent receipts are kept as "
            "evidence of consent",
        )
    elif request.kind == "correction":
        answer = CompletionData(
            request_id=request.id,
            outcome="refused",
            reason="agreements and consent receipts record what was agreed and are not altered",
        )
    else:
        answer = CompletionData(
            request_id=request.id,
            outcome="done",
            reason="agreements and consents are part of the export",
        )
    event = events.add(
        session,
        type=completion_type(CONSENT_SERVICE),
        subject=subject,
        purpose=PURPOSE,
        data=contracts.RightsCompleted.model_validate(
            answer.model_dump(mode="json", exclude_none=True)
        ),
    )
    own.event_id = event.id
    return event


# --------------------------------------------------------------------------- deadlines


async def report_overdue(
    session: AsyncSession, *, events: EventWriter, now: datetime, limit: int = 1000
) -> list[str]:
    """Publish ``rights.overdue`` once for each open request past its deadline, naming
    the services that have not answered; returns the request ids. Run it periodically."""
    requests = list(
        await session.scalars(
            select(RightsRequest)
            .where(
                col(RightsRequest.status) == "open",
                col(RightsRequest.deadline) <= now,
                col(RightsRequest.overdue_reported_at).is_(None),
            )
            .order_by(col(RightsRequest.deadline))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    answers = await _answers(session, (r.id for r in requests))
    for request in requests:
        missing = sorted(a.service for a in answers[request.id] if a.outcome is None)
        events.add(
            session,
            type=OVERDUE,
            subject=request.subject,
            purpose=PURPOSE,
            data=contracts.RightsOverdue(
                request_id=request.id,
                kind=request.kind,
                deadline=request.deadline.isoformat(),
                overdue_services=missing,
            ),
        )
        request.overdue_reported_at = now
    return [request.id for request in requests]


# --------------------------------------------------------------------------- statistics


def _cst_date(instant: datetime) -> date:
    return instant.astimezone(CHINA_TZ).date()


async def statistics(
    session: AsyncSession, *, year: int, deadline_working_days: int, now: datetime
) -> RightsStatistics:
    """Per kind, the requests filed in ``year`` (China Standard Time): how many, how many
    completed, the median and longest number of working days they took (Chinese calendar,
    ``kit.workdays``), and how many were late (OB-L-14, NDSMR art. 44)."""
    start = datetime.combine(date(year, 1, 1), time(), CHINA_TZ).astimezone(UTC)
    end = datetime.combine(date(year + 1, 1, 1), time(), CHINA_TZ).astimezone(UTC)
    requests = await session.scalars(
        select(RightsRequest).where(
            col(RightsRequest.filed_at) >= start, col(RightsRequest.filed_at) < end
        )
    )
    counts: dict[str, int] = dict.fromkeys(get_args(RightsKind), 0)
    took: dict[str, list[int]] = {kind: [] for kind in counts}
    late: dict[str, int] = dict.fromkeys(counts, 0)
    for request in requests:
        counts[request.kind] = counts.get(request.kind, 0) + 1
        finished = request.completed_at if request.status == "completed" else None
        if finished is not None:
            took.setdefault(request.kind, []).append(
                workdays.working_days_between(_cst_date(request.filed_at), _cst_date(finished))
            )
        if (finished or now) >= request.deadline:
            late[request.kind] = late.get(request.kind, 0) + 1
    return RightsStatistics(
        year=year,
        deadline_working_days=deadline_working_days,
        generated_at=now,
        kinds=[
            KindStatistics(
                kind=kind,
                count=counts[kind],
                completed=len(took.get(kind, [])),
                median_working_days=median(took[kind]) if took.get(kind) else None,
                max_working_days=max(took[kind]) if took.get(kind) else None,
                overdue=late.get(kind, 0),
            )
            for kind in counts
        ],
    )


# --------------------------------------------------------------------------- export


async def export_request(
    session: AsyncSession,
    *,
    exporter: RightsExporter | None,
    events: EventWriter,
    subject: str,
    request_id: str,
    now: datetime,
) -> ExportDocument:
    """The owner's access export: every participant's data about them, fetched now
    (503 while no exporter is wired).

    The unit of work is committed before the services are called, so no database lock is
    held while they answer; the ``rights.exported`` event (which services answered) is
    written afterwards in a new transaction.
    """
    request = await _owned(session, request_id=request_id, subject=subject)
    if request.kind != "access":
        raise NotAnAccessRequest("only an access request has an export")
    if exporter is None:
        raise ExportNotConfigured("the export cannot reach the services yet; try again later")
    services = sorted((await _answers(session, [request.id]))[request.id], key=lambda a: a.service)
    names = [answer.service for answer in services]
    await session.commit()
    document = await exporter.gather(subject=subject, services=names, generated_at=now)
    events.add(
        session,
        type=EXPORTED,
        subject=subject,
        purpose=PURPOSE,
        data=contracts.RightsExported(
            request_id=request_id,
            services={name: part.status for name, part in document.services.items()},
        ),
    )
    return document


async def export_subject(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    catalogue: Catalogue,
    actor: str,
    subject: str,
    now: datetime,
) -> ConsentServiceExport:
    """The privacy center's part of the access export, read by the export itself
    (``GET /rights/export/{subject}``, a service token for ``rights.access``): agreements,
    consents with their history, transfer consents, rights requests with their corrections,
    notices; the read is recorded in the subject's ledger."""
    state = await consents.current_state(session, catalogue=catalogue, subject=subject)
    requests = list(
        await session.scalars(
            select(RightsRequest)
            .where(col(RightsRequest.subject) == subject)
            .order_by(col(RightsRequest.filed_at).desc(), col(RightsRequest.id))
        )
    )
    answers = await _answers(session, (request.id for request in requests))
    views: list[RightsRequestView] = []
    for request in requests:
        try:
            corrections = await _decrypt_corrections(session, cipher=cipher, request=request)
        except SubjectKeyShredded:
            corrections = None  # erased with the account: nothing left to show
        views.append(_owner_view(request, answers[request.id], now, corrections))
    export = ConsentServiceExport(
        subject=subject,
        policy=await policies.my_agreements(session, subject=subject, today=china_today()),
        consents=state.consents,
        consent_history=await consents.list_receipts(session, subject=subject, limit=None),
        transfer_consents=[c for c in state.consents if c.recipient_id is not None],
        rights_requests=views,
        notices=await notices.list_own_notices(
            session, catalogue=catalogue, subject=subject, limit=None
        ),
        ledger_entries=(await ledger.chain_size(session, subject))[0],
        retention={
            period: rights.retention_view(catalogue, period)
            for period in (RECEIPT_RETENTION, LEDGER_RETENTION)
        },
    )
    events.processing(
        session,
        subject=subject,
        actor=actor,
        action="read",
        purpose=PURPOSE,
        resource=EXPORT_RESOURCE,
        categories=[RECEIPT_CATEGORY],
    )
    return export
