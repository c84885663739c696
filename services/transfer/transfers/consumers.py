"""Consumers of the transfers domain.

- ``transfer.orders`` (behind the topic prefix) reads the orders service's events and, for
  each ``com.signature.orders.order.placed.v1`` whose ``data.cross_border`` is true,
  requests a transfer to every recipient routed to it (see
  :func:`~services.transfer.transfers.service.on_order_event`). Domestic orders and other
  events are skipped before any database work (no dedup row). The event carries no personal
  data: the package is fetched from orders only when it is built, under ``cross_border.transfer``.
"""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from kit.app import AppContext
from kit.consumer import EventConsumer
from kit.events import Event
from services.transfer.config import Settings
from services.transfer.transfers.service import is_cross_border_order, on_order_event
from services.transfer.transfers.worker import current_checks

ORDERS_GROUP = "transfer.orders"


def orders_consumer(app: FastAPI, context: AppContext, settings: Settings) -> EventConsumer:
    async def handle(session: AsyncSession, event: Event) -> None:
        await on_order_event(
            session, event, events=context.events, checks=current_checks(app, settings)
        )

    return EventConsumer(
        name=ORDERS_GROUP,
        topics=[settings.topic(settings.orders_events_topic)],
        database=context.database,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        handler=handle,
        wants=is_cross_border_order,
    )
