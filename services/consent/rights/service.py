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

import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from statistics import median
from typing import Any, Final, get_args

import httpx
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit import contracts, rights, workdays
from kit.catalogue import Catalogue
from kit.clock import CHINA_TZ, china_today
from kit.crypto import FieldCipher, SubjectKeyShredded
from kit.errors import Conflict, DomainError, NotFound
from kit.events import Event, new_event
from kit.ids import new_id
from kit.models import utcnow
from kit.outbox import EventWriter, add_to_outbox
from kit.restriction import STATE_EVENT as RESTRICTION_STATE
from kit.restriction import RestrictionState
from services.consent.consents import service as consents
from services.consent.incidents import notices
from services.consent.ledger import service as ledger
from services.consent.policies import service as policies
from services.consent.rights.export import ExportNotConfigured, RightsExporter, deliver_copy
from services.consent.rights.models import (
    PortabilityDestination,
    Restriction,
    RightsAnswer,
    RightsRequest,
)
from services.consent.rights.schemas import (
    CompletionData,
    ConsentServiceExport,
    ExplainedCategory,
    ExplainedPurpose,
    Explanation,
    ExportDocument,
    KeptCategory,
    KindStatistics,
    ParticipantStatus,
    ParticipantView,
    PortabilityReceipt,
    RefusedPart,
    RequestStatus,
    RestrictionView,
    RightsKind,
    RightsRequestAdminView,
    RightsRequestCreate,
    RightsRequestView,
    RightsStatistics,
    ServiceCorrections,
    ServiceExportOk,
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
    restriction: Restriction | None = None,
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
        restriction=restriction_view(restriction),
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
    catalogue: Catalogue | None = None,
    restrictions_topic: str | None = None,
    plain_http_hosts: Sequence[str] = (),
) -> RightsRequestView:
    """File ``subject``'s request and publish ``rights.requested`` (through the outbox).

    Every configured participant must answer, except for a correction, which goes to the
    services it names only. Corrections are stored encrypted and never put in the event.
    A restriction takes effect at once (its state is published with the request); a
    portability request keeps its destination for the delivery.
    """
    if catalogue is not None:
        check_request(catalogue, request, plain_http_hosts=plain_http_hosts)
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
    restriction: Restriction | None = None
    if request.kind == "restriction":
        if restrictions_topic is None:
            raise ValueError("a restriction needs the restrictions topic")
        restriction = await add_restriction(
            session, events=events, topic=restrictions_topic, request=row, body=request
        )
    if request.destination is not None:
        session.add(
            PortabilityDestination(
                request_id=row.id, name=request.destination.name, url=request.destination.url
            )
        )
    await session.flush()
    return _owner_view(row, answers, now, restriction=restriction)


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
    # As on the detail: what a restriction (or a deletion's legal hold) keeps stored only.
    restrictions = {
        row.request_id: row
        for row in await session.scalars(
            select(Restriction).where(col(Restriction.request_id).in_([r.id for r in requests]))
        )
    }
    return [
        _owner_view(r, answers[r.id], now, restriction=restrictions.get(r.id)) for r in requests
    ]


