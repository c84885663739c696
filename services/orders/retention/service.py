"""The retention sweep: delete each personal field of an order when its own period ends,
anonymise the order when none is left. No HTTP here.

The periods come from the catalogue only (``retention_for("orders.order", field)``):
``transaction_record`` P3Y (consignee, address, customs identity, remarks; E-Commerce Law
art. 31), ``tax_record`` P10Y (invoice title and taxpayer ID), ``fulfilment_contact`` P90D
(extra phones, invoice email). Every one starts at ``order_completed``; the service refuses
to start if a period of ``orders.order`` starts at anything else, rather than guess.

The clock. ``retention_starts_at`` is stamped by the sweep itself: the order's
``completed_at`` (set by ``change_status``), or, for an order cancelled before completing,
the time it was cancelled: the transaction ended there, and without this its data would be
kept for ever (decided here; a shorter period for never-paid orders would need a catalogue
entry of its own). Orders still open are never touched.

One pass, for a moment ``now`` (injectable, so tests move the clock):

1. stamp the clock of closed orders that have none yet;
2. find orders with a field whose period may have ended (a cheap index range per period,
   checked exactly per field with ``RetentionPeriod.expires_at``), in batches, oldest clock
   first, each batch in its own transaction (on PostgreSQL rows are locked with
   ``SKIP LOCKED``, so two sweepers never handle one order); batches walk the
   ``(retention_starts_at, id)`` index of orders not yet anonymised with a row comparison,
   so a batch costs the same however many came before it;
3. delete each expired field's ciphertext (``NULL``; ``""`` for the columns that cannot be
   null), whether the catalogue says ``delete`` or ``anonymise``: a single field cannot be
   anonymised, only removed, and what ``anonymise`` keeps is the record without it;
4. when no personal field is left, anonymise the order: ``anonymised_at`` set, the link to
   the buyer removed (``buyer_id`` and the buyer's entries in the status history become
   ``anonymised``; the order's idempotency key is deleted). Goods, prices, discounts,
   amounts, status, times and partner ids stay, for statistics and reconciliation.

Events: a processing record (action ``delete``, purpose ``legal.retention``, the categories
removed) for every order that lost fields, and ``order.anonymised`` (order id and times,
no personal data) for every order anonymised; both name the buyer as subject, so the
privacy center can show the user what happened.

:class:`RetentionSweeper` runs the pass on a schedule beside the app; ``POST
/admin/retention/sweep`` and ``python -m services.orders sweep`` run it on demand.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import and_, delete, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit import contracts
from kit.background import BackgroundLoop
from kit.catalogue import Catalogue, RetentionPeriod
from kit.db import Database
from kit.models import utcnow
from kit.outbox import EventWriter
from services.orders.models import Order, OrderIdempotencyKey, OrderStatusChange
from services.orders.orders.service import EVENT_PREFIX, PERSONAL_FIELDS, RESOURCE
from services.orders.retention.schemas import FieldRemoved, SweepReport
from services.orders.search import service as search_service
from services.orders.security import service as security_service
from services.orders.support import service as support_service

logger = logging.getLogger("services.orders.retention")

PURPOSE: Final = "legal.retention"
ACTOR: Final = "orders.retention"
ANONYMOUS: Final = "anonymised"
CLOCK_START: Final = "order_completed"
DEFAULT_BATCH_SIZE: Final = 200

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class FieldRule:
    field: str
    period: RetentionPeriod

    @property
    def column(self) -> Any:
        return col(getattr(Order, f"{self.field}_encrypted"))

    @property
    def cleared(self) -> str | None:
        """What a deleted value becomes: ``NULL``, or ``""`` where the column is required."""
        nullable = Order.__table__.c[f"{self.field}_encrypted"].nullable  # type: ignore[attr-defined]
        return None if nullable else ""


def rules(catalogue: Catalogue) -> list[FieldRule]:
    """Every personal field of an order with its retention period, from the catalogue."""
    return [FieldRule(field, catalogue.retention_for(RESOURCE, field)) for field in PERSONAL_FIELDS]


def check_catalogue(catalogue: Catalogue) -> None:
    """Refuse to start if a period of an order's field starts at anything but completion."""
    wrong = [rule.field for rule in rules(catalogue) if rule.period.starts != CLOCK_START]
    if wrong:
        raise RuntimeError(f"retention of {RESOURCE} fields {wrong} must start at {CLOCK_START}")


