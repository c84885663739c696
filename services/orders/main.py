"""The orders app: ``uvicorn --factory services.orders.main:create_app``.

Beside the routers, the app runs five background loops, started after start-up and stopped
at shutdown with the relay (``kit.app`` starts and stops every loop the factory returns):

- the consent-state view (``kit.consent_state.ConsentStateView`` over the compacted
  ``consent.state`` topic), behind ``app.state.consent_granted(subject, purpose)``, which
  answers "not granted" until the view has caught up (fail closed); tests may replace it;
- the retention sweeper (``retention.service.RetentionSweeper``), every
  ``retention_sweep_interval_s`` unless ``retention_sweep_enabled`` is false, measuring
  against ``app.state.retention_clock()`` like the admin route;
- price-drop reminders, every ``price_drop_interval_s``, for owners with the
  ``marketing.price_drop`` consent only;
- the ``orders.rights`` consumer, answering the privacy center's rights requests
  (``rights.consumers``); corrections are read from the privacy center through
  ``app.state.corrections_fetcher`` (:func:`corrections_fetcher`: a service token for
  ``rights.access`` when a service client is configured, else None and corrections are
  refused);
- the ``orders.cessation`` consumer, applying the privacy center's ceased purposes
  (``cessation.service``: location features refuse, price-drop reminders stop);
- the unpaid-order sweep (``payments.service.expire_unpaid``), every
  ``unpaid_sweep_interval_s`` unless ``unpaid_sweep_enabled`` is false, on the same clock
  as the retention sweep.

``app.state.payment_api`` is the one HTTP client for the payment providers' APIs
(``payments.provider.ProviderApi``); tests may replace it.
"""

from collections.abc import Callable, Sequence
from datetime import datetime

from fastapi import FastAPI

from kit import rights
from kit.app import AppContext
from kit.app import create_app as create_kit_app
from kit.auth import Scope
from kit.background import BackgroundLoop, PeriodicTask
from kit.cessation import cessation_consumer
from kit.consent_state import ConsentStateView
from kit.models import utcnow
from kit.service_token import ServiceTokenProvider
from services.orders.cart import service as cart_service
from services.orders.cart.router import router as cart_router
from services.orders.cart.service import ConsentCheck
from services.orders.cessation import service as cessation
from services.orders.config import Settings
from services.orders.delivery import service as delivery_service
from services.orders.delivery.router import router as delivery_router
from services.orders.goods.router import router as goods_router
from services.orders.location import service as location_service
from services.orders.location.router import router as location_router
from services.orders.orders import service as orders_service
from services.orders.orders.router import router as orders_router
from services.orders.payments import service as payments_service
from services.orders.payments.provider import ProviderApi
from services.orders.payments.router import router as payments_router
from services.orders.retention import service as retention_service
from services.orders.retention.router import router as retention_router
from services.orders.retention.service import RetentionSweeper
from services.orders.rights.consumers import rights_consumer
from services.orders.rights.router import router as rights_router
from services.orders.search import service as search_service
from services.orders.search.consumers import recommendation_consumer
from services.orders.search.router import router as search_router
from services.orders.security.router import router as security_router
from services.orders.support import service as support_service
from services.orders.support.router import router as support_router
from services.orders.transfer import service as transfer_service
from services.orders.transfer.router import router as transfer_router


def consent_check(view: ConsentStateView) -> ConsentCheck:
    """``consent_granted(subject, purpose)`` over the view; False until it is ready."""

    def granted(subject: str, purpose: str) -> bool:
        return view.ready and view.granted(subject, purpose)

    return granted