async def get_own_request(
    session: AsyncSession, *, cipher: FieldCipher, subject: str, request_id: str, now: datetime
) -> RightsRequestView:
    """The owner's view of one request, corrections included; 404 for anyone else."""
    request = await _owned(session, request_id=request_id, subject=subject)
    answers = await _answers(session, [request.id])
    corrections = await _decrypt_corrections(session, cipher=cipher, request=request)
    restriction = await session.get(Restriction, request.id)
    return _owner_view(request, answers[request.id], now, corrections, restriction)


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
    session: AsyncSession,
    *,
    events: EventWriter,
    event: Event,
    now: datetime,
    restrictions_topic: str | None = None,
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
        if request.kind == "deletion" and restrictions_topic is not None:
            await hold_after_deletion(
                session, events=events, topic=restrictions_topic, request=request
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
    elif request.kind in {"restriction", "explanation", "portability"}:
        answer = CompletionData(
            request_id=request.id, outcome="done", reason=rights.ANSWERED_FOR_ALL[request.kind]
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


# --------------------------------------------------------------------------- rules since 2024
# Restriction (OB-L-2), explanation (OB-L-3), portability (OB-L-4) and the storage-only
# state of a deleted account's data under a legal hold (OB-L-5).

#: The copy's documented format (README, "Rules in force since 2024").
PORTABILITY_FORMAT: Final = "application/vnd.signature.portability.v1+json"
PORTED: Final = f"{EVENT_PREFIX}.ported.v1"
LIFTED: Final = f"{EVENT_PREFIX}.restriction_lifted.v1"
#: Purpose kinds whose data came by contract (basic) or consent (additional, separate).
_PORTABLE_KINDS: Final = frozenset({"basic", "additional", "separate"})
_EXPORTED_FIELD_KEYS: Final = frozenset({"value", "category", "purposes", "retention"})


class InvalidRightsRequest(DomainError):
    """A field of the request names something the catalogue does not allow; ``errors``
    names each field by its path, like a validation error."""

    status, code, title = 422, "validation-error", "Invalid request"


class NotThisKind(Conflict):
    code, title = "wrong-rights-request-kind", "Not a request of this kind"


class AlreadyLifted(Conflict):
    code, title = "restriction-already-lifted", "Restriction already lifted"


class ReverificationRequired(DomainError):
    status, code, title = 401, "reverification-required", "Sign in again"
    headers = {"WWW-Authenticate": 'Bearer error="insufficient_user_authentication"'}


def _invalid(errors: list[dict[str, str]]) -> InvalidRightsRequest:
    return InvalidRightsRequest(
        "; ".join(f"{e['field']}: {e['message']}" for e in errors), extra={"errors": errors}
    )


def check_request(
    catalogue: Catalogue, request: RightsRequestCreate, *, plain_http_hosts: Sequence[str]
) -> None:
    """What the schema cannot check without the catalogue and the settings: a restriction
    names known purposes (never a legal one) and known personal categories; a destination
    is HTTPS (plain HTTP only to ``plain_http_hosts``)."""
    errors: list[dict[str, str]] = []
    for index, purpose in enumerate(request.purposes or ()):
        field = f"body.purposes.{index}"
        if not catalogue.has_purpose(purpose):
            errors.append({"field": field, "message": "not a purpose of the catalogue",
                           "type": "unknown_purpose"})  # fmt: skip
        elif catalogue.purpose(purpose).kind in rights.UNRESTRICTABLE_KINDS:
            errors.append({"field": field, "message": "imposed by law: it cannot be restricted",
                           "type": "not_restrictable"})  # fmt: skip
    known = {category.id for category in catalogue.data_categories if category.personal}
    for index, category in enumerate(request.categories or ()):
        if category not in known:
            errors.append({"field": f"body.categories.{index}",
                           "message": "not a personal data category of the catalogue",
                           "type": "unknown_category"})  # fmt: skip
    if request.destination is not None:
        url = httpx.URL(request.destination.url)
        if url.scheme != "https" and not (url.scheme == "http" and url.host in plain_http_hosts):
            errors.append({"field": "body.destination.url", "message": "must be an https URL",
                           "type": "url_scheme"})  # fmt: skip
    if errors:
        raise _invalid(errors)


def reverified(auth_time: int | None, *, now: datetime, within_s: int) -> None:
    """Portability goes only to a user who signed in with their password within
    ``within_s`` (the token's ``auth_time``; a refreshed token keeps its login's)."""
    if auth_time is None or now.timestamp() - auth_time > within_s:
        raise ReverificationRequired(
            f"a copy for another processor needs you to sign in again (within {within_s} s)"
        )


async def _active_restrictions(session: AsyncSession, subject: str) -> list[Restriction]:
    return list(
        await session.scalars(
            select(Restriction).where(
                col(Restriction.subject) == subject, col(Restriction.lifted_at).is_(None)
            )
        )
    )


async def publish_restriction_state(
    session: AsyncSession, *, events: EventWriter, topic: str, subject: str
) -> RestrictionState:
    """Publish ``subject``'s whole restriction state to the compacted topic every app
    follows (kit.restriction), in the caller's transaction."""
    await session.flush()
    rows = await _active_restrictions(session, subject)
    state = RestrictionState(
        purposes=frozenset(p for row in rows for p in row.purposes),
        categories=frozenset(c for row in rows for c in row.categories),
        storage_only=any(row.storage_only for row in rows),
    )
    event = new_event(
        source=events.source,
        type=RESTRICTION_STATE,
        subject=subject,
        purpose=PURPOSE,
        data=contracts.RestrictionState.model_validate(state.to_data()),
        personal_fields=events.personal_fields,
    )
    add_to_outbox(session, event, topic=topic)
    return state


def restriction_view(row: Restriction | None) -> RestrictionView | None:
    if row is None or row.storage_only:
        return None
    return RestrictionView(
        purposes=sorted(row.purposes),
        categories=sorted(row.categories),
        since=row.since,
        lifted_at=row.lifted_at,
    )


async def add_restriction(
    session: AsyncSession,
    *,
    events: EventWriter,
    topic: str,
    request: RightsRequest,
    body: RightsRequestCreate,
) -> Restriction:
    row = Restriction(
        request_id=request.id,
        subject=request.subject,
        purposes=sorted(set(body.purposes or ())),
        categories=sorted(set(body.categories or ())),
        since=request.filed_at,
    )
    session.add(row)
    await publish_restriction_state(session, events=events, topic=topic, subject=request.subject)
    return row


async def lift_restriction(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    topic: str,
    subject: str,
    request_id: str,
    now: datetime,
) -> RightsRequestView:
    """The user lifts their restriction: processing resumes once every app has read it."""
    request = await _owned(session, request_id=request_id, subject=subject)
    row = await session.get(Restriction, request.id, with_for_update=True)
    if request.kind != "restriction" or row is None:
        raise NotThisKind("only a restriction request can be lifted")
    if row.lifted_at is not None:
        raise AlreadyLifted("this restriction was lifted already")
    row.lifted_at = now
    await publish_restriction_state(session, events=events, topic=topic, subject=subject)
    events.add(
        session,
        type=LIFTED,
        subject=subject,
        purpose=PURPOSE,
        data=contracts.RestrictionLifted(request_id=request.id),
    )
    return await get_own_request(
        session, cipher=cipher, subject=subject, request_id=request_id, now=now
    )


async def hold_after_deletion(
    session: AsyncSession, *, events: EventWriter, topic: str, request: RightsRequest
) -> None:
    """A completed deletion leaves what the services keep under a legal hold storage-only
    (OB-L-5): the state every app refuses other processing by."""
    if await session.get(Restriction, request.id) is not None:
        return
    session.add(
        Restriction(
            request_id=request.id,
            subject=request.subject,
            storage_only=True,
            since=request.completed_at or utcnow(),
        )
    )
    await publish_restriction_state(session, events=events, topic=topic, subject=request.subject)


async def explain(
    session: AsyncSession,
    *,
    events: EventWriter,
    catalogue: Catalogue,
    subject: str,
    request_id: str,
    now: datetime,
) -> Explanation:
    """The answer to an explanation request (OB-L-3): for each category of the user's
    data in their ledger, what it is, the purposes it served with their legal basis and
    who processed it, and its retention periods from the catalogue."""
    request = await _owned(session, request_id=request_id, subject=subject)
    if request.kind != "explanation":
        raise NotThisKind("only an explanation request has an explanation")
    processed = await ledger.processing_by_category(session, subject=subject)
    retention_ids: dict[str, set[str]] = {}
    for resource in catalogue.resources.values():
        for field in resource.fields.values():
            retention_ids.setdefault(field.category, set()).add(field.retention)
    categories: list[ExplainedCategory] = []
    for category, rows in processed.items():
        known = (
            catalogue.category(category)
            if category in {c.id for c in catalogue.data_categories}
            else None
        )
        by_purpose: dict[tuple[str, str], set[str]] = {}
        for purpose, basis, who in rows:
            by_purpose.setdefault((purpose, basis), set()).add(who)
        categories.append(
            ExplainedCategory(
                category=category,
                description=known.description if known else None,
                sensitive=known.sensitive if known else False,
                purposes=[
                    ExplainedPurpose(
                        purpose=purpose,
                        description=catalogue.purpose(purpose).description
                        if catalogue.has_purpose(purpose)
                        else None,
                        legal_basis=basis,
                        by=sorted(who),
                    )
                    for (purpose, basis), who in sorted(by_purpose.items())
                ],
                retention=[
                    rights.retention_view(catalogue, period)
                    for period in sorted(retention_ids.get(category, ()))
                ],
            )
        )
    events.processing(
        session,
        subject=subject,
        actor=subject,
        action="read",
        purpose=PURPOSE,
        resource=RESOURCE,
        categories=[RECEIPT_CATEGORY],
    )
    return Explanation(request_id=request.id, generated_at=now, categories=categories)


def _portable(catalogue: Catalogue, service: str, data: Any, refused: list[RefusedPart]) -> Any:
    """``data`` with every exported field not collected by consent or contract left out
    (noted in ``refused``); other values as they are."""
    if isinstance(data, list):
        return [_portable(catalogue, service, item, refused) for item in data]
    if not isinstance(data, dict):
        return data
    if data.keys() >= _EXPORTED_FIELD_KEYS and isinstance(data.get("purposes"), list):
        kinds = {catalogue.purpose(p).kind for p in data["purposes"] if catalogue.has_purpose(p)}
        if kinds & _PORTABLE_KINDS:
            return data
        refused.append(
            RefusedPart(
                service=service,
                category=str(data.get("category")),
                reason="collected under a legal obligation, not by consent or contract "
                "(PIPL art. 45 covers data provided by consent or contract)",
            )
        )
        return None
    return {key: _portable(catalogue, service, value, refused) for key, value in data.items()}


def _categories_in(data: Any, found: set[str]) -> None:
    if isinstance(data, list):
        for item in data:
            _categories_in(item, found)
    elif isinstance(data, dict):
        if data.keys() >= _EXPORTED_FIELD_KEYS and isinstance(data.get("category"), str):
            found.add(data["category"])
        for value in data.values():
            _categories_in(value, found)


async def port_request(
    session: AsyncSession,
    *,
    exporter: RightsExporter | None,
    events: EventWriter,
    catalogue: Catalogue,
    subject: str,
    request_id: str,
    auth_time: int | None,
    reverify_within_s: int,
    timeout_s: float,
    now: datetime,
) -> PortabilityReceipt:
    """Gather the user's data from every participant, keep what came by consent or
    contract, and deliver it to the destination they named, once they signed in again
    (OB-L-4). Another user's request is not found, as everywhere, before the owner is
    asked to sign in again. As with the export, nothing is locked while the services and
    the destination answer; the ``rights.ported`` event is written afterwards."""
    request = await _owned(session, request_id=request_id, subject=subject)
    reverified(auth_time, now=now, within_s=reverify_within_s)
    destination = await session.get(PortabilityDestination, request.id)
    if request.kind != "portability" or destination is None:
        raise NotThisKind("only a portability request is delivered to another processor")
    if exporter is None:
        raise ExportNotConfigured("the copy cannot reach the services yet; try again later")
    names = sorted(a.service for a in (await _answers(session, [request.id]))[request.id])
    name, url = destination.name, destination.url
    await session.commit()
    document = await exporter.gather(subject=subject, services=names, generated_at=now)
    refused: list[RefusedPart] = []
    parts: dict[str, Any] = {}
    statuses: dict[str, str] = {}
    for service, part in document.services.items():
        statuses[service] = part.status
        if isinstance(part, ServiceExportOk):
            parts[service] = _portable(catalogue, service, part.data, refused)
    categories: set[str] = set()
    _categories_in(parts, categories)
    copy = {
        "format": PORTABILITY_FORMAT,
        "request_id": request.id,
        "subject": subject,
        "generated_at": now.isoformat(),
        "services": parts,
        "left_out": [item.model_dump() for item in refused],
    }
    body = json.dumps(copy, ensure_ascii=False, sort_keys=True).encode()
    await deliver_copy(
        exporter.client, url=url, body=body, content_type=PORTABILITY_FORMAT, timeout_s=timeout_s
    )
    digest = hashlib.sha256(body).hexdigest()
    row = await session.get(PortabilityDestination, request_id)
    if row is not None:
        row.delivered_at, row.sha256 = now, digest
    events.add(
        session,
        type=PORTED,
        subject=subject,
        purpose=PURPOSE,
        data=contracts.RightsPorted(
            request_id=request_id, services=statuses, left_out=len(refused)
        ),
        categories=sorted(categories),
    )
    return PortabilityReceipt(
        request_id=request_id,
        destination=name,
        delivered_at=now,
        format=PORTABILITY_FORMAT,
        sha256=digest,
        services=statuses,
        categories=sorted(categories),
        refused=refused,
    )
