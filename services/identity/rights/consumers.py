"""The ``identity.rights`` consumer: answers the privacy center's rights requests that name
identity (``services.identity.rights.service.handle``); other events are skipped."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from kit import rights
from kit.app import AppContext
from kit.background import BackgroundLoop
from kit.consumer import Handler
from kit.events import Event
from services.identity.rights import service


def rights_handler(context: AppContext) -> Handler:
    """The handler the consumer runs once per event id (also usable in tests)."""

    async def handle(session: AsyncSession, event: Event) -> None:
        await service.handle(
            session,
            cipher=context.cipher,
            events=context.events,
            catalogue=context.catalogue,
            event=event,
        )

    return handle


def consumers(context: AppContext) -> list[BackgroundLoop]:
    settings = context.settings
    return [
        rights.rights_consumer(
            service=service.SERVICE,
            topic=settings.topic(rights.REQUESTS_TOPIC),
            database=context.database,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            handler=rights_handler(context),
        )
    ]
