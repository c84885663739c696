"""The ``consent.ledger`` consumer: every processing and access event of the suite becomes
an entry in its subject's ledger; identity's partner and staff events name the actors."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from kit.app import AppContext
from kit.consumer import EventConsumer
from kit.events import Event
from services.consent.config import Settings
from services.consent.ledger import service

GROUP = "consent.ledger"
#: How long a small fetch waits for more events: one transaction for the reads of many
#: requests instead of one each (the ledger is read seconds later, not milliseconds).
BATCH_LINGER_S = 0.25


def ledger_consumer(context: AppContext) -> EventConsumer:
    settings = context.settings
    assert isinstance(settings, Settings)
    catalogue = context.catalogue

    async def handle(session: AsyncSession, event: Event) -> None:
        await service.record_event(session, event, catalogue=catalogue)

    async def handle_batch(session: AsyncSession, events: Sequence[Event]) -> None:
        await service.record_events(session, events, catalogue=catalogue)

    return EventConsumer(
        # The group (and dedup record) name lives behind the topic prefix, so that two
        # deployments sharing a broker never share offsets.
        name=GROUP,
        topics=[settings.topic(topic) for topic in settings.ledger_source_topics],
        database=context.database,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        handler=handle,
        batch_handler=handle_batch,  # the ledger keeps up with the whole suite's events
        batch_linger_s=BATCH_LINGER_S,
    )


def consumers(context: AppContext) -> list[EventConsumer]:
    return [ledger_consumer(context)]
