"""The whole suite in-process for the attack tests: the four real services on temporary
SQLite databases, each trusting the gateway tests' signing key, behind a real gateway
(``tests.gateway.conftest.running_gateway``) whose upstreams are those apps
(``httpx.ASGITransport``). Kafka is unreachable: events wait in each app's outbox.

- :func:`running_suite` starts it; :class:`Suite` holds the apps and acts as a user, a
  partner or staff (tokens minted with the gateway tests' key);
- :class:`CountingApp` wraps each service so a test can prove a request never reached it;
- ``suite`` is one suite per test module (starting five apps costs a few seconds);
- :func:`on_loopback` serves a suite's gateway through uvicorn on a real socket;
- tests marked ``fuzz`` run only when the marker expression names ``fuzz`` (``make fuzz``).
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from kit.auth import STAFF_ROLE_SCOPES, USER_SCOPES
from kit.revocation import revocation_handler
from kit.settings import ServiceSettings
from kit.testing import (
    TEST_ISSUER,
    UNREACHABLE_KAFKA,
    bearer,
    on_loopback_port,
    outbox_events,
    serve_app,
    trust_only,
)
from tests.gateway.conftest import KEY, GatewayUnderTest, running_gateway

SERVICES = ("identity", "orders", "consent", "transfer")

AsgiScope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class CountingApp:
    """An ASGI app that counts the HTTP requests it receives before passing them on."""

    def __init__(self, app: Callable[[AsgiScope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app
        self.calls = 0

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.calls += 1
        await self.app(scope, receive, send)


def service_settings(name: str, directory: Path, **overrides: Any) -> ServiceSettings:
    settings_class: type[ServiceSettings] = importlib.import_module(
        f"services.{name}.config"
    ).Settings
    defaults: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{directory}/{name}.db",
        "kafka_bootstrap_servers": UNREACHABLE_KAFKA,
        "auth_issuer": TEST_ISSUER,
        "log_json": False,
    }
    return settings_class(**{**defaults, **overrides})


def partner_registration(name: str, kind: str = "logistics") -> dict[str, Any]:
    """A partner registration identity accepts: agreement and a passed, in-date assessment."""
    today = date.today()
    purposes = {"logistics": "logistics.delivery", "customs_broker": "customs.clearance"}
    return {
        "name": name,
        "contact": "ops@partner.example",
        "kind": kind,
        "agreement_type": "entrusted_processing",
        "agreement_reference": f"AGR-{name}",
        "assessment": {
            "assessed_on": today.isoformat(),
            "result": "passed",
            "valid_until": (today + timedelta(days=365)).isoformat(),
        },
        "purposes": [purposes[kind]],
    }


@dataclass
class Suite:
    """The gateway and the four services behind it, all trusting one test key."""

    gateway: GatewayUnderTest
    services: dict[str, FastAPI]
    counters: dict[str, CountingApp]
    clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)

    @property
    def client(self) -> httpx.AsyncClient:
        """The gateway's client: the one public origin."""
        return self.gateway.client

    def calls(self) -> int:
        """Requests that reached any service so far."""
        return sum(counter.calls for counter in self.counters.values())

    def user(self, subject: str, **claims: Any) -> dict[str, str]:
        return bearer(self.gateway.token(subject, USER_SCOPES, **claims))

    def partner(self, subject: str, scope: str, purposes: Iterable[str]) -> dict[str, str]:
        token = self.gateway.token(
            subject, [scope], kind="partner", client_type="server", purposes=list(purposes)
        )
        return bearer(token)

    def staff(self, subject: str, role: str = "privacy_officer") -> dict[str, str]:
        return bearer(self.gateway.token(subject, STAFF_ROLE_SCOPES[role], kind="staff"))


@asynccontextmanager
async def running_suite(
    directory: Path,
    *,
    service_overrides: dict[str, dict[str, Any]] | None = None,
    gateway_address: tuple[str, int] = ("127.0.0.1", 123),
    **gateway_overrides: Any,
) -> AsyncIterator[Suite]:
    """The four services and the gateway, started in ``directory`` (SQLite files); the
    services see the gateway's requests come from ``gateway_address``."""
    async with AsyncExitStack() as stack:
        services: dict[str, FastAPI] = {}
        clients: dict[str, httpx.AsyncClient] = {}
        for name in SERVICES:
            app, client = await stack.enter_async_context(
                serve_app(
                    f"services.{name}",
                    service_settings(name, directory, **(service_overrides or {}).get(name, {})),
                )
            )
            trust_only(app, KEY)
            services[name], clients[name] = app, client
        counters = {name: CountingApp(app) for name, app in services.items()}
        gateway = await stack.enter_async_context(
            running_gateway(directory, dict(counters), gateway_address, **gateway_overrides)
        )
        # Every function of the suite is open to these tests' users: what is under test
        # is who may reach which object, not consent (tests/gateway covers consent).
        gateway.app.state.consent_granted = lambda subject, purpose: True
        yield Suite(gateway=gateway, services=services, counters=counters, clients=clients)


@pytest.fixture(scope="module")
async def suite(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Suite]:
    async with running_suite(tmp_path_factory.mktemp("suite"), rate_limit_per_s=0) as running:
        yield running


@asynccontextmanager
async def on_loopback(suite: Suite) -> AsyncIterator[str]:
    """The suite's gateway served by uvicorn on a free loopback port."""
    async with on_loopback_port(suite.gateway.app) as port:
        yield f"http://127.0.0.1:{port}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Fuzz runs only when asked for by a marker expression naming ``fuzz`` (``make fuzz``):
    a plain ``make test``, whatever its ``-m``, leaves them out."""
    if "fuzz" in (config.option.markexpr or ""):
        return
    kept = [item for item in items if item.get_closest_marker("fuzz") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


async def deliver_identity_events(suite: Suite) -> None:
    """What the broker would do (Kafka is unreachable here): identity's outbox events to
    every app's revocation consumer (:mod:`kit.revocation`), the gateway's and each
    service's."""
    events = await outbox_events(suite.services["identity"].state.context.database)
    for app in (suite.gateway.app, *suite.services.values()):
        context = app.state.context
        handle = revocation_handler(
            app.state.revocations, keep_s=context.settings.revocation_keep_s
        )
        for event in events:
            async with context.database.session() as session:
                await handle(session, event)