def _present(column: Any) -> Any:
    return and_(column.is_not(None), column != "")


def _has_value(order: Order, rule: FieldRule) -> bool:
    return bool(getattr(order, f"{rule.field}_encrypted"))


async def start_clocks(session: AsyncSession) -> None:
    """Stamp ``retention_starts_at`` on closed orders without one: completion, or the
    first cancellation of an order that never completed."""
    unstamped = col(Order.retention_starts_at).is_(None)
    await session.execute(
        update(Order)
        .where(unstamped, col(Order.completed_at).is_not(None))
        .values(retention_starts_at=col(Order.completed_at))
        .execution_options(synchronize_session=False)
    )
    cancelled_at = (
        select(func.min(col(OrderStatusChange.at)))
        .where(
            col(OrderStatusChange.order_id) == col(Order.id),
            col(OrderStatusChange.status) == "cancelled",
        )
        .scalar_subquery()
    )
    await session.execute(
        update(Order)
        .where(unstamped, col(Order.status) == "cancelled")
        .values(retention_starts_at=cancelled_at)
        .execution_options(synchronize_session=False)
    )


def _due(field_rules: Sequence[FieldRule], now: datetime) -> Any:
    """Orders that may hold a field whose period ended by ``now`` (a superset)."""
    by_period: dict[str, list[FieldRule]] = {}
    for rule in field_rules:
        by_period.setdefault(rule.period.id, []).append(rule)
    return or_(
        *(
            and_(
                col(Order.retention_starts_at) <= now - group[0].period.period.shortest_span(),
                or_(*(_present(rule.column) for rule in group)),
            )
            for group in by_period.values()
        )
    )


@dataclass
class Batch:
    examined: int = 0
    changed: int = 0
    anonymised: int = 0
    last: tuple[datetime, str] | None = None


async def anonymise(
    session: AsyncSession, *, events: EventWriter, orders: Sequence[Order], now: datetime
) -> None:
    """Unlink ``orders`` from their buyers: three statements for the whole batch, whatever
    its size (``make bench``: one set per order made the sweep ~4 statements an order)."""
    if not orders:
        return
    buyers = [(order.id, order.buyer_id) for order in orders]
    for order in orders:
        assert order.retention_starts_at is not None
        events.add(
            session,
            type=f"{EVENT_PREFIX}.anonymised.v1",
            subject=order.buyer_id,
            purpose=PURPOSE,
            data=contracts.OrderAnonymised(
                order_id=order.id,
                retention_started_at=order.retention_starts_at.isoformat(),
                anonymised_at=now.isoformat(),
            ),
        )
        order.buyer_id = ANONYMOUS
        order.anonymised_at = now
    await session.flush()
    ids = [order_id for order_id, _ in buyers]
    await session.execute(
        update(OrderStatusChange)
        .where(
            col(OrderStatusChange.order_id).in_(ids),  # the indexed column, for the planner
            tuple_(col(OrderStatusChange.order_id), col(OrderStatusChange.actor)).in_(buyers),
        )
        .values(actor=ANONYMOUS)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        delete(OrderIdempotencyKey).where(
            col(OrderIdempotencyKey.buyer_id).in_({buyer for _, buyer in buyers}),  # its key
            tuple_(col(OrderIdempotencyKey.order_id), col(OrderIdempotencyKey.buyer_id)).in_(
                buyers
            ),
        )
    )


