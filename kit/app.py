"""The FastAPI factory every service and the gateway starts from.

:func:`create_app` wires what each app has in common: settings, the catalogue (validated at
start; a bad one stops start-up), the database, the outbox relay and any consumers (started
and stopped with the app), problem+json errors, request ids, JSON logs, ``/metrics``,
a token verifier over identity's JWKS (``app.state.token_verifier``; identity replaces
it with its own keys), the subjects identity revoked (``app.state.revocations``, learnt
from ``identity.events`` and pruned; :mod:`kit.revocation`), the subjects restricted or
under a legal hold (``app.state.restrictions``, :mod:`kit.restriction`), ``/healthz`` (alive) and
``/readyz`` (database reachable, outbox relay running, Kafka reachable or events safely
queued in the outbox). With
``public_operations=False`` (the gateway, the public origin) the app itself answers only a
bare ``/healthz``; readiness, metrics and OpenAPI go to ``app.state.operations_app``, served
on a separate port (:mod:`kit.operations`).

Graceful shutdown, all within ``shutdown_grace_s`` of SIGTERM (:data:`SHUTDOWN`; the app
wraps uvicorn's SIGTERM handler at start, in whichever process serves it, one worker or
many): uvicorn's own shutdown starts ``shutdown_delay_s`` after the signal (0 by default;
meanwhile the app keeps serving); from the signal on, ``/readyz`` answers 503
``stopping`` and every response carries ``Connection: close`` (so keep-alive clients and
load balancers move on); uvicorn then stops accepting and lets in-flight requests finish;
the lifespan's shutdown runs the app's ``on_stopping`` hooks (flush whatever the app
still holds to send: the gateway's access events), stops the consumers and other loops
in parallel, and lets the outbox relay publish what is pending before it stops.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send
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
from kit.query_params import refuse_unknown_query
from kit.restriction import TOPIC as RESTRICTIONS_TOPIC
from kit.restriction import Restrictions, RestrictionView
from kit.revocation import Revocations, load_revocations, revocation_loops
from kit.settings import EncryptingSettings, ServiceSettings

# Background loops started and stopped with the app: consumers, state views, sweepers.
ConsumerFactory = Callable[["AppContext"], Sequence[BackgroundLoop]]
StartupHook = Callable[[FastAPI, "AppContext"], Awaitable[None]]
ShutdownHook = Callable[[FastAPI], Awaitable[None]]
StoppingHook = Callable[[FastAPI], Awaitable[None]]

logger = logging.getLogger("kit.app")

#: Kept for the loops to stop and the database to close once the relay's flush ends.
LOOPS_STOP_RESERVE_S = 3.0


@dataclass
class Shutdown:
    """When this process was asked to stop, and so what is left of its grace period.

    :func:`watch_sigterm` calls :meth:`begin` on SIGTERM; an app stopped otherwise (tests,
    Ctrl-C) counts its grace period from its lifespan's shutdown."""

    started_at: float | None = None
    grace_s: float = 30.0

    @property
    def stopping(self) -> bool:
        return self.started_at is not None

    def begin(self, grace_s: float) -> None:
        if self.started_at is None:
            self.grace_s = grace_s
            self.started_at = time.monotonic()

    def left_s(self, grace_s: float) -> float:
        """Seconds left of the grace period, less one for the process to exit."""
        if self.started_at is None:
            return grace_s - 1.0
        return self.started_at + self.grace_s - 1.0 - time.monotonic()


#: This process's shutdown (one per process: the app it serves).
SHUTDOWN = Shutdown()


