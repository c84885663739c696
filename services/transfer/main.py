"""The transfer app: ``uvicorn --factory services.transfer.main:create_app``.

At start it sets on ``app.state`` what the transfers use (tests replace them):
``consent_granted`` (over a :class:`~kit.consent_state.ConsentStateView` of the compacted
consent-state topic), ``order_fetcher`` (orders over httpx, with a service token for
``cross_border.transfer``: from identity through a
:class:`~kit.service_token.ServiceTokenProvider` when ``identity_token_url``,
``service_client_id`` and ``service_client_secret`` are set, else the fixed
``orders_service_token``), ``deliverer`` (HTTPS over httpx) and ``transfer_worker``. Its
background loops: the consent-state view, the ``transfer.orders`` consumer, the
``transfer.rights`` consumer (rights requests), the ``transfer.cessation`` consumer (a
ceased ``cross_border.transfer``), the worker and the retention sweeper of transfer
records (:mod:`services.transfer.retention.service`).
"""

from __future__ import annotations

from fastapi import FastAPI

from kit.app import AppContext
from kit.app import create_app as create_kit_app
from kit.auth import Scope
from kit.background import BackgroundLoop
from kit.cessation import cessation_consumer
from kit.consent_state import CROSS_BORDER_PURPOSE, ConsentStateView
from kit.service_token import ServiceTokenProvider
from services.transfer import models  # noqa: F401  (every table registered)
from services.transfer.cessation import service as cessation
from services.transfer.config import Settings
from services.transfer.recipients.router import router as recipients_router
from services.transfer.retention.service import retention_sweeper
from services.transfer.rights.consumers import rights_consumer
from services.transfer.rights.router import router as rights_router
from services.transfer.transfers.consumers import orders_consumer
from services.transfer.transfers.delivery import HttpsDeliverer
from services.transfer.transfers.fetcher import (
    HttpOrderFetcher,
    TokenProvider,
    static_token_provider,
)
from services.transfer.transfers.router import router as transfers_router
from services.transfer.transfers.worker import TransferWorker
from services.transfer.volume.router import router as volume_router


def orders_token_provider(settings: Settings) -> TokenProvider:
    """Service tokens for ``cross_border.transfer``: fetched from identity when a service
    client is configured, else the fixed ``orders_service_token``."""
    if settings.service_client_configured:
        return ServiceTokenProvider(
            settings.identity_token_url,
            settings.service_client_id,
            settings.service_client_secret,
            scope=Scope.SERVICE_CROSS_BORDER_TRANSFER.value,
        )
    return static_token_provider(settings.orders_service_token)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    async def start(app: FastAPI, context: AppContext) -> None:
        view = ConsentStateView(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            topic=settings.topic(settings.consent_state_topic),
            catalogue=context.catalogue,
            name=settings.topic("transfer.consent-state-view"),
            store_dir=settings.consent_state_dir,
        )

        def consent_granted(subject: str, recipient_id: str) -> bool:
            # Until the view has read the whole topic, a grant it shows may have been
            # withdrawn later in the log: nothing is granted yet (fail closed).
            return view.ready and view.granted(
                subject, CROSS_BORDER_PURPOSE, recipient_id=recipient_id
            )

        app.state.consent_view = view
        app.state.consent_granted = consent_granted
        app.state.order_fetcher = HttpOrderFetcher(
            base_url=settings.orders_url,
            token_provider=orders_token_provider(settings),
            timeout_s=settings.orders_timeout_s,
        )
        app.state.deliverer = HttpsDeliverer(
            timeout_s=settings.delivery_timeout_s, tls_for=settings.delivery_tls_for
        )
        app.state.transfer_worker = TransferWorker(app, context, settings)

    def loops(context: AppContext) -> list[BackgroundLoop]:
        worker: TransferWorker = app.state.transfer_worker
        return [
            app.state.consent_view,
            orders_consumer(app, context, settings),
            rights_consumer(context),
            cessation_consumer(context, service=cessation.SERVICE, apply=cessation.handle),
            worker.task,
            retention_sweeper(context, interval_s=settings.retention_sweep_interval_s),
        ]

    app = create_kit_app(
        settings=settings,
        title="Transfer service",
        description=(
            "Cross-border recipients, their legal bases, and transfers that keep the law: "
            "separate consent, a valid basis, only the necessary fields, de-identified and "
            "encrypted for the recipient, every transfer recorded and shown to the user. "
            "Policy section 4 (storage location) and 3."
        ),
        routers=[recipients_router, transfers_router, rights_router, volume_router],
        on_startup=start,
        consumers=loops,
    )
    return app
