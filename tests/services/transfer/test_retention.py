"""The retention sweep of transfer records (OB-4-1): a closed record goes with its delivery
attempts once ``transfer_record`` has run from its date, and the user's ledger is told;
recent and open transfers stay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlmodel import col

from kit.models import utcnow
from services.transfer.models import DeliveryAttempt, Transfer
from services.transfer.retention import service as retention
from tests.services.transfer.conftest import TransferApp
from tests.services.transfer.test_rights import three_transfers


async def attempts_of(transfer: TransferApp, transfer_id: str) -> int:
    async with transfer.context.database.session() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(DeliveryAttempt)
            .where(col(DeliveryAttempt.transfer_id) == transfer_id)
        )
    return int(count or 0)


@pytest.mark.obligation("OB-4-2")
async def test_records_past_their_period_go_and_the_rest_stay(transfer: TransferApp) -> None:
    subject, _ = transfer.user()
    delivered, ready, waiting = await three_transfers(transfer, subject)
    other, _ = transfer.user()
    recent, _, _ = await three_transfers(transfer, other)
    assert await attempts_of(transfer, delivered) >= 1
    context = transfer.context
    now = utcnow()
    async with context.database.session() as session:
        # Delivered three years and a day ago; the open ones are as old but not closed.
        await session.execute(
            update(Transfer)
            .where(col(Transfer.id).in_([delivered, ready, waiting]))
            .values(
                delivered_at=now - timedelta(days=3 * 366 + 1),
                updated_at=now - timedelta(days=3 * 366 + 1),
            )
        )
        await session.execute(
            update(Transfer)
            .where(
                col(Transfer.id).in_([delivered, ready, waiting]),
                col(Transfer.status) != "delivered",
            )
            .values(delivered_at=None)
        )
    before = len(await transfer.outbox_events())

    deleted = await retention.sweep(
        context.database, events=context.events, catalogue=context.catalogue, now=now
    )

    assert deleted == 1
    async with context.database.session() as session:
        left = set(await session.scalars(select(col(Transfer.id))))
    assert delivered not in left and {ready, waiting, recent} <= left
    assert await attempts_of(transfer, delivered) == 0
    events = (await transfer.outbox_events())[before:]
    assert [(e.subject, e.purpose, e.type.rsplit(".", 2)[-2]) for e in events] == [
        (subject, "legal.retention", "delete")
    ]
    assert (
        await retention.sweep(
            context.database, events=context.events, catalogue=context.catalogue, now=now
        )
        == 0
    )
