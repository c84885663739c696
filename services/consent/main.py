"""The consent app (the privacy center): ``uvicorn --factory services.consent.main:create_app``."""

import logging

from fastapi import FastAPI

from kit.app import AppContext
from kit.app import create_app as create_kit_app
from kit.auth import Scope
from kit.background import BackgroundLoop
from kit.clock import china_today
from kit.kafka import TopicSpec
from kit.restriction import TOPIC as RESTRICTIONS_TOPIC
from kit.service_token import ServiceTokenProvider
from services.consent import models  # noqa: F401  (every table registered)
from services.consent.config import Settings
from services.consent.consents import consumers as consents_consumers
from services.consent.consents.router import router as consents_router
from services.consent.incidents import consumers as incidents_consumers
from services.consent.incidents.router import router as incidents_router
from services.consent.ledger import consumers as ledger_consumers
from services.consent.ledger.router import router as ledger_router
from services.consent.lists import consumers as lists_consumers
from services.consent.lists.router import router as lists_router
from services.consent.policies import consumers as policies_consumers
from services.consent.policies import service as policies_service
from services.consent.policies.router import router as policies_router
from services.consent.rights import consumers as rights_consumers
from services.consent.rights import export
from services.consent.rights.router import export_router as rights_export_router
from services.consent.rights.router import router as rights_router

logger = logging.getLogger("services.consent")


def _consumers(context: AppContext) -> list[BackgroundLoop]:
    return [
        consumer
        for domain in (
            policies_consumers,
            consents_consumers,
            rights_consumers,
            ledger_consumers,
            incidents_consumers,
            lists_consumers,
        )
        for consumer in domain.consumers(context)
    ]


def rights_exporter(settings: Settings) -> export.RightsExporter | None:
    """The access export's exporter, with service tokens for ``rights.access`` from
    identity, when a service client is configured; else None (the export answers 503)."""
    if not settings.service_client_configured:
        return None
    return export.new_rights_exporter(
        service_urls=settings.service_urls,
        token_provider=ServiceTokenProvider(
            settings.identity_token_url,
            settings.service_client_id,
            settings.service_client_secret,
            scope=Scope.SERVICE_RIGHTS_ACCESS.value,
        ),
        timeout_s=settings.rights_export_timeout_s,
    )


async def publish_first_policy(settings: Settings, context: AppContext) -> None:
    """At first start, the shipped policy becomes version one (see ``policies.service``),
    so a fresh suite answers ``GET /policy`` and records agreements from the first minute."""
    if settings.first_policy_path is None:
        return
    today = china_today()
    request = policies_service.load_first_version(settings.first_policy_path, effective_date=today)
    async with context.database.session() as session:
        published = await policies_service.publish_first_version(
            session, events=context.events, request=request, today=today
        )
    if published is not None:
        logger.info("published the first privacy policy, version %s", published.version)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    async def start(app: FastAPI, context: AppContext) -> None:
        await publish_first_policy(settings, context)
        exporter = rights_exporter(settings)
        if exporter is not None:
            app.state.rights_exporter = exporter

    async def stop(app: FastAPI) -> None:
        exporter = getattr(app.state, "rights_exporter", None)
        if isinstance(exporter, export.RightsExporter):
            await exporter.client.aclose()

    return create_kit_app(
        settings=settings,
        title="Consent service (privacy center)",
        description=(
            "The privacy center: policy versions, consents, rights requests, the processing "
            "ledger, incidents and cessation. Policy sections 2G, 2H, 2J, 4 and 5."
        ),
        routers=[
            policies_router,
            consents_router,
            rights_router,
            rights_export_router,
            ledger_router,
            incidents_router,
            lists_router,
        ],
        topics=[
            TopicSpec(
                settings.topic(settings.consent_state_topic),
                partitions=settings.kafka_topic_partitions,
                compacted=True,
            ),
            TopicSpec(
                settings.topic(RESTRICTIONS_TOPIC),
                partitions=settings.kafka_topic_partitions,
                compacted=True,
            ),
            TopicSpec(
                settings.topic(settings.notifications_topic),
                partitions=settings.kafka_topic_partitions,
            ),
        ],
        consumers=_consumers,
        on_startup=start,
        on_shutdown=stop,
    )
