"""The ``orders.recommendation`` consumer (OB-L-12): when a user withdraws (or refuses)
``recommendation.personalised`` at the privacy center, in that one call, their tags are
deleted here (``service.delete_tags``); other events are skipped."""

from __future__ import annotations

from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from kit.app import AppContext
from kit.consumer import EventConsumer, Handler
from kit.events import Event
from services.orders.search import service

CONSENT_CHANGED: Final = "com.signature.consent.consent.changed.v1"
CONSENT_SOURCE: Final = "/consent"
TOPIC: Final = "consent.events"


def switched_off(event: Event) -> bool:
    """Whether ``event`` is the privacy center's record of a "no" to personalised
    recommendation."""
    return (
        event.type == CONSENT_CHANGED
        and event.source == CONSENT_SOURCE
        and event.data.get("purpose") == service.RECOMMENDATION_PURPOSE
        and event.data.get("granted") is False
    )


def recommendation_handler(context: AppContext) -> Handler:
    async def handle(session: AsyncSession, event: Event) -> None:
        if switched_off(event):
            await service.delete_tags(
                session, events=context.events, catalogue=context.catalogue, owner_id=event.subject
            )

    return handle


def recommendation_consumer(context: AppContext) -> EventConsumer:
    settings = context.settings
    return EventConsumer(
        name="orders.recommendation",
        topics=[settings.topic(TOPIC)],
        database=context.database,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        handler=recommendation_handler(context),
        wants=switched_off,
    )