def watch_sigterm(grace_s: float, delay_s: float) -> None:
    """Wrap the SIGTERM handler uvicorn installed (it is the main thread's, and uvicorn
    installs it before the lifespan starts): the signal starts :data:`SHUTDOWN` at once and
    reaches uvicorn ``delay_s`` later; a second SIGTERM reaches it at once. Nothing happens
    outside the main thread (an app under a test client)."""
    if threading.current_thread() is not threading.main_thread():
        return
    forward = signal.getsignal(signal.SIGTERM)
    if not callable(forward):
        return
    loop = asyncio.get_running_loop()

    def on_sigterm(signum: int, frame: Any) -> None:
        first = not SHUTDOWN.stopping
        SHUTDOWN.begin(grace_s)
        if first and delay_s > 0:
            loop.call_soon_threadsafe(loop.call_later, delay_s, forward, signum, None)
        else:
            forward(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


class DrainingMiddleware:
    """Once the process is stopping, every response says ``Connection: close``: a keep-alive
    client opens its next connection elsewhere instead of racing the close of an idle one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not SHUTDOWN.stopping:
            await self.app(scope, receive, send)
            return

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() != b"connection"
                ]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, closing)


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
    #: Restricted and legal-hold subjects (kit.restriction), for checks in service code.
    restrictions: Restrictions | None = None

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


async def app_context(request: Request) -> AppContext:
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
    on_stopping: Sequence[StoppingHook] = (),
    version: str = "0.1.0",
    access_log: bool = False,
    app_class: type[FastAPI] = FastAPI,
    public_operations: bool = True,
) -> FastAPI:
    """An app with the kit's parts; ``topics`` are created at start besides its own;
    ``on_startup`` runs once the context exists, before the relay and consumers start;
    ``on_stopping`` hooks run first at shutdown, once uvicorn has drained the requests, in
    parallel (flush what the app still holds to send); ``on_shutdown`` runs once the loops
    have stopped, before the database is closed;
    ``access_log`` keeps uvicorn's line per request (the gateway's; services log errors);
    ``app_class`` a FastAPI subclass (the gateway's dispatches its hot path itself);
    ``public_operations`` False keeps ``/readyz``, ``/metrics`` and the OpenAPI pages off
    the app (``app.state.operations_app`` serves them) and answers ``/healthz`` bare."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(
            level=settings.log_level, json_lines=settings.log_json, access_log=access_log
        )
        configure_cluster(settings.kafka_cluster)
        watch_sigterm(settings.shutdown_grace_s, settings.shutdown_delay_s)
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
                settings.field_cipher() if isinstance(settings, EncryptingSettings) else None
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
        revocations = Revocations()
        app.state.revocations = revocations  # read by kit.auth.current_principal
        restrictions = Restrictions(catalogue)
        app.state.restrictions = restrictions  # read by kit.auth.current_principal too
        context.restrictions = restrictions
        jwks = JwksClient(settings.auth_jwks_url)
        app.state.token_verifier = TokenVerifier(
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
            key_source=jwks.key_set,
        )
        if on_startup is not None:  # first: a bad route table or policy stops start-up
            await on_startup(app, context)
        await load_revocations(database, revocations)
        relay.start()
        context.consumers = [
            *(consumers(context) if consumers else ()),
            *revocation_loops(
                name=f"{settings.service_name}.revocations",
                topic=settings.topic("identity.events"),
                database=database,
                bootstrap_servers=settings.kafka_bootstrap_servers,
                revocations=revocations,
                keep_s=settings.revocation_keep_s,
                refresh_s=settings.revocation_refresh_s,
            ),
            RestrictionView(
                bootstrap_servers=settings.kafka_bootstrap_servers,
                topic=settings.topic(RESTRICTIONS_TOPIC),
                restrictions=restrictions,
                name=f"{settings.service_name}.restrictions",
            ),
        ]
        for consumer in context.consumers:
            consumer.start()
        try:
            yield
        finally:
            await _stop_gracefully(app, context, settings.shutdown_grace_s, on_stopping)
            if on_shutdown is not None:
                await on_shutdown(app)
            await jwks.aclose()
            await database.dispose()

    off: dict[str, Any] = (
        {} if public_operations else {"openapi_url": None, "docs_url": None, "redoc_url": None}
    )
    app = app_class(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        dependencies=[Depends(refuse_unknown_query)],  # a misspelt parameter is an error
        **off,
    )
    app.add_middleware(RequestContextMiddleware, app_name=settings.service_name)
    app.add_middleware(DrainingMiddleware)
    # Outermost: the client address every part of the app sees comes from the chain only
    # through the hops named in ``trusted_proxies`` (uvicorn's own is off: --no-proxy-headers).
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    install_problem_handlers(app)
    if public_operations:
        app.include_router(operations_router(settings.service_name))
    else:
        app.include_router(_liveness_router())
    for router in routers:
        app.include_router(router)
    install_access_documentation(app)
    if not public_operations:
        app.state.operations_app = operations_app(app, app_name=settings.service_name)
    return app


