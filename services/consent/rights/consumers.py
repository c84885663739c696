"""The ``consent.rights`` consumer: reads every participant's events topic, records each
``com.signature.<service>.rights.completed.v1`` answer, and answers the consent service's
own part when its ``com.signature.consent.rights.requested.v1`` comes by. Other events on
those topics are skipped. An answer that fits no request is retried, then dead-lettered."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from kit.app import AppContext
from kit.background import BackgroundLoop, PeriodicTask
from kit.consumer import EventConsumer, Handler
from kit.events import Event
from kit.models import utcnow
from kit.restriction import TOPIC as RESTRICTIONS_TOPIC
from services.consent.config import Settings
from services.consent.consents import service as consents_service
from services.consent.rights import service

CONSUMER_NAME = "consent.rights"


def rights_handler(context: AppContext, *, withdraw_all: service.WithdrawAll | None) -> Handler:
    """The handler the consumer runs once per event id (also usable in tests)."""

    async def handle(session: AsyncSession, event: Event) -> None:
        if event.type == service.REQUESTED and event.source == f"/{service.CONSENT_SERVICE}":
            request_id = event.data.get("request_id")
            if not isinstance(request_id, str):
                raise service.InvalidAnswer("a rights request event without a request id")
            await service.answer_as_consent(
                session,
                events=context.events,
                catalogue=context.catalogue,
                request_id=request_id,
                subject=event.subject,
                now=utcnow(),
                withdraw_all=withdraw_all,
            )
        elif service.completion_service(event.type) is not None:
            settings = context.settings
            await service.record_answer(
                session,
                events=context.events,
                event=event,
                now=utcnow(),
                restrictions_topic=settings.topic(RESTRICTIONS_TOPIC),
            )

    return handle


def _withdraw_all(context: AppContext) -> service.WithdrawAll:
    settings = context.settings
    assert isinstance(settings, Settings)

    async def withdraw(session: AsyncSession, subject: str) -> object:
        return await consents_service.withdraw_all(
            session,
            events=context.events,
            catalogue=context.catalogue,
            state_topic=settings.topic(settings.consent_state_topic),
            subject=subject,
        )

    return withdraw


def overdue_reporter(context: AppContext) -> PeriodicTask:
    """Publishes ``rights.overdue`` for requests past their deadline, on a schedule."""
    settings = context.settings
    assert isinstance(settings, Settings)

    async def report() -> None:
        async with context.database.session() as session:
            await service.report_overdue(session, events=context.events, now=utcnow())

    return PeriodicTask(
        "consent.rights.overdue", job=report, interval_s=settings.rights_overdue_check_interval_s
    )


def consumers(context: AppContext) -> list[BackgroundLoop]:
    settings = context.settings
    assert isinstance(settings, Settings)
    return [
        EventConsumer(
            name=CONSUMER_NAME,
            topics=[settings.topic(f"{p}.events") for p in settings.rights_participants],
            database=context.database,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            handler=rights_handler(context, withdraw_all=_withdraw_all(context)),
        ),
        overdue_reporter(context),
    ]
