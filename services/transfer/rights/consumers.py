"""The ``transfer.rights`` consumer: answers the privacy center's rights requests that name
transfer (``services.transfer.rights.service.handle``); other events are skipped."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from kit import rights
from kit.app import AppContext
from kit.consumer import EventConsumer, Handler
from kit.events import Event
from services.transfer.rights import service


def rights_handler(context: AppContext) -> Handler:
    async def handle(session: AsyncSession, event: Event) -> None:
        await service.handle(
            session, events=context.events, catalogue=context.catalogue, event=event
        )

    return handle


def rights_consumer(context: AppContext) -> EventConsumer:
    settings = context.settings
    return rights.rights_consumer(
        service=service.SERVICE,
        topic=settings.topic(rights.REQUESTS_TOPIC),
        database=context.database,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        handler=rights_handler(context),
    )