def operations_app(app: FastAPI, *, app_name: str) -> FastAPI:
    """``/healthz``, ``/readyz``, ``/metrics``, ``/openapi.json`` and ``/docs`` of ``app``."""

    async def context_of(_: Request) -> AppContext:
        context: AppContext = app.state.context
        return context

    ops = FastAPI(title=f"{app.title} operations", openapi_url=None, docs_url=None, redoc_url=None)
    ops.add_middleware(RequestContextMiddleware, app_name=app_name)
    ops.include_router(operations_router(app_name, context_of=context_of))

    @ops.get("/openapi.json", include_in_schema=False)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @ops.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - docs")

    return ops


def _liveness_router() -> APIRouter:
    """The one operations route of a public origin: alive, nothing else said."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return router


async def _stop_gracefully(
    app: FastAPI, context: AppContext, grace_s: float, on_stopping: Sequence[StoppingHook]
) -> None:
    """Flush, stop the loops in parallel, let the relay publish what is pending: all
    bounded by what is left of the grace period."""
    started = time.monotonic()
    if on_stopping:
        hooks = asyncio.gather(*(hook(app) for hook in on_stopping), return_exceptions=True)
        try:
            outcomes = await asyncio.wait_for(hooks, max(0.1, SHUTDOWN.left_s(grace_s) / 2))
        except TimeoutError:
            logger.error("stopping hooks did not finish in time")
        else:
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    logger.error("a stopping hook failed: %r", outcome)
    loop_budget = max(0.1, min(15.0, SHUTDOWN.left_s(grace_s) - LOOPS_STOP_RESERVE_S))
    await asyncio.gather(*(loop.stop(loop_budget) for loop in context.consumers))
    flush_s = max(0.0, SHUTDOWN.left_s(grace_s) - LOOPS_STOP_RESERVE_S)
    await context.relay.stop(LOOPS_STOP_RESERVE_S, flush_s=flush_s)
    logger.info(
        "stopped in %.2fs",
        time.monotonic() - started,
        extra={"app": context.settings.service_name},
    )


def operations_router(
    app_name: str, *, context_of: Callable[[Request], Awaitable[AppContext]] = app_context
) -> APIRouter:
    """``/healthz``, ``/readyz`` (of the app ``context_of`` finds) and ``/metrics``."""
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
        if SHUTDOWN.stopping:  # a load balancer takes this replica out while it drains
            return JSONResponse(
                Readiness(status="stopping", app=app_name, checks={}).model_dump(),
                status_code=503,
            )
        readiness = await check_readiness(await context_of(request))
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
        elif isinstance(caught_up := getattr(loop, "ready", None), bool):
            # A state view (kit.consent_state): running, but answering 503 until it has read
            # its topic to the end; said here so that a rollout can wait for it.
            detail = {"caught_up": caught_up}
        checks[f"loop:{loop.name}"] = Check(ok=loop.running, detail=detail)
    essential = checks["database"].ok and checks["outbox_relay"].ok
    if not essential:
        status = "unavailable"
    elif all(check.ok for check in checks.values()):
        status = "ready"
    else:
        status = "degraded"
    return Readiness(status=status, app=context.settings.service_name, checks=checks)
