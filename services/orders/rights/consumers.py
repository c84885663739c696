"""The ``orders.rights`` consumer: answers the privacy center's rights requests that name
orders (``services.orders.rights.service.handle``); other events are skipped. A correction
is read from the privacy center through ``corrections`` (``kit.rights.CorrectionsFetcher``,
made at start when a service client is configured; see ``services.orders.main``). A
deletion refunds the subject's paid orders through ``refunds`` (the app's provider API)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from kit import rights
from kit.app import AppContext
from kit.consumer import EventConsumer, Handler
from kit.events import Event
from services.orders.payments.service import Refunds
from services.orders.rights import service


def rights_handler(
    context: AppContext,
    corrections: rights.CorrectionsSource | None = None,
    refunds: Refunds | None = None,
) -> Handler:
    """The handler the consumer runs once per event id (also usable in tests)."""

    async def handle(session: AsyncSession, event: Event) -> None:
        await service.handle(
            session,
            events=context.events,
            catalogue=context.catalogue,
            event=event,
            cipher=context.cipher,
            corrections=corrections,
            refunds=refunds,
        )

    return handle


def rights_consumer(
    context: AppContext,
    corrections: rights.CorrectionsSource | None = None,
    refunds: Refunds | None = None,
) -> EventConsumer:
    settings = context.settings
    return rights.rights_consumer(
        service=service.SERVICE,
        topic=settings.topic(rights.REQUESTS_TOPIC),
        database=context.database,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        handler=rights_handler(context, corrections, refunds),
    )
