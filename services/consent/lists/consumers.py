"""The ``consent.lists`` consumer: reads identity's and transfer's events topics and the
privacy center's own, records each partner and overseas recipient registered (or a partner
revoked) and makes a new version of the two lists when they or the policy in effect
changed (OB-L-1). Other events are skipped."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from kit.app import AppContext
from kit.background import BackgroundLoop
from kit.clock import china_today
from kit.consumer import EventConsumer, Handler
from kit.events import Event
from kit.models import utcnow
from services.consent.config import Settings
from services.consent.lists import service
from services.consent.policies.service import PUBLISHED_EVENT

CONSUMER_NAME = "consent.lists"


def wants(event: Event) -> bool:
    return event.type in service.REGISTRY_EVENTS or event.type == PUBLISHED_EVENT


def lists_handler(context: AppContext) -> Handler:
    async def handle(session: AsyncSession, event: Event) -> None:
        if event.type == PUBLISHED_EVENT and event.source != "/consent":
            return
        if event.type != PUBLISHED_EVENT and not await service.record_registry_event(
            session, catalogue=context.catalogue, event=event
        ):
            return
        await service.refresh(
            session, catalogue=context.catalogue, today=china_today(), now=utcnow()
        )

    return handle


def consumers(context: AppContext) -> list[BackgroundLoop]:
    settings = context.settings
    assert isinstance(settings, Settings)
    return [
        EventConsumer(
            name=CONSUMER_NAME,
            topics=[settings.topic(f"{app}.events") for app in ("identity", "transfer", "consent")],
            database=context.database,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            handler=lists_handler(context),
            wants=wants,
        )
    ]
