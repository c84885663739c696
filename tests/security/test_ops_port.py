"""The public origin says nothing about the gateway's insides (issue 23 item 6).

Readiness (with broker addresses and last errors), Prometheus metrics and the interactive
docs are served on the gateway's separate operations port (``GATEWAY_OPS_HOST``,
``GATEWAY_OPS_PORT``); the public port answers only a bare liveness check and the
gateway's own OpenAPI (``/openapi.json``: only the routes any client may call, issue 18;
tests/gateway/test_openapi.py). Both are read
here over real sockets, as a client on the internet and a probe on the pod would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from kit.testing import UNREACHABLE_KAFKA, on_loopback_port
from tests.gateway.conftest import GatewayUnderTest, fake_orders_app, running_gateway

OPERATIONS = ("/readyz", "/metrics", "/docs", "/redoc", "/docs/oauth2-redirect")


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[GatewayUnderTest]:
    async with running_gateway(tmp_path, {"orders": fake_orders_app()}) as running:
        yield running


async def test_the_public_port_answers_only_a_bare_liveness(gateway: GatewayUnderTest) -> None:
    async with (
        on_loopback_port(gateway.app) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as public,
    ):
        health = await public.get("/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        for path in OPERATIONS:
            answer = await public.get(path)
            assert answer.status_code == 404, path
            assert answer.headers["content-type"].startswith("application/problem+json"), path
            assert UNREACHABLE_KAFKA not in answer.text and "kafka" not in answer.text, path


async def test_the_operations_port_serves_readiness_metrics_and_docs(
    gateway: GatewayUnderTest,
) -> None:
    port = gateway.app.state.ops_port
    assert port != 0
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as ops:
        ready = await ops.get("/readyz")
        # the broker of this test is unreachable: degraded, saying where it looked
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        assert ready.json()["checks"]["kafka"]["detail"]["bootstrap_servers"] == (UNREACHABLE_KAFKA)
        assert "http_requests_total" in (await ops.get("/metrics")).text
        schema = (await ops.get("/openapi.json")).json()
        assert schema["info"]["title"] == "Gateway"
        docs = await ops.get("/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