async def sweep_batch(
    session: AsyncSession,
    *,
    events: EventWriter,
    catalogue: Catalogue,
    now: datetime,
    removed: Counter[str],
    after: tuple[datetime, str] | None = None,
    limit: int = DEFAULT_BATCH_SIZE,
) -> Batch:
    """One batch of the sweep (step 2-4 of the module docstring) in ``session``, after the
    ``(retention_starts_at, id)`` position ``after``; counts deleted fields in ``removed``."""
    field_rules = rules(catalogue)
    query = select(Order).where(
        col(Order.anonymised_at).is_(None),
        col(Order.retention_starts_at).is_not(None),
        _due(field_rules, now),
    )
    if after is not None:
        # A row comparison, so the (clock, id) index seeks past what earlier batches did
        # instead of visiting their index entries again (many orders may share one clock).
        query = query.where(tuple_(col(Order.retention_starts_at), col(Order.id)) > after)
    query = query.order_by(col(Order.retention_starts_at), col(Order.id)).limit(limit)
    found = list(await session.scalars(query.with_for_update(skip_locked=True)))
    batch = Batch(examined=len(found))
    emptied: list[Order] = []
    for order in found:
        clock_started = order.retention_starts_at
        assert clock_started is not None
        batch.last = (clock_started, order.id)
        expired = [
            rule
            for rule in field_rules
            if _has_value(order, rule) and rule.period.expires_at(clock_started) <= now
        ]
        if not expired:
            continue
        for rule in expired:
            setattr(order, f"{rule.field}_encrypted", rule.cleared)
            removed[rule.field] += 1
        batch.changed += 1
        events.processing(
            session,
            subject=order.buyer_id,
            actor=ACTOR,
            action="delete",
            purpose=PURPOSE,
            resource=RESOURCE,
            categories={catalogue.field_policy(RESOURCE, rule.field).category for rule in expired},
        )
        if not any(_has_value(order, rule) for rule in field_rules):
            emptied.append(order)
    await anonymise(session, events=events, orders=emptied, now=now)
    batch.anonymised = len(emptied)
    await session.flush()
    return batch


async def run_sweep(
    database: Database,
    *,
    events: EventWriter,
    catalogue: Catalogue,
    now: datetime | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    keep_going: Callable[[], bool] = lambda: True,
) -> SweepReport:
    """The whole sweep for the moment ``now`` (default: the current time), one transaction
    per batch; ``keep_going`` is asked between batches (a stopping app says no)."""
    now = now or utcnow()
    async with database.session() as session:
        await start_clocks(session)
    async with database.session() as session:
        searches = await search_service.expire(session, events=events, catalogue=catalogue, now=now)
        await security_service.expire_signals(session, catalogue=catalogue, now=now)
        await support_service.expire(session, events=events, catalogue=catalogue, now=now)
    removed: Counter[str] = Counter()
    examined = changed = anonymised = 0
    after: tuple[datetime, str] | None = None
    while keep_going():
        async with database.session() as session:
            batch = await sweep_batch(
                session,
                events=events,
                catalogue=catalogue,
                now=now,
                removed=removed,
                after=after,
                limit=batch_size,
            )
        examined += batch.examined
        changed += batch.changed
        anonymised += batch.anonymised
        if batch.examined < batch_size or batch.last is None:
            break
        after = batch.last
    return SweepReport(
        ran_at=now,
        orders_examined=examined,
        orders_changed=changed,
        orders_anonymised=anonymised,
        search_entries_deleted=searches,
        fields=[
            FieldRemoved(field=rule.field, retention=rule.period.id, removed=removed[rule.field])
            for rule in rules(catalogue)
        ],
    )


class RetentionSweeper(BackgroundLoop):
    """Runs :func:`run_sweep` at start and then every ``interval_s`` until stopped."""

    def __init__(
        self,
        *,
        database: Database,
        events: EventWriter,
        catalogue: Catalogue,
        interval_s: float,
        batch_size: int = DEFAULT_BATCH_SIZE,
        clock: Clock = utcnow,
        name: str = "retention-sweeper",
    ) -> None:
        super().__init__(name)
        self.database = database
        self.events = events
        self.catalogue = catalogue
        self.interval_s = interval_s
        self.batch_size = batch_size
        self.clock = clock
        self.sweeps = 0
        self.last_report: SweepReport | None = None
        self.last_error: str | None = None

    async def sweep_once(self) -> SweepReport:
        report = await run_sweep(
            self.database,
            events=self.events,
            catalogue=self.catalogue,
            now=self.clock(),
            batch_size=self.batch_size,
            keep_going=lambda: not self.stopping,
        )
        self.sweeps += 1
        self.last_report, self.last_error = report, None
        if report.orders_changed:
            logger.info(
                "retention sweep: %d orders lost fields, %d anonymised",
                report.orders_changed,
                report.orders_anonymised,
            )
        return report

    async def run(self) -> None:
        while not self.stopping:
            try:
                await self.sweep_once()
            except Exception as exc:
                self.last_error = type(exc).__name__
                logger.exception(
                    "%s: the sweep failed; retrying in %.0fs", self.name, self.interval_s
                )
            await self.pause(self.interval_s)
