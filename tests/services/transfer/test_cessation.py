"""A ceased ``cross_border.transfer`` at transfer (OB-2J-1): from the effective date every
transfer not delivered is refused (``purpose_ceased``) with its package dropped, new ones
are refused at once, delivered records stay; a cessation dated later waits for its date."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kit.cessation import cessation_handler
from kit.clock import china_today
from kit.events import Event
from kit.testing import purpose_ceased_event
from services.transfer.cessation import service
from services.transfer.models import Transfer
from tests.services.transfer.conftest import TransferApp
from tests.services.transfer.test_rights import stored, three_transfers


async def apply(transfer: TransferApp, event: Event) -> None:
    async with transfer.context.database.session() as session:
        await cessation_handler(transfer.context.events, service.handle)(session, event)


async def applied(transfer: TransferApp) -> list[Event]:
    return [
        e
        for e in await transfer.outbox_events()
        if e.type == "com.signature.transfer.purpose.cessation.applied.v1"
    ]


@pytest.mark.obligation("OB-2J-1")
async def test_a_ceased_transfer_purpose_refuses_what_has_not_left(transfer: TransferApp) -> None:
    subject, _ = transfer.user()
    delivered, ready, waiting = await three_transfers(transfer, subject)
    await apply(transfer, purpose_ceased_event("cross_border.transfer", china_today()))

    for transfer_id in (ready, waiting):
        row: Transfer = await stored(transfer, transfer_id)
        assert row.status == "refused" and row.reason == "purpose_ceased"
        assert row.package is None
    assert (await stored(transfer, delivered)).status == "delivered"
    (event,) = await applied(transfer)
    assert event.data["counts"] == {"transfers_refused": 2, "packages_dropped": 1}
    assert event.subject == "ces_abcdefghijklmnopqrstuvwx"

    # Collection stops at once: a new transfer, even with consent, is refused.
    recipient = await transfer.register()
    transfer.grant(subject, recipient["id"])
    made = await transfer.request(recipient["id"], subject, transfer.orders.add(subject))
    assert made["status"] == "refused" and made["reason"] == "purpose_ceased"


@pytest.mark.obligation("OB-2J-1")
async def test_a_cessation_dated_later_waits_for_its_date(transfer: TransferApp) -> None:
    subject, _ = transfer.user()
    recipient = await transfer.register()
    waiting = await transfer.request(recipient["id"], subject, transfer.orders.add(subject))
    await apply(
        transfer, purpose_ceased_event("cross_border.transfer", china_today() + timedelta(days=3))
    )
    assert (await stored(transfer, waiting["id"])).status == "awaiting_consent"
    (event,) = await applied(transfer)
    assert event.data["counts"] == {"transfers_refused": 0, "packages_dropped": 0}


@pytest.mark.obligation("OB-2J-1")
async def test_other_purposes_are_ignored(transfer: TransferApp) -> None:
    await apply(transfer, purpose_ceased_event("location", china_today()))
    assert await applied(transfer) == []
