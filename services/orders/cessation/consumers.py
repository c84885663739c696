"""The ``orders.cessation`` consumer: applies the privacy center's ``purpose.ceased`` events
(``services.orders.cessation.service.handle``); other events are skipped."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from kit import cessation
from kit.app import AppContext
from kit.consumer import EventConsumer, Handler
from kit.events import Event
from services.orders.cessation import service


def cessation_handler(context: AppContext) -> Handler:
    """The handler the consumer runs once per event id (also usable in tests)."""

    async def handle(session: AsyncSession, event: Event) -> None:
        await service.handle(session, events=context.events, event=event)

    return handle


def cessation_consumer(context: AppContext) -> EventConsumer:
    settings = context.settings
    return cessation.cessation_consumer(
        service=service.SERVICE,
        topic=settings.topic(cessation.TOPIC),
        database=context.database,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        handler=cessation_handler(context),
    )
