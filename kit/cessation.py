"""A ceased purpose, as the services that hold data for it see it (policy 2J, OB-2J-1).

The privacy center publishes ``com.signature.consent.purpose.ceased.v1`` on
``consent.events`` (subject: the cessation id; data: ``cessation_id``, ``purpose``,
``effective_date``, ``deletion_due``). Only purposes of kind ``additional`` or ``separate``
can cease here (a ``legal`` one never does; a ``basic`` one would end the service itself).
Each service that collects or holds data for such a purpose consumes the event
(:func:`cessation_consumer`, group ``<service>.cessation``) and, in one transaction:

- records the cessation in its own ``ceased_purpose`` table (:func:`record`), so its code
  refuses collection for the purpose from the effective date on (:class:`PurposeCeased`,
  410 problem+json, the code the gateway uses too);
- deletes or anonymises the data it holds only for that purpose, once the effective date
  has come;
- publishes ``com.signature.<service>.purpose.cessation.applied.v1`` (:func:`applied`):
  the cessation id, purpose, effective date, what stopped and counts; no personal data.

:func:`ceased_of` reads the event; anything else (another type or source) is None.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Final, Protocol

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from kit.app import AppContext
from kit.consumer import EventConsumer, Handler
from kit.contracts import CessationApplied
from kit.errors import DomainError
from kit.events import Event
from kit.outbox import EventWriter

PURPOSE_CEASED: Final = "com.signature.consent.purpose.ceased.v1"
SOURCE: Final = "/consent"
TOPIC: Final = "consent.events"
#: Purpose kinds a cessation applies to in the services.
CEASABLE_KINDS: Final = frozenset({"additional", "separate"})


class PurposeCeased(DomainError):
    """Collection for a ceased purpose (410, the gateway's code for the same refusal)."""

    status, code, title = 410, "purpose-ceased", "Purpose ceased"


@dataclass(frozen=True)
class Cessation:
    cessation_id: str
    purpose: str
    effective_date: date

    def in_effect(self, today: date) -> bool:
        return self.effective_date <= today


def ceased_of(event: Event) -> Cessation | None:
    """The cessation in ``event`` when it is a ``purpose.ceased`` from the privacy center."""
    if event.type != PURPOSE_CEASED or event.source != SOURCE:
        return None
    data = event.data
    cessation_id, purpose, effective = (
        data.get("cessation_id"),
        data.get("purpose"),
        data.get("effective_date"),
    )
    if not (isinstance(cessation_id, str) and isinstance(purpose, str) and purpose):
        raise ValueError("a purpose.ceased event without a cessation id or a purpose")
    if not isinstance(effective, str):
        raise ValueError("a purpose.ceased event without an effective date")
    return Cessation(
        cessation_id=cessation_id, purpose=purpose, effective_date=date.fromisoformat(effective)
    )


def refusal(purpose: str, since: date) -> PurposeCeased:
    return PurposeCeased(
        f"the purpose {purpose} has ceased: nothing is collected for it any more",
        extra={"purpose": purpose, "effective_date": since.isoformat()},
    )


def applied(
    session: AsyncSession,
    *,
    events: EventWriter,
    service: str,
    cessation: Cessation,
    stopped: Iterable[str],
    counts: Mapping[str, int],
    categories: Iterable[str] = (),
) -> Event:
    """``com.signature.<service>.purpose.cessation.applied.v1`` through the outbox."""
    return events.add(
        session,
        type=f"com.signature.{service}.purpose.cessation.applied.v1",
        subject=cessation.cessation_id,
        purpose=cessation.purpose,
        categories=categories,
        data=CessationApplied(
            cessation_id=cessation.cessation_id,
            purpose=cessation.purpose,
            effective_date=cessation.effective_date.isoformat(),
            stopped=sorted(set(stopped)),
            counts=dict(sorted(counts.items())),
        ),
    )


async def record(session: AsyncSession, model: type[SQLModel], ceased: Cessation) -> None:
    """Keep ``ceased`` in the service's own ``ceased_purpose`` table (``model``: purpose,
    cessation id, effective date), replacing an earlier cessation of the same purpose."""
    values = {"cessation_id": ceased.cessation_id, "effective_date": ceased.effective_date}
    row = await session.get(model, ceased.purpose)
    if row is None:
        session.add(model(purpose=ceased.purpose, **values))
    else:
        for name, value in values.items():
            setattr(row, name, value)


class Applier(Protocol):
    """A service's ``handle``: applies one ``purpose.ceased`` event in its transaction."""

    async def __call__(
        self, session: AsyncSession, *, events: EventWriter, event: Event
    ) -> object: ...


def cessation_handler(events: EventWriter, apply: Applier) -> Handler:
    """The handler the consumer runs once per event id (also usable in tests)."""

    async def handle(session: AsyncSession, event: Event) -> None:
        await apply(session, events=events, event=event)

    return handle


def cessation_consumer(context: AppContext, *, service: str, apply: Applier) -> EventConsumer:
    """The ``<service>.cessation`` consumer of the privacy center's events topic."""
    settings = context.settings
    return EventConsumer(
        name=f"{service}.cessation",
        topics=[settings.topic(TOPIC)],
        database=context.database,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        handler=cessation_handler(context.events, apply),
        wants=lambda event: ceased_of(event) is not None,
    )
