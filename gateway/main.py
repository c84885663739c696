"""The gateway app: ``uvicorn --factory gateway.main:create_app``.

The one public origin. At start it loads the route table (``policy/routes.yaml``,
checked against the catalogue: a problem stops start-up naming its line), compiles the
field filter from the catalogue once, opens one pooled client per upstream (made by
``client_factory``, injectable for tests; production's is aiohttp's pool,
:mod:`gateway.proxy`), the access-event publisher (:mod:`gateway.access_events`: its own
Kafka producer, and the batcher that commits to the outbox the events Kafka did not
acknowledge in time; it writes what is queued at shutdown) and starts
the consent-state view (``app.state.consent_granted``, ``app.state.policy_sequence_agreed``;
tests may replace both) and the consumer of the privacy center's decisions
(``app.state.policy_facts``: the newest major policy version and ceased purposes;
:mod:`gateway.policy_facts`); identity's revocations it learns as every app does
(``app.state.revocations``, :mod:`kit.revocation`). Everything outside the
gateway's own bare ``/healthz`` and the well-known metadata goes through
:mod:`gateway.handler`, straight from the app's ASGI entry (:mod:`gateway.entry`), not
through FastAPI's routing. Its OpenAPI (``/openapi.json``) is the routes as a client sees
them (:mod:`gateway.openapi`), on both ports. The gateway is the public origin: its
``/readyz``, ``/metrics`` and ``/docs`` are served on the separate operations port
(``GATEWAY_OPS_HOST``, ``GATEWAY_OPS_PORT``; :mod:`kit.operations`), started and stopped
with the app; ``app.state.ops_port`` is the port it listens on.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from gateway.access_events import AccessEventBatcher, AccessEventPublisher
from gateway.config import Settings
from gateway.consent_view import consent_check, policy_agreed
from gateway.cors import add_cors
from gateway.entry import GatewayApp
from gateway.handler import Gateway
from gateway.handler import router as gateway_router
from gateway.limits import RateLimiter
from gateway.openapi import gateway_openapi
from gateway.openapi import router as openapi_router
from gateway.policy_facts import facts_handler, load_facts, refresh_facts
from gateway.privacy_web import router as privacy_web_router
from gateway.problems import router as problems_router
from gateway.proxy import ClientFactory, Upstreams, default_client_factory
from gateway.routes import load_route_table
from gateway.well_known import router as well_known_router
from kit.app import AppContext
from kit.app import create_app as create_kit_app
from kit.background import BackgroundLoop, PeriodicTask
from kit.catalogue import load_catalogue
from kit.consent_state import ConsentStateView
from kit.consumer import EventConsumer
from kit.field_filter import FieldFilter
from kit.kafka import TopicSpec
from kit.operations import serve_operations
from kit.problem_types import load_problem_catalogue


def create_app(
    settings: Settings | None = None, *, client_factory: ClientFactory | None = None
) -> FastAPI:
    settings = settings or Settings()
    factory = client_factory or default_client_factory
    loops: list[BackgroundLoop] = []

    async def start(app: FastAPI, context: AppContext) -> None:
        table = load_route_table(settings.routes_path, context.catalogue)
        load_problem_catalogue()  # the error-code catalogue it serves: a bad file stops start
        view = ConsentStateView(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            topic=settings.topic("consent.state"),
            catalogue=context.catalogue,
            name="gateway-consent-state-view",
            store_dir=settings.consent_state_dir,
        )
        app.state.consent_view = view
        app.state.consent_granted = consent_check(view)
        app.state.policy_sequence_agreed = policy_agreed(view)
        app.state.gateway = Gateway(
            settings=settings,
            context=context,
            table=table,
            fields=FieldFilter(context.catalogue),
            upstreams=Upstreams(settings, factory),
            # Per-worker buckets: a client's connections may land on any worker, so each
            # keeps its share and together they never let more through than the limit.
            limiter=RateLimiter(
                rate_per_s=settings.rate_limit_per_s / settings.workers,
                burst=max(1, settings.rate_limit_burst // settings.workers),
                max_clients=settings.rate_limit_max_clients,
            ),
            access_events=AccessEventPublisher(
                outbox=AccessEventBatcher(
                    context.database, max_batch=settings.access_event_max_batch
                ),
                bootstrap_servers=settings.kafka_bootstrap_servers,
                topic=TopicSpec(settings.events_topic, partitions=settings.kafka_topic_partitions),
                ack_timeout_s=settings.access_event_ack_timeout_s,
                linger_ms=settings.access_event_linger_ms,
            ),
        )
        if settings.access_events_direct:
            app.state.gateway.access_events.start()
        facts = await load_facts(context.database)
        app.state.policy_facts = facts
        loops[:] = [
            view,
            EventConsumer(
                name="gateway.policy",
                topics=[settings.topic("consent.events")],
                database=context.database,
                bootstrap_servers=settings.kafka_bootstrap_servers,
                handler=facts_handler(facts),
            ),
        ]
        if settings.workers > 1:
            loops.append(
                PeriodicTask(
                    "gateway-policy-facts-refresh",
                    interval_s=settings.policy_facts_refresh_s,
                    job=functools.partial(refresh_facts, context.database, facts),
                )
            )

    def background(context: AppContext) -> Sequence[BackgroundLoop]:
        return loops

    async def flush_access_events(app: FastAPI) -> None:
        # At shutdown, once uvicorn has drained the requests: whatever is still queued to
        # be recorded is written before the relay's last publish (kit.app).
        gateway: Gateway | None = getattr(app.state, "gateway", None)
        if gateway is not None:
            await gateway.access_events.aclose()

    app = create_kit_app(
        settings=settings,
        title="Gateway",
        description=(
            "The API gateway: authorisation, purpose binding, consent enforcement and "
            "minimum-necessary field filtering."
        ),
        routers=[
            well_known_router,
            problems_router,
            openapi_router,
            privacy_web_router,  # the privacy center's pages, /privacy/ (before the catch-all)
            gateway_router,
        ],
        consumers=background,
        on_startup=start,
        on_stopping=[flush_access_events],
        access_log=True,  # the one access line per request is the gateway's
        app_class=GatewayApp,
        public_operations=False,  # readiness, metrics and docs on the operations port
    )
    description = app.description

    def openapi() -> dict[str, Any]:
        # The routes as a client sees them (gateway.openapi), built on the first ask.
        if app.openapi_schema is None:
            gateway: Gateway | None = getattr(app.state, "gateway", None)
            # Not started (a document asked of the app alone): the same files, read now.
            catalogue = (
                gateway.context.catalogue if gateway else load_catalogue(settings.catalogue_path)
            )
            table = gateway.table if gateway else load_route_table(settings.routes_path, catalogue)
            app.openapi_schema = gateway_openapi(
                table, catalogue, title=app.title, version=app.version, description=description
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    if settings.cors_allow_origins:
        add_cors(app, settings)
    if isinstance(app, GatewayApp):
        app.hot_prefixes = tuple(f"/{name}/" for name in settings.upstream_urls())
    kit_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            kit_lifespan(app),
            serve_operations(
                app.state.operations_app, host=settings.ops_host, port=settings.ops_port
            ) as ops_port,
        ):
            app.state.ops_port = ops_port
            try:
                yield
            finally:
                gateway: Gateway | None = getattr(app.state, "gateway", None)
                if gateway is not None:
                    await gateway.upstreams.aclose()

    app.router.lifespan_context = lifespan
    return app
