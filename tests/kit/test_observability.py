"""Logs are JSON lines that carry the request id; requests are counted for Prometheus."""

from __future__ import annotations

import io
import json
import logging

import httpx
from fastapi import FastAPI
from prometheus_client import generate_latest

from kit.observability import JsonFormatter, RequestContextMiddleware, configure_logging


def make_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(RequestContextMiddleware, app_name="obs-test")

    @app.get("/orders/{order_id}")
    async def read(order_id: str) -> dict[str, str]:
        logging.getLogger("orders").info("order read", extra={"order_id": order_id})
        return {"id": order_id}

    return app


async def test_log_lines_are_json_with_the_request_id() -> None:
    configure_logging(level="INFO")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(handler)
    try:
        transport = httpx.ASGITransport(app=make_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            response = await client.get("/orders/o-1", headers={"X-Request-ID": "req-7"})
    finally:
        logging.getLogger().removeHandler(handler)
    assert response.headers["x-request-id"] == "req-7"
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    entry = next(line for line in lines if line["message"] == "order read")
    assert entry["request_id"] == "req-7"
    assert entry["order_id"] == "o-1" and entry["level"] == "info"


async def test_requests_are_counted_by_route_template() -> None:
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        await client.get("/orders/o-2")
    metrics = generate_latest().decode()
    assert 'route="/orders/{order_id}"' in metrics
    assert "o-2" not in metrics, "ids never become label values"
