"""Transfers: the one path by which personal data leaves the country (OB-4-3). No HTTP here;
the order fetcher and the deliverer are injected interfaces.

A transfer is requested by an order event (``com.signature.orders.order.placed.v1`` with
``cross_border: true``; see :func:`on_order_event`) or by an administrator. Before anything
leaves, and again right before each delivery round, it is checked (OB-4-5, OB-4-6):

1. the categories asked for are within the recipient's allowance, else ``refused``
   (``categories_outside_allowance``);
2. the recipient's legal basis is on record and not past its review date, and its newest
   assessment passed and is in date, else ``refused`` with the reasons
   (``legal_basis_missing``, ``legal_basis_past_review``, ``assessment_failed``, ...);
3. unless necessary to perform the user's contract (every order-event transfer), the
   year's volume with this person counted needs no stronger legal basis than the
   recipient's, else ``awaiting_basis`` (``volume_needs_<basis>``; OB-L-7, see
   ``volume.service``), resumed once a stronger basis is recorded;
4. the subject's separate consent ``cross_border.transfer`` to that recipient is in force,
   else ``awaiting_consent`` (resumed by :func:`resume_awaiting` once the consent
   arrives); a consent withdrawn before delivery refuses it (``consent_withdrawn``);
5. the purpose ``cross_border.transfer`` has not ceased (``purpose_ceased`` from the
   effective date the privacy center declared; see ``cessation.service``).

:func:`refuse_pending` refuses every transfer not delivered yet (of one subject, or all)
and drops its package: for a withdrawal of every consent, an erasure, a ceased purpose.

Then it is ``ready``, and :func:`deliver_due` (the worker) builds the package: only the
fields of ``orders.order`` that ``cross_border.transfer`` may see *and* whose category was
asked for, fetched from orders under that purpose, masked as the catalogue says, under a
pseudonymous waybill id, encrypted for the recipient's public key (OB-4-4). The encrypted
package is kept until delivered, then dropped (its SHA-256 stays). Delivery is an HTTPS
POST with retries, backoff and an idempotency key, every attempt recorded; or, for a
``kafka`` recipient, an event on ``transfer.egress.<recipient_id>`` written through this
service's outbox. A ready transfer is never given up: failed rounds are retried later.

Events (on ``transfer.events``, subject = the account id, purpose ``cross_border.transfer``,
the categories as ``datacategories``; ids, states and reason codes only):
``com.signature.transfer.transfer.{requested,awaiting_basis,awaiting_consent,delivered,
refused}.v1``,
and on delivery a processing record (``personal_data.read`` with the recipient as actor)
for the user's processing ledger.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Final

from sqlalchemy import or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit import contracts
from kit.catalogue import Catalogue, MaskingRule
from kit.consent_state import CROSS_BORDER_PURPOSE
from kit.contracts import TransferChanged
from kit.crypto import FieldCipher
from kit.db import Database
from kit.errors import DomainError, NotFound
from kit.events import Event, personal_shape
from kit.ids import new_id
from kit.masking import mask_value
from kit.models import utcnow
from kit.outbox import EventWriter
from kit.restriction import Restrictions
from services.transfer.models import (
    CeasedPurpose,
    DeliveryAttempt,
    LegalBasis,
    Recipient,
    Transfer,
)
from services.transfer.recipients.service import (
    ORDER_RESOURCE,
    ReviewRules,
    disclosure_of,
    eligibility,
    get_recipient_row,
)
from services.transfer.transfers.delivery import AttemptResult, Deliverer
from services.transfer.transfers.fetcher import OrderFetcher, OrderUnavailable
from services.transfer.transfers.package import (
    encrypt_package,
    load_recipient_key,
    waybill_id,
)
from services.transfer.transfers.schemas import (
    AttemptView,
    BasisRef,
    TransferCreate,
    TransferDetail,
    TransferView,
    UserTransferView,
)
from services.transfer.volume import service as volume

logger = logging.getLogger("services.transfer.transfers")

TRANSFER_EVENT: Final = "com.signature.transfer.transfer"
EGRESS_EVENT: Final = "com.signature.transfer.egress.package.v1"
ORDER_PLACED: Final = "com.signature.orders.order.placed.v1"
#: ``egress_topic(recipient_id)`` behind the prefix: written by this service alone.
EGRESS_TOPIC: Final = "transfer.egress.{recipient_id}"
#: Set on a session that made a transfer ready: its commit wakes the worker.
WAKE_WORKER: Final = "transfer.wake_worker"
MAX_ROUND_EXPONENT: Final = 20

ConsentCheck = Callable[[str, str], bool]
Sleep = Callable[[float], Awaitable[None]]


class InvalidReference(DomainError):
    status, code, title = 422, "invalid-reference", "Invalid reference"


@dataclass(frozen=True)
class Checks:
    """What deciding a transfer needs: the consent state, the day, the review rules."""

    consent_granted: ConsentCheck
    today: date
    rules: ReviewRules
    #: Restricted and legal-hold subjects (OB-L-2, OB-L-5): their data is only stored.
    restrictions: Restrictions | None = None
    #: the catalogue's sensitive data categories (the volume counts them apart, OB-L-7)
    sensitive_categories: frozenset[str] = frozenset()


@dataclass(frozen=True)
class DeliveryPolicy:
    attempts_per_round: int = 3
    backoff_s: float = 0.5
    round_backoff_s: float = 60.0
    max_round_backoff_s: float = 3600.0
    lease_s: float = 300.0
    batch_size: int = 100


@dataclass(frozen=True)
class Outbound:
    """What building and delivering packages needs."""

    catalogue: Catalogue
    cipher: FieldCipher
    fetcher: OrderFetcher
    deliverer: Deliverer
    egress: Callable[[str], EventWriter]
    policy: DeliveryPolicy
    sleep: Sleep = asyncio.sleep


def egress_topic(recipient_id: str) -> str:
    """The egress topic of a ``kafka`` recipient (without the deployment's prefix)."""
    return EGRESS_TOPIC.format(recipient_id=recipient_id)


def order_fields_for(catalogue: Catalogue, categories: Iterable[str]) -> dict[str, MaskingRule]:
    """The order fields a transfer of ``categories`` carries, with their masks: those the
    catalogue lets ``cross_border.transfer`` see whose category was asked for."""
    wanted = frozenset(categories)
    return {
        name: rule
        for name, rule in catalogue.visible_fields(ORDER_RESOURCE, CROSS_BORDER_PURPOSE).items()
        if catalogue.field_policy(ORDER_RESOURCE, name).category in wanted
    }


# --------------------------------------------------------------------------- deciding


def _touch(transfer: Transfer, status: str, reason: str | None) -> None:
    transfer.status = status
    transfer.reason = reason
    transfer.updated_at = utcnow()


def _emit(
    session: AsyncSession,
    events: EventWriter,
    transfer: Transfer,
    action: str,
    **extra: str | None,
) -> None:
    events.add(
        session,
        type=f"{TRANSFER_EVENT}.{action}.v1",
        subject=transfer.subject,
        purpose=CROSS_BORDER_PURPOSE,
        data=TransferChanged(
            transfer_id=transfer.id,
            recipient_id=transfer.recipient_id,
            order_id=transfer.order_id,
            status=transfer.status,
            **extra,
        ),
        categories=transfer.categories,
    )


def _refuse(session: AsyncSession, events: EventWriter, transfer: Transfer, *, reason: str) -> None:
    _touch(transfer, "refused", reason)
    transfer.package = None
    transfer.lease_until = None
    transfer.next_attempt_at = None
    _emit(session, events, transfer, "refused", reason=reason)


#: Transfers not delivered (nor refused) yet: what a withdrawal, an erasure or a ceased
#: purpose stops.
PENDING: Final = ("requested", "awaiting_consent", "awaiting_basis", "ready")
PURPOSE_CEASED_REASON: Final = "purpose_ceased"


async def ceased_since(session: AsyncSession) -> date | None:
    """The effective date of the cessation of ``cross_border.transfer``, if declared."""
    row = await session.get(CeasedPurpose, CROSS_BORDER_PURPOSE)
    return row.effective_date if row is not None else None


@dataclass
class Stopped:
    """What :func:`refuse_pending` stopped: the transfers refused, how many packages were
    dropped and the categories those packages held."""

    transfers: list[Transfer]
    packages_dropped: int = 0
    dropped_categories: set[str] = field(default_factory=set)


async def refuse_pending(
    session: AsyncSession, *, events: EventWriter, reason: str, subject: str | None = None
) -> Stopped:
    """Refuse every transfer not delivered yet (``subject``'s, or everyone's) with
    ``reason`` and drop its package, each with a ``refused`` event. A round already under
    way may still finish: a package that did leave is recorded as delivered (see
    :func:`_record_attempt`); a Kafka egress checks the status first."""
    query = select(Transfer).where(col(Transfer.status).in_(PENDING))
    if subject is not None:
        query = query.where(col(Transfer.subject) == subject)
    stopped = Stopped(
        transfers=list(
            await session.scalars(
                query.order_by(col(Transfer.requested_at), col(Transfer.id)).with_for_update()
            )
        )
    )
    for transfer in stopped.transfers:
        if transfer.package is not None:
            stopped.packages_dropped += 1
            stopped.dropped_categories |= set(transfer.categories)
        _refuse(session, events, transfer, reason=reason)
    await session.flush()
    return stopped


async def _blocker(
    session: AsyncSession, transfer: Transfer, recipient: Recipient, *, checks: Checks
) -> tuple[str, str] | None:
    """``(status, reason)`` if the transfer may not go now; sets the basis it is under."""
    since = await ceased_since(session)
    if since is not None and since <= checks.today:
        return "refused", PURPOSE_CEASED_REASON
    if checks.restrictions is not None:
        refused = checks.restrictions.refusal(
            transfer.subject, CROSS_BORDER_PURPOSE, transfer.categories
        )
        if refused is not None:
            return "refused", refused.code
    if not set(transfer.categories) <= set(recipient.data_categories):
        return "refused", "categories_outside_allowance"
    state = await eligibility(session, recipient.id, today=checks.today, rules=checks.rules)
    transfer.basis_id = state.basis.id if state.basis else None
    if not state.may_receive:
        return "refused", ",".join(state.blocked_because)
    assert state.basis is not None  # a recipient without a basis may not receive
    waits = await volume.blocker(
        session,
        transfer,
        basis_kind=state.basis.kind,
        year=checks.today.year,
        sensitive_categories=checks.sensitive_categories,
    )
    if waits is not None:
        return "awaiting_basis", waits
    if not checks.consent_granted(transfer.subject, recipient.id):
        return "awaiting_consent", "consent_missing"
    return None


async def _decide(
    session: AsyncSession,
    events: EventWriter,
    transfer: Transfer,
    recipient: Recipient,
    *,
    checks: Checks,
) -> None:
    blocked = await _blocker(session, transfer, recipient, checks=checks)
    if blocked is None:
        await volume.count(
            session,
            transfer,
            events=events,
            year=checks.today.year,
            sensitive_categories=checks.sensitive_categories,
        )
        _touch(transfer, "ready", None)
        session.info[WAKE_WORKER] = True
    elif blocked[0] == "refused":
        _refuse(session, events, transfer, reason=blocked[1])
    elif transfer.status != blocked[0] or transfer.reason != blocked[1]:
        _touch(transfer, blocked[0], blocked[1])
        _emit(session, events, transfer, blocked[0], reason=blocked[1])


async def request_transfer(
    session: AsyncSession,
    *,
    events: EventWriter,
    recipient: Recipient,
    subject: str,
    order_id: str,
    categories: Sequence[str],
    trigger: str,
    requested_by: str,
    checks: Checks,
    source_event_id: str | None = None,
    contract_necessary: bool = False,
) -> Transfer:
    """Record a transfer and decide it at once: refused, awaiting a basis or consent, or
    ready."""
    transfer = Transfer(
        id=new_id("trf"),
        subject=subject,
        recipient_id=recipient.id,
        order_id=order_id,
        categories=sorted(set(categories)),
        trigger=trigger,
        requested_by=requested_by,
        source_event_id=source_event_id,
        status="requested",
        contract_necessary=contract_necessary,
    )
    session.add(transfer)
    await session.flush()
    _emit(session, events, transfer, "requested", trigger=trigger)
    await _decide(session, events, transfer, recipient, checks=checks)
    await session.flush()
    return transfer


def _check_reference(name: str, value: str) -> None:
    if personal_shape(value):
        raise InvalidReference(
            f"{name} must be an id, never contact or ID data", extra={"field": name}
        )


async def create_transfer(
    session: AsyncSession,
    *,
    events: EventWriter,
    request: TransferCreate,
    requested_by: str,
    checks: Checks,
) -> TransferView:
    """An administrator's transfer; it is checked like any other (it may be refused)."""
    _check_reference("subject", request.subject)
    _check_reference("order_id", request.order_id)
    if checks.restrictions is not None:
        checks.restrictions.check(request.subject, CROSS_BORDER_PURPOSE, request.categories)
    recipient = await get_recipient_row(session, request.recipient_id)
    transfer = await request_transfer(
        session,
        events=events,
        recipient=recipient,
        subject=request.subject,
        order_id=request.order_id,
        categories=request.categories,
        trigger="admin",
        requested_by=requested_by,
        checks=checks,
        contract_necessary=request.contract_necessary,
    )
    return (await _views(session, [transfer]))[0]


def is_cross_border_order(event: Event) -> bool:
    """Whether ``event`` is a placed order with cross-border goods: the only order event
    that can start a transfer."""
    return event.type == ORDER_PLACED and event.data.get("cross_border") is True


async def on_order_event(
    session: AsyncSession, event: Event, *, events: EventWriter, checks: Checks
) -> list[str]:
    """Transfers for a placed order with cross-border goods, one per recipient routed to:
    every ``cross_border_logistics`` recipient, and every overseas seller (a recipient with
    ``goods_ids``) whose goods are in the order. Each asks for the recipient's whole
    allowance, which registration limited to what the catalogue lets go abroad. Other
    events, and domestic orders, are ignored: their data never leaves."""
    if not is_cross_border_order(event):
        return []
    order_id = event.data.get("order_id")
    if not isinstance(order_id, str) or not order_id:
        logger.warning("order event %s has no order_id; no transfer", event.id)
        return []
    goods = {str(item) for item in event.data.get("goods_ids") or () if isinstance(item, str)}
    created: list[str] = []
    for recipient in await session.scalars(
        select(Recipient).order_by(col(Recipient.created_at), col(Recipient.id))
    ):
        if not (recipient.cross_border_logistics or goods & set(recipient.goods_ids)):
            continue
        transfer = await request_transfer(
            session,
            events=events,
            recipient=recipient,
            subject=event.subject,
            order_id=order_id,
            categories=recipient.data_categories,
            trigger="order_event",
            requested_by=event.source,
            checks=checks,
            source_event_id=event.id,
            # delivering a cross-border order is necessary to perform the buyer's contract
            contract_necessary=True,
        )
        created.append(transfer.id)
    if not created:
        logger.info("cross-border order %s: no recipient is routed to it", order_id)
    return created


async def resume_awaiting(
    database: Database, *, events: EventWriter, checks: Checks, batch_size: int = 100
) -> int:
    """Re-check every transfer awaiting consent or a stronger legal basis; return how many
    moved on."""
    moved = 0
    after: tuple[datetime, str] | None = None
    while True:
        async with database.session() as session:
            query = select(Transfer).where(
                col(Transfer.status).in_(("awaiting_consent", "awaiting_basis"))
            )
            if after is not None:
                query = query.where(
                    or_(
                        col(Transfer.requested_at) > after[0],
                        (col(Transfer.requested_at) == after[0]) & (col(Transfer.id) > after[1]),
                    )
                )
            page = list(
                await session.scalars(
                    query.order_by(col(Transfer.requested_at), col(Transfer.id)).limit(batch_size)
                )
            )
            for transfer in page:
                before = transfer.status
                if before == "awaiting_consent" and not checks.consent_granted(
                    transfer.subject, transfer.recipient_id
                ):
                    continue
                recipient = await session.get(Recipient, transfer.recipient_id)
                assert recipient is not None  # a foreign key
                await _decide(session, events, transfer, recipient, checks=checks)
                moved += transfer.status != before
        if len(page) < batch_size:
            return moved
        after = (page[-1].requested_at, page[-1].id)


# --------------------------------------------------------------------------- delivering


@dataclass(frozen=True)
class _Job:
    transfer_id: str
    subject: str
    order_id: str
    recipient_id: str
    categories: tuple[str, ...]
    package: str | None
    waybill_id: str | None
    delivery: str
    endpoint_url: str | None
    public_key_pem: str


async def _claim(session: AsyncSession, transfer_id: str, *, now: datetime, lease_s: float) -> bool:
    """Take the transfer for one round (another worker's lease blocks it)."""
    result = await session.execute(
        update(Transfer)
        .where(
            col(Transfer.id) == transfer_id,
            col(Transfer.status) == "ready",
            or_(col(Transfer.lease_until).is_(None), col(Transfer.lease_until) < now),
        )
        .values(lease_until=now + timedelta(seconds=lease_s))
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


async def _reschedule(
    database: Database, transfer_id: str, *, reason: str, policy: DeliveryPolicy
) -> None:
    async with database.session() as session:
        transfer = await session.get(Transfer, transfer_id)
        if transfer is None or transfer.status != "ready":
            return
        transfer.rounds += 1
        exponent = min(transfer.rounds - 1, MAX_ROUND_EXPONENT)
        delay = min(policy.round_backoff_s * 2**exponent, policy.max_round_backoff_s)
        transfer.next_attempt_at = utcnow() + timedelta(seconds=delay)
        transfer.lease_until = None
        _touch(transfer, "ready", reason)


def _delivered(
    session: AsyncSession, events: EventWriter, transfer: Transfer, *, delivery: str
) -> None:
    _touch(transfer, "delivered", None)
    transfer.delivered_at = utcnow()
    transfer.package = None  # only the recipient could read it; its SHA-256 stays
    transfer.lease_until = None
    transfer.next_attempt_at = None
    _emit(
        session,
        events,
        transfer,
        "delivered",
        delivery=delivery,
        basis_id=transfer.basis_id,
        waybill_id=transfer.waybill_id,
    )
    # The user's processing ledger: the overseas recipient received these categories.
    events.processing(
        session,
        subject=transfer.subject,
        actor=transfer.recipient_id,
        action="read",
        purpose=CROSS_BORDER_PURPOSE,
        resource=ORDER_RESOURCE,
        categories=transfer.categories,
    )


async def _start_round(
    database: Database, transfer_id: str, *, events: EventWriter, checks: Checks, lease_s: float
) -> _Job | None:
    """Claim the transfer and check it again; the job, or None if it may not go now."""
    async with database.session() as session:
        if not await _claim(session, transfer_id, now=utcnow(), lease_s=lease_s):
            return None
        transfer = await session.get(Transfer, transfer_id)
        assert transfer is not None
        recipient = await session.get(Recipient, transfer.recipient_id)
        assert recipient is not None
        blocked = await _blocker(session, transfer, recipient, checks=checks)
        if blocked is not None and blocked[0] == "awaiting_basis":
            _touch(transfer, "awaiting_basis", blocked[1])
            transfer.lease_until = None
            _emit(session, events, transfer, "awaiting_basis", reason=blocked[1])
            return None
        if blocked is not None:
            reason = "consent_withdrawn" if blocked[0] == "awaiting_consent" else blocked[1]
            _refuse(session, events, transfer, reason=reason)
            return None
        return _Job(
            transfer_id=transfer.id,
            subject=transfer.subject,
            order_id=transfer.order_id,
            recipient_id=recipient.id,
            categories=tuple(transfer.categories),
            package=transfer.package,
            waybill_id=transfer.waybill_id,
            delivery=recipient.delivery,
            endpoint_url=recipient.endpoint_url,
            public_key_pem=recipient.public_key_pem,
        )


def build_waybill(
    raw: Mapping[str, Any],
    *,
    catalogue: Catalogue,
    categories: Iterable[str],
    waybill: str,
    issued_at: datetime,
) -> dict[str, Any]:
    """The de-identified waybill: the pseudonymous id and only the fields asked for that
    ``cross_border.transfer`` may see, masked as the catalogue says. Anything else the
    orders service might have answered is dropped here."""
    fields = order_fields_for(catalogue, categories)
    return {
        "waybill_id": waybill,
        "categories": sorted(set(categories)),
        "fields": {name: mask_value(raw.get(name), rule) for name, rule in sorted(fields.items())},
        "issued_at": issued_at.isoformat(),
    }


def _canonical(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


async def _package(
    database: Database, job: _Job, *, events: EventWriter, outbound: Outbound
) -> _Job | None:
    """Fetch, de-identify and encrypt the package, and keep it (encrypted) until delivered."""
    fields = sorted(order_fields_for(outbound.catalogue, job.categories))
    try:
        raw = await outbound.fetcher.fetch(
            order_id=job.order_id, subject=job.subject, fields=fields
        )
    except OrderUnavailable:
        async with database.session() as session:
            transfer = await session.get(Transfer, job.transfer_id)
            if transfer is not None and transfer.status == "ready":
                _refuse(session, events, transfer, reason="order_unavailable")
        return None
    except Exception as exc:
        logger.warning("transfer %s: fetching the order failed: %s", job.transfer_id, exc)
        await _reschedule(
            database, job.transfer_id, reason="order_fetch_failed", policy=outbound.policy
        )
        return None
    waybill = waybill_id(outbound.cipher, order_id=job.order_id, recipient_id=job.recipient_id)
    document = build_waybill(
        raw,
        catalogue=outbound.catalogue,
        categories=job.categories,
        waybill=waybill,
        issued_at=utcnow(),
    )
    body = encrypt_package(
        _canonical(document),
        key=load_recipient_key(job.public_key_pem),
        header={
            "transfer_id": job.transfer_id,
            "recipient_id": job.recipient_id,
            "waybill_id": waybill,
        },
    )
    async with database.session() as session:
        transfer = await session.get(Transfer, job.transfer_id)
        if transfer is None or transfer.status != "ready":
            return None
        transfer.package = body
        transfer.package_sha256 = hashlib.sha256(body.encode()).hexdigest()
        transfer.waybill_id = waybill
        transfer.updated_at = utcnow()
    return replace(job, package=body, waybill_id=waybill)


async def _attempts_so_far(database: Database, transfer_id: str) -> int:
    async with database.session() as session:
        numbers = await session.scalars(
            select(col(DeliveryAttempt.number))
            .where(col(DeliveryAttempt.transfer_id) == transfer_id)
            .order_by(col(DeliveryAttempt.number).desc())
            .limit(1)
        )
        return numbers.first() or 0


async def _record_attempt(
    database: Database,
    job: _Job,
    number: int,
    result: AttemptResult,
    *,
    events: EventWriter,
    delivery: str,
) -> None:
    async with database.session() as session:
        session.add(
            DeliveryAttempt(
                transfer_id=job.transfer_id,
                number=number,
                outcome="delivered" if result.delivered else "failed",
                status_code=result.status_code,
                error=result.error[:200] if result.error else None,
            )
        )
        if result.delivered:
            transfer = await session.get(Transfer, job.transfer_id)
            assert transfer is not None
            # Recorded as delivered even if refused meanwhile: the package did leave.
            _delivered(session, events, transfer, delivery=delivery)


async def _deliver_kafka(
    database: Database, job: _Job, *, events: EventWriter, outbound: Outbound
) -> bool:
    assert job.package is not None and job.waybill_id is not None
    number = await _attempts_so_far(database, job.transfer_id) + 1
    async with database.session() as session:
        transfer = await session.get(Transfer, job.transfer_id)
        if transfer is None or transfer.status != "ready":
            return False
        outbound.egress(job.recipient_id).add(
            session,
            type=EGRESS_EVENT,
            subject=job.waybill_id,
            purpose=CROSS_BORDER_PURPOSE,
            data=contracts.EgressPackage(
                transfer_id=job.transfer_id,
                waybill_id=job.waybill_id,
                package=job.package,  # the JWE, compact serialization
            ),
            categories=job.categories,
        )
        session.add(
            DeliveryAttempt(transfer_id=job.transfer_id, number=number, outcome="delivered")
        )
        _delivered(session, events, transfer, delivery="kafka")
    return True


async def _deliver_https(
    database: Database, job: _Job, *, events: EventWriter, outbound: Outbound
) -> bool:
    assert job.package is not None and job.endpoint_url is not None
    policy = outbound.policy
    number = await _attempts_so_far(database, job.transfer_id)
    last = AttemptResult(delivered=False, retryable=True, error="not attempted")
    for attempt in range(policy.attempts_per_round):
        last = await outbound.deliverer.post(
            job.endpoint_url,
            body=job.package.encode(),
            idempotency_key=job.transfer_id,
            recipient_id=job.recipient_id,
        )
        number += 1
        await _record_attempt(database, job, number, last, events=events, delivery="https")
        if last.delivered:
            return True
        if not last.retryable:
            break
        if attempt + 1 < policy.attempts_per_round:
            await outbound.sleep(policy.backoff_s * 2**attempt)
    await _reschedule(
        database,
        job.transfer_id,
        reason=f"delivery_failed: {last.error or 'unknown'}"[:500],
        policy=policy,
    )
    return False


async def deliver_one(
    database: Database,
    transfer_id: str,
    *,
    events: EventWriter,
    checks: Checks,
    outbound: Outbound,
) -> bool:
    """One delivery round for a ready transfer; True if it was delivered."""
    job = await _start_round(
        database, transfer_id, events=events, checks=checks, lease_s=outbound.policy.lease_s
    )
    if job is None:
        return False
    if job.package is None:
        job = await _package(database, job, events=events, outbound=outbound)
        if job is None:
            return False
    if job.delivery == "kafka":
        return await _deliver_kafka(database, job, events=events, outbound=outbound)
    return await _deliver_https(database, job, events=events, outbound=outbound)


async def deliver_due(
    database: Database, *, events: EventWriter, checks: Checks, outbound: Outbound
) -> int:
    """A round for every ready transfer that is due and not leased; how many delivered."""
    now = utcnow()
    async with database.session() as session:
        due = list(
            await session.scalars(
                select(col(Transfer.id))
                .where(
                    col(Transfer.status) == "ready",
                    or_(
                        col(Transfer.next_attempt_at).is_(None),
                        col(Transfer.next_attempt_at) <= now,
                    ),
                    or_(col(Transfer.lease_until).is_(None), col(Transfer.lease_until) < now),
                )
                .order_by(col(Transfer.requested_at), col(Transfer.id))
                .limit(outbound.policy.batch_size)
            )
        )
    delivered = 0
    for transfer_id in due:
        try:
            delivered += await deliver_one(
                database, transfer_id, events=events, checks=checks, outbound=outbound
            )
        except Exception:
            # One transfer's fault (a broken key, a database hiccup) never stops the rest;
            # its lease lapses and a later run tries again.
            logger.exception("transfer %s: the delivery round failed", transfer_id)
    return delivered


# --------------------------------------------------------------------------- reading


async def _bases(session: AsyncSession, ids: Iterable[str | None]) -> dict[str, LegalBasis]:
    wanted = {basis_id for basis_id in ids if basis_id}
    if not wanted:
        return {}
    rows = await session.scalars(select(LegalBasis).where(col(LegalBasis.id).in_(wanted)))
    return {row.id: row for row in rows}


def _basis_ref(basis: LegalBasis | None) -> BasisRef | None:
    if basis is None:
        return None
    return BasisRef.model_validate(basis, from_attributes=True)


_TRANSFER_COLUMNS: Final = tuple(name for name in TransferView.model_fields if name != "basis")


def _view(transfer: Transfer, basis: LegalBasis | None) -> TransferView:
    return TransferView.model_validate(
        {
            **{name: getattr(transfer, name) for name in _TRANSFER_COLUMNS},
            "basis": _basis_ref(basis),
        }
    )


async def _views(session: AsyncSession, transfers: Sequence[Transfer]) -> list[TransferView]:
    bases = await _bases(session, (transfer.basis_id for transfer in transfers))
    return [
        _view(transfer, bases.get(transfer.basis_id) if transfer.basis_id else None)
        for transfer in transfers
    ]


async def list_transfers(
    session: AsyncSession,
    *,
    subject: str | None,
    recipient_id: str | None,
    status: str | None,
    limit: int,
) -> list[TransferView]:
    query = select(Transfer)
    if subject is not None:
        query = query.where(col(Transfer.subject) == subject)
    if recipient_id is not None:
        query = query.where(col(Transfer.recipient_id) == recipient_id)
    if status is not None:
        query = query.where(col(Transfer.status) == status)
    rows = list(
        await session.scalars(
            query.order_by(col(Transfer.requested_at).desc(), col(Transfer.id)).limit(limit)
        )
    )
    return await _views(session, rows)


async def get_transfer(session: AsyncSession, *, transfer_id: str) -> TransferDetail:
    transfer = await session.get(Transfer, transfer_id)
    if transfer is None:
        raise NotFound("no such transfer")
    attempts = await session.scalars(
        select(DeliveryAttempt)
        .where(col(DeliveryAttempt.transfer_id) == transfer_id)
        .order_by(col(DeliveryAttempt.number))
    )
    view = (await _views(session, [transfer]))[0]
    return TransferDetail(
        **view.model_dump(),
        attempts=[AttemptView.model_validate(row, from_attributes=True) for row in attempts],
    )


def _describe(catalogue: Catalogue, categories: Iterable[str]) -> list[str]:
    """The categories in words (an unknown id, asked for and refused, as itself)."""
    known = {category.id: category.description for category in catalogue.data_categories}
    return [known.get(category, category) for category in categories]


async def my_transfers(
    session: AsyncSession, *, catalogue: Catalogue, subject: str, limit: int = 100, offset: int = 0
) -> list[UserTransferView]:
    """The subject's transfers abroad, newest first, each with its recipient's disclosure;
    a page of ``limit`` after ``offset``."""
    transfers = list(
        await session.scalars(
            select(Transfer)
            .where(col(Transfer.subject) == subject)
            .order_by(col(Transfer.requested_at).desc(), col(Transfer.id))
            .limit(limit)
            .offset(offset)
        )
    )
    recipient_ids = {transfer.recipient_id for transfer in transfers}
    recipients = {
        row.id: row
        for row in await session.scalars(
            select(Recipient).where(col(Recipient.id).in_(recipient_ids))
        )
    }
    bases = await _bases(session, (transfer.basis_id for transfer in transfers))
    views: list[UserTransferView] = []
    for transfer in transfers:
        basis = bases.get(transfer.basis_id) if transfer.basis_id else None
        views.append(
            UserTransferView.model_validate(
                {
                    "id": transfer.id,
                    "order_id": transfer.order_id,
                    "status": transfer.status,
                    "reason": transfer.reason,
                    "categories": transfer.categories,
                    "data_types": _describe(catalogue, transfer.categories),
                    "recipient": disclosure_of(
                        recipients[transfer.recipient_id], catalogue=catalogue
                    ),
                    "legal_basis": basis.kind if basis else None,
                    "requested_at": transfer.requested_at,
                    "delivered_at": transfer.delivered_at,
                }
            )
        )
    return views
