"""The FastAPI factory every service and the gateway starts from.

:func:`create_app` wires what each app has in common: settings, the catalogue (validated at
start; a bad one stops start-up), the database, the outbox relay and any consumers (started
and stopped with the app), problem+json errors, request ids, JSON logs, ``/metrics``,
a token verifier over identity's JWKS (``app.state.token_verifier``; identity replaces
it with its own keys), ``/healthz`` (alive) and ``/readyz`` (database reachable, outbox
relay running, Kafka reachable or events safely queued in the outbox).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from kit.auth import JwksClient, TokenVerifier
from kit.background import BackgroundLoop
from kit.catalogue import Catalogue, load_catalogue
from kit.consumer import EventConsumer
from kit.crypto import FieldCipher
from kit.db import Database
from kit.errors import install_problem_handlers
from kit.kafka import TopicSpec, configure_cluster, kafka_reachable
from kit.observability import RequestContextMiddleware, configure_logging
from kit.openapi import install_access_documentation
from kit.outbox import EventWriter, OutboxRelay, outbox_stats
from kit.settings import EncryptingSettings, ServiceSettings

# Background loops started and stopped with the app: consumers, state views, sweepers.
ConsumerFactory = Callable[["AppContext"], Sequence[BackgroundLoop]]
StartupHook = Callable[[FastAPI, "AppContext"], Awaitable[None]]
ShutdownHook = Callable[[FastAPI], Awaitable[None]]


@dataclass
class AppContext:
    """What an app holds while it runs; ``request.app.state.context`` in handlers."""

    settings: ServiceSettings
    catalogue: Catalogue
    database: Database
    #: None for an app without a master key (the gateway encrypts nothing).
    field_cipher: FieldCipher | None
    events: EventWriter
    relay: OutboxRelay
    consumers: list[BackgroundLoop] = field(default_factory=list)

    @property
    def cipher(self) -> FieldCipher:
        """The field cipher of an app with a master key (:class:`EncryptingSettings`)."""
        if self.field_cipher is None:
            raise RuntimeError(
                f"{self.settings.service_name} has no master key: it encrypts nothing"
            )
        return self.field_cipher


class Check(BaseModel):
    ok: bool
    detail: dict[str, Any] = {}


class Readiness(BaseModel):
    status: str
    app: str
    checks: dict[str, Check]


def app_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


ContextDep = Annotated[AppContext, Depends(app_context)]


def create_app(
    *,
    settings: ServiceSettings,
    title: str,
    description: str,
    routers: Sequence[APIRouter] = (),
    topics: Sequence[TopicSpec] = (),
    consumers: ConsumerFactory | None = None,
    on_startup: StartupHook | None = None,
    on_shutdown: ShutdownHook | None = None,
    version: str = "0.1.0",
    access_log: bool = False,
    app_class: type[FastAPI] = FastAPI,
) -> FastAPI:
    """An app with the kit's parts; ``topics`` are created at start besides its own;
    ``on_startup`` runs once the context exists, before the relay and consumers start;
    ``on_shutdown`` runs once they have stopped, before the database is closed;
    ``access_log`` keeps uvicorn's line per request (the gateway's; services log errors);
    ``app_class`` a FastAPI subclass (the gateway's dispatches its hot path itself)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(
            level=settings.log_level, json_lines=settings.log_json, access_log=access_log
        )
        configure_cluster(settings.kafka_cluster)
        catalogue = load_catalogue(settings.catalogue_path)
        database = Database(
            settings.database_url,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
        )
        own_topic = TopicSpec(settings.events_topic, partitions=settings.kafka_topic_partitions)
        relay = OutboxRelay(
            database=database,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            app_name=settings.service_name,
            topics=(own_topic, *topics),
            batch_size=settings.outbox_batch_size,
            poll_interval_s=settings.outbox_poll_interval_s,
            max_backoff_s=settings.outbox_max_backoff_s,
        )
        context = AppContext(
            settings=settings,
            catalogue=catalogue,
            database=database,
            field_cipher=(
                FieldCipher(settings.master_key_bytes)
                if isinstance(settings, EncryptingSettings)
                else None
            ),
            events=EventWriter(
                source=f"/{settings.service_name}",
                topic=settings.events_topic,
                personal_fields=catalogue.personal_field_names(),
            ),
            relay=relay,
        )
        app.state.context = context
        app.state.database = database
        jwks = JwksClient(settings.auth_jwks_url)
        app.state.token_verifier = TokenVerifier(
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
            key_source=jwks.key_set,
        )
        if on_startup is not None:
            await on_startup(app, context)
        relay.start()
        context.consumers = list(consumers(context)) if consumers else []
        for consumer in context.consumers:
            consumer.start()
        try:
            yield
        finally:
            for consumer in context.consumers:
                await consumer.stop()
            await relay.stop()
            if on_shutdown is not None:
                await on_shutdown(app)
            await jwks.aclose()
            await database.dispose()

    app = app_class(title=title, description=description, version=version, lifespan=lifespan)
    app.add_middleware(RequestContextMiddleware, app_name=settings.service_name)
    # Outermost: the client address every part of the app sees comes from the chain only
    # through the hops named in ``trusted_proxies`` (uvicorn's own is off: --no-proxy-headers).
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    install_problem_handlers(app)
    app.include_router(_operations_router(settings.service_name))
    for router in routers:
        app.include_router(router)
    install_access_documentation(app)
    return app


def _operations_router(app_name: str) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "app": app_name}

    @router.get(
        "/readyz",
        summary="Ready to serve",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "database or relay down"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        readiness = await check_readiness(app_context(request))
        status = 503 if readiness.status == "unavailable" else 200
        return JSONResponse(readiness.model_dump(), status_code=status)

    @router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


async def check_readiness(context: AppContext) -> Readiness:
    """Ready when the database answers and the relay runs; degraded when Kafka is down
    (events wait safely in the outbox), unavailable otherwise."""
    checks: dict[str, Check] = {}
    try:
        async with context.database.session() as session:
            stats = await outbox_stats(session)
        checks["database"] = Check(ok=True)
    except Exception as exc:
        checks["database"] = Check(ok=False, detail={"error": type(exc).__name__})
        stats = None
    relay = context.relay
    checks["outbox_relay"] = Check(
        ok=relay.running,
        detail={
            "pending": stats.pending if stats else None,
            "oldest_pending_age_s": stats.oldest_pending_age_s if stats else None,
            "published": relay.published_total,
            "publisher": relay.is_leader,
            "last_error": relay.last_error,
        },
    )
    reachable = await kafka_reachable(context.settings.kafka_bootstrap_servers, timeout_s=1.0)
    checks["kafka"] = Check(
        ok=reachable, detail={"bootstrap_servers": context.settings.kafka_bootstrap_servers}
    )
    for loop in context.consumers:
        detail: dict[str, Any] = {}
        if isinstance(loop, EventConsumer):
            detail = {
                "handled": loop.handled,
                "dead_lettered": loop.dead_lettered,
                "last_error": loop.last_error,
            }
        checks[f"loop:{loop.name}"] = Check(ok=loop.running, detail=detail)
    essential = checks["database"].ok and checks["outbox_relay"].ok
    if not essential:
        status = "unavailable"
    elif all(check.ok for check in checks.values()):
        status = "ready"
    else:
        status = "degraded"
    return Readiness(status=status, app=context.settings.service_name, checks=checks)
