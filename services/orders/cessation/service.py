"""Ceased purposes at orders (policy 2J, OB-2J-1; ``kit.cessation``). No HTTP here.

Orders collects for two purposes that can cease: ``location`` (address autofill and nearby
goods) and ``marketing.price_drop`` (price-drop reminders on the cart). When the privacy
center declares one ceased, :func:`handle` records it (``ceased_purpose``) and, once the
effective date has come:

- ``location``: the features refuse with 410 ``purpose-ceased`` (checked by
  ``location.service`` through :func:`check_not_ceased`, before the consent); coordinates
  were never stored, so nothing is deleted;
- ``marketing.price_drop``: reminders stop (``cart.service`` checks :func:`is_ceased`)
  and the reminder state kept on cart items for that purpose only (the last price
  reminded of) is deleted for everyone; the carts stay (they serve ``cart``).

Before the effective date the cessation is recorded and collection goes on; the refusal
starts by itself on the date (the check compares with today, China time), and the reminder
state is deleted then by the price-drop sweep (:func:`forget_price_drops`).

Every cessation handled publishes ``com.signature.orders.purpose.cessation.applied.v1``
with what stopped and counts (``kit.cessation.applied``). Cessations of purposes orders
does not collect for are ignored.
"""

from __future__ import annotations

from datetime import date
from typing import Final

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit import cessation
from kit.clock import china_today
from kit.events import Event
from kit.outbox import EventWriter
from services.orders.models import CartItem, CeasedPurpose

SERVICE: Final = "orders"
LOCATION: Final = "location"
PRICE_DROP: Final = "marketing.price_drop"
#: Purposes orders collects for that can cease, and what stops with each.
STOPS: Final = {
    LOCATION: ["location.address_autofill", "location.nearby_goods"],
    PRICE_DROP: ["cart.price_drop_reminders"],
}


async def ceased_since(session: AsyncSession, purpose: str) -> date | None:
    """The effective date of ``purpose``'s cessation, or None while it has not ceased."""
    row = await session.get(CeasedPurpose, purpose)
    return row.effective_date if row is not None else None


async def is_ceased(session: AsyncSession, purpose: str, *, today: date | None = None) -> bool:
    since = await ceased_since(session, purpose)
    return since is not None and since <= (today or china_today())


async def check_not_ceased(
    session: AsyncSession, purpose: str, *, today: date | None = None
) -> None:
    """Raise :class:`kit.cessation.PurposeCeased` (410) once ``purpose`` has ceased."""
    since = await ceased_since(session, purpose)
    if since is not None and since <= (today or china_today()):
        raise cessation.refusal(purpose, since)


async def forget_price_drops(session: AsyncSession) -> int:
    """Delete the price-drop reminder state of every cart item; how many had one."""
    result = await session.execute(
        update(CartItem)
        .where(col(CartItem.reminded_price).is_not(None))
        .values(reminded_price=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def handle(
    session: AsyncSession, *, events: EventWriter, event: Event, today: date | None = None
) -> Event | None:
    """Apply a ``purpose.ceased`` event (see the module docstring); None for other events
    and for purposes orders does not collect for."""
    ceased = cessation.ceased_of(event)
    if ceased is None or ceased.purpose not in STOPS:
        return None
    await cessation.record(session, CeasedPurpose, ceased)
    counts = {"coordinates_deleted": 0} if ceased.purpose == LOCATION else {}
    if ceased.purpose == PRICE_DROP:
        in_effect = ceased.in_effect(today or china_today())
        counts["reminder_states_deleted"] = await forget_price_drops(session) if in_effect else 0
    await session.flush()
    return cessation.applied(
        session,
        events=events,
        service=SERVICE,
        cessation=ceased,
        stopped=STOPS[ceased.purpose],
        counts=counts,
    )
