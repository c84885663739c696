"""Every app (four services and the gateway) starts from a migrated database, answers
``/healthz`` and ``/readyz``, serves its own OpenAPI and metrics (the gateway on its
operations port), and says when Kafka is down while its events wait safely in the outbox."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from kit.catalogue import CatalogueError
from kit.migrations import upgrade
from kit.settings import REPO_ROOT, ServiceSettings
from kit.testing import serve_app
from services.orders.config import Settings as OrdersSettings
from services.orders.main import create_app as create_orders_app
from tests.conftest import Broker

APPS = ["services.identity", "services.orders", "services.consent", "services.transfer", "gateway"]
UNREACHABLE_KAFKA = "127.0.0.1:1"
#: Events an app writes at its first start: consent publishes the shipped privacy policy.
QUEUED_AT_FIRST_START = {"services.consent": 1}


@asynccontextmanager
async def running(app_package: str, url: str, bootstrap: str) -> AsyncIterator[httpx.AsyncClient]:
    settings_class: type[ServiceSettings] = importlib.import_module(
        f"{app_package}.config"
    ).Settings
    settings = settings_class(database_url=url, kafka_bootstrap_servers=bootstrap)
    async with serve_app(app_package, settings) as (app, client):
        if app_package != "gateway":
            yield client
            return
        # the gateway's operations routes are on its operations port, not the public one
        ops_url = f"http://127.0.0.1:{app.state.ops_port}"
        async with httpx.AsyncClient(base_url=ops_url) as ops:
            yield ops


@pytest.mark.parametrize("app_package", APPS)
async def test_app_is_alive_and_ready_with_kafka(
    app_package: str, kafka: Broker, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/app.db"
    async with running(app_package, url, kafka.bootstrap_servers) as client:
        health = await client.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert health.headers["x-request-id"]
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["status"] == "ready"
        assert body["checks"]["database"]["ok"] and body["checks"]["outbox_relay"]["ok"]
        assert body["checks"]["kafka"]["ok"]
        openapi = (await client.get("/openapi.json")).json()
        if app_package == "gateway":  # the routes a client calls, none of the ops port's
            assert "/orders/orders" in openapi["paths"] and "/readyz" not in openapi["paths"]
        else:
            assert {"/healthz", "/readyz"} <= set(openapi["paths"])
        metrics = await client.get("/metrics")
        assert "http_requests_total" in metrics.text


@pytest.mark.parametrize("app_package", APPS)
async def test_readyz_reports_the_broker_down_while_events_stay_queued(
    app_package: str, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/app.db"
    async with running(app_package, url, UNREACHABLE_KAFKA) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        body = ready.json()
        assert body["status"] == "degraded"
        assert body["checks"]["kafka"]["ok"] is False
        assert body["checks"]["outbox_relay"]["ok"] is True
        pending = body["checks"]["outbox_relay"]["detail"]["pending"]
        assert pending == QUEUED_AT_FIRST_START.get(app_package, 0)


async def test_request_ids_are_kept_from_the_caller(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/app.db"
    async with running("services.orders", url, UNREACHABLE_KAFKA) as client:
        response = await client.get("/healthz", headers={"X-Request-ID": "req-42"})
        assert response.headers["x-request-id"] == "req-42"


@pytest.mark.integration
@pytest.mark.parametrize("app_package", APPS)
async def test_migrations_apply_on_postgresql_and_are_idempotent(
    app_package: str, pg_url: str
) -> None:
    await upgrade(app_package, pg_url)
    await upgrade(app_package, pg_url)
    async with running(app_package, pg_url, UNREACHABLE_KAFKA) as client:
        ready = (await client.get("/readyz")).json()
        assert ready["checks"]["database"]["ok"]


@pytest.mark.obligation("OB-0-1")
async def test_a_broken_catalogue_stops_start_up(tmp_path: Path) -> None:
    broken = tmp_path / "catalogue.yaml"
    shipped = (REPO_ROOT / "policy" / "catalogue.yaml").read_text()
    broken.write_text(
        shipped.replace(
            "category: user.contact.phone_number", "category: user.contact.fax_number", 1
        )
    )
    settings = OrdersSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/app.db",
        kafka_bootstrap_servers=UNREACHABLE_KAFKA,
        catalogue_path=broken,
    )
    app = create_orders_app(settings)
    with pytest.raises(CatalogueError, match=r"catalogue\.yaml:\d+: .*fax_number"):
        async with app.router.lifespan_context(app):
            pass


def _api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    """Every API route of an app, those of included routers too."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        inner = getattr(route, "original_router", None)  # a router FastAPI includes lazily
        if inner is not None:
            yield from _api_routes(inner.routes)


def _sync_calls(dependant: Dependant) -> Iterator[str]:
    for dependency in dependant.dependencies:
        call = dependency.call
        is_async = inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)
        if call is not None and not inspect.isfunction(call) and not is_async:
            is_async = inspect.iscoroutinefunction(type(call).__call__)  # HTTPBearer()
        if call is not None and not is_async:
            yield getattr(call, "__qualname__", repr(call))
        yield from _sync_calls(dependency)


@pytest.mark.parametrize("app_package", APPS)
def test_no_request_waits_for_a_worker_thread(app_package: str) -> None:
    """FastAPI runs a plain ``def`` dependency or endpoint in its thread pool, one hand-off
    per request (the full-stack profile of issue 22 found ``app_context`` and the settings
    getters there on every request of every service): all of them are ``async def``."""
    settings_class: type[ServiceSettings] = importlib.import_module(
        f"{app_package}.config"
    ).Settings
    app = importlib.import_module(f"{app_package}.main").create_app(settings_class())
    routes = list(_api_routes(app.routes))
    assert routes, "no API route found"
    found = {
        f"{route.path}: {name}"
        for route in routes
        for name in (
            *_sync_calls(route.dependant),
            *(() if inspect.iscoroutinefunction(route.endpoint) else (route.endpoint.__name__,)),
        )
    }
    assert not found, sorted(found)
