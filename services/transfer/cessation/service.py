"""A ceased ``cross_border.transfer`` at transfer (policy 2J, OB-2J-1; ``kit.cessation``).
No HTTP here.

Transfer provides data abroad for one purpose, ``cross_border.transfer`` (separate
consent), which can cease. When the privacy center declares it ceased, :func:`handle`
records it (``ceased_purpose``) and, once the effective date has come, refuses every
transfer not delivered yet (reason ``purpose_ceased``) and drops its package
(``transfers.service.refuse_pending``). From the effective date on, deciding a transfer or
starting a delivery round refuses it as well (``transfers.service`` asks
:func:`ceased_since`), so a cessation dated in the future takes effect on its date. The
records of transfers made stay under their ``transfer_record`` retention.

It publishes ``com.signature.transfer.purpose.cessation.applied.v1`` with counts
(``transfers_refused``, ``packages_dropped``; ``kit.cessation.applied``). Cessations of
other purposes are ignored: transfer collects for no other.
"""

from __future__ import annotations

from datetime import date
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from kit import cessation
from kit.clock import china_today
from kit.consent_state import CROSS_BORDER_PURPOSE
from kit.events import Event
from kit.outbox import EventWriter
from services.transfer.models import CeasedPurpose
from services.transfer.transfers.service import PURPOSE_CEASED_REASON, refuse_pending

SERVICE: Final = "transfer"
STOPPED: Final = ["transfer.transfers"]


async def handle(
    session: AsyncSession, *, events: EventWriter, event: Event, today: date | None = None
) -> Event | None:
    """Apply a ``purpose.ceased`` event for ``cross_border.transfer``; None otherwise."""
    ceased = cessation.ceased_of(event)
    if ceased is None or ceased.purpose != CROSS_BORDER_PURPOSE:
        return None
    await cessation.record(session, CeasedPurpose, ceased)
    await session.flush()
    refused = dropped = 0
    categories: set[str] = set()
    if ceased.in_effect(today or china_today()):
        stopped = await refuse_pending(session, events=events, reason=PURPOSE_CEASED_REASON)
        refused, dropped = len(stopped.transfers), stopped.packages_dropped
        categories = stopped.dropped_categories
    return cessation.applied(
        session,
        events=events,
        service=SERVICE,
        cessation=ceased,
        stopped=STOPPED,
        counts={"transfers_refused": refused, "packages_dropped": dropped},
        categories=categories,
    )
