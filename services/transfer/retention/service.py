"""The retention sweep of transfer records (OB-4-1). No HTTP here.

A transfer record is the evidence of what was provided abroad, to whom and when (PIPL art.
55, 56); the catalogue keeps it ``transfer_record`` (three years) from the record's date:
its delivery, or its last change for a refused transfer, and never less than three years
whatever the catalogue says (``kit.records``, OB-L-9). Recipients, their legal bases and
their assessments (the impact assessments of each provision abroad) are never swept.
Open transfers (requested,
awaiting consent, ready) are never touched: their clock has not started.

:func:`sweep` deletes, in batches, every closed transfer whose period ended by ``now``,
with its delivery attempts, and records each deletion as processing (action ``delete``,
purpose ``legal.retention``, the subject's account id as category) so the user's ledger
shows it. :class:`~kit.background.PeriodicTask` runs it beside the app
(:func:`retention_sweeper`).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Final

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit import records
from kit.app import AppContext
from kit.background import PeriodicTask
from kit.catalogue import Catalogue
from kit.db import Database
from kit.models import utcnow
from kit.outbox import EventWriter
from services.transfer.models import DeliveryAttempt, Transfer
from services.transfer.rights.service import RECORD_CATEGORY, RECORD_RETENTION, RESOURCE

PURPOSE: Final = "legal.retention"
ACTOR: Final = "transfer.retention"
CLOSED: Final = ("delivered", "refused")
BATCH_SIZE: Final = 500


async def sweep_batch(
    session: AsyncSession, *, events: EventWriter, catalogue: Catalogue, now: datetime
) -> int:
    """Delete up to :data:`BATCH_SIZE` expired records; return how many."""
    period = catalogue.retention_period(RECORD_RETENTION)
    # The period's shortest span never misses a record; each is then checked exactly.
    made = func.coalesce(col(Transfer.delivered_at), col(Transfer.updated_at))
    candidates = list(
        await session.scalars(
            select(Transfer)
            .where(col(Transfer.status).in_(CLOSED), made <= now - records.shortest_span(period))
            .order_by(made, col(Transfer.id))
            .limit(BATCH_SIZE)
        )
    )
    expired = [
        t for t in candidates if records.kept_until(period, t.delivered_at or t.updated_at) <= now
    ]
    if not expired:
        return 0
    ids = [t.id for t in expired]
    await session.execute(delete(DeliveryAttempt).where(col(DeliveryAttempt.transfer_id).in_(ids)))
    await session.execute(delete(Transfer).where(col(Transfer.id).in_(ids)))
    by_subject: defaultdict[str, int] = defaultdict(int)
    for record in expired:
        by_subject[record.subject] += 1
    for subject in sorted(by_subject):
        events.processing(
            session,
            subject=subject,
            actor=ACTOR,
            action="delete",
            purpose=PURPOSE,
            resource=RESOURCE,
            categories=[RECORD_CATEGORY],
        )
    return len(expired)


async def sweep(
    database: Database, *, events: EventWriter, catalogue: Catalogue, now: datetime | None = None
) -> int:
    """Every expired record, one transaction per batch; returns how many were deleted."""
    now = now or utcnow()
    deleted = 0
    while True:
        async with database.session() as session:
            done = await sweep_batch(session, events=events, catalogue=catalogue, now=now)
        deleted += done
        if done < BATCH_SIZE:
            return deleted


def retention_sweeper(context: AppContext, *, interval_s: float) -> PeriodicTask:
    async def run() -> None:
        await sweep(context.database, events=context.events, catalogue=context.catalogue)

    return PeriodicTask("transfer.retention", job=run, interval_s=interval_s)