def corrections_fetcher(settings: Settings) -> rights.CorrectionsFetcher | None:
    """Reads corrections from the privacy center with service tokens for ``rights.access``
    from identity, when a service client is configured; else None."""
    if not settings.service_client_configured:
        return None
    return rights.CorrectionsFetcher(
        privacy_center_url=settings.privacy_center_url,
        token_provider=ServiceTokenProvider(
            settings.identity_token_url,
            settings.service_client_id,
            settings.service_client_secret,
            scope=Scope.SERVICE_RIGHTS_ACCESS.value,
        ),
        timeout_s=settings.privacy_center_timeout_s,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    loops: list[BackgroundLoop] = []

    async def start(app: FastAPI, context: AppContext) -> None:
        # The catalogue must describe every personal field this service stores.
        orders_service.check_catalogue(context.catalogue)
        cart_service.check_catalogue(context.catalogue)
        delivery_service.check_catalogue(context.catalogue)
        location_service.check_catalogue(context.catalogue)
        retention_service.check_catalogue(context.catalogue)
        transfer_service.check_catalogue(context.catalogue)
        payments_service.check_catalogue(context.catalogue)
        search_service.check_catalogue(context.catalogue)
        support_service.check_catalogue(context.catalogue)
        app.state.payment_api = ProviderApi(timeout_s=settings.payment_provider_timeout_s)
        view = ConsentStateView(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            topic=settings.topic("consent.state"),
            catalogue=context.catalogue,
            name="orders-consent-state-view",
            store_dir=settings.consent_state_dir,
        )
        app.state.consent_view = view
        app.state.consent_granted = consent_check(view)
        clock: Callable[[], datetime] = utcnow
        app.state.retention_clock = clock

        def now() -> datetime:  # read at each sweep, so a replaced clock takes effect
            current: datetime = app.state.retention_clock()
            return current

        fetcher = corrections_fetcher(settings)
        app.state.corrections_fetcher = fetcher
        loops[:] = [
            view,
            rights_consumer(
                context,
                fetcher,
                payments_service.Refunds(
                    api=app.state.payment_api,
                    cipher=context.cipher,
                    notify_base_url=settings.payment_notify_base_url,
                ),
            ),
            cessation_consumer(context, service=cessation.SERVICE, apply=cessation.handle),
            recommendation_consumer(context),
        ]
        if settings.retention_sweep_enabled:
            sweeper = RetentionSweeper(
                database=context.database,
                events=context.events,
                catalogue=context.catalogue,
                interval_s=settings.retention_sweep_interval_s,
                batch_size=settings.retention_sweep_batch_size,
                clock=now,
            )
            app.state.retention_sweeper = sweeper
            loops.append(sweeper)

        async def remind_price_drops() -> None:  # only carts of owners with the consent
            granted: ConsentCheck = app.state.consent_granted
            async with context.database.session() as session:
                await cart_service.price_drop_sweep(
                    session,
                    events=context.events,
                    catalogue=context.catalogue,
                    consent_granted=granted,
                )

        loops.append(
            PeriodicTask(
                "orders.price_drop_reminders",
                job=remind_price_drops,
                interval_s=settings.price_drop_interval_s,
            )
        )

        async def expire_unpaid() -> None:
            async with context.database.session() as session:
                await payments_service.expire_unpaid(
                    session,
                    events=context.events,
                    now=now(),
                    window_s=settings.payment_notification_window_s,
                )

        if settings.unpaid_sweep_enabled:
            loops.append(
                PeriodicTask(
                    "orders.unpaid_sweep",
                    job=expire_unpaid,
                    interval_s=settings.unpaid_sweep_interval_s,
                )
            )

    async def stop(app: FastAPI) -> None:
        api: ProviderApi | None = getattr(app.state, "payment_api", None)
        if api is not None:
            await api.aclose()

    def background(context: AppContext) -> Sequence[BackgroundLoop]:
        return loops

    return create_kit_app(
        settings=settings,
        title="Orders service",
        description=(
            "Cart, orders, delivery, invoices, customs data, partner assignment, location "
            "features, search and search history, retention, and the fields a cross-border "
            "transfer needs (service tokens only). Policy sections 2B, 2C, 2D, 2G, 3 and 4."
        ),
        routers=[
            goods_router,
            cart_router,
            orders_router,
            payments_router,
            delivery_router,
            location_router,
            retention_router,
            transfer_router,
            rights_router,
            search_router,
            security_router,
            support_router,
        ],
        consumers=background,
        on_startup=start,
        on_shutdown=stop,
    )
