"""Logs are JSON lines that carry the request id; requests are counted for Prometheus."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from prometheus_client import generate_latest

from kit.observability import JsonFormatter, RequestContextMiddleware, configure_logging
from kit.testing import eventually


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


async def _serve_two_requests(*, access_log: bool) -> list[dict[str, Any]]:
    """Run ``make_app`` under a real uvicorn started as the Procfile does
    (``--no-access-log``), logging configured at start as every app does; a good request
    and a failing one. Returns the process's log lines."""
    app = make_app()

    @app.get("/broken")
    async def broken() -> None:
        raise RuntimeError("the handler failed")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        configure_logging(level="INFO", access_log=access_log)
        yield

    app.router.lifespan_context = lifespan
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, access_log=False, log_config=None, lifespan="on"))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:

        async def started() -> bool:
            return server.started

        await eventually(started, timeout_s=30, what="uvicorn to start")
        stream = io.StringIO()
        [handler] = logging.getLogger().handlers
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(stream)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            # a query string can hold personal values: never in an access line
            assert (await client.get("/orders/o-9?latitude=30.258741")).status_code == 200
            assert (await client.get("/broken")).status_code == 500
    finally:
        server.should_exit = True
        await serving
        listener.close()
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_a_service_writes_no_access_line_per_request_but_logs_its_errors() -> None:
    lines = await _serve_two_requests(access_log=False)
    assert [line for line in lines if line["logger"] == "uvicorn.access"] == []
    errors = [line for line in lines if line["level"] == "error"]
    assert len(errors) == 1 and "the handler failed" in errors[0]["exception"]


async def test_the_gateway_keeps_one_access_line_per_request() -> None:
    lines = await _serve_two_requests(access_log=True)
    access = [line["message"] for line in lines if line["logger"] == "uvicorn.access"]
    assert len(access) == 2
    assert '"GET /orders/o-9 HTTP/1.1" 200' in access[0]
    assert "30.258741" not in "\n".join(access)
    assert '"GET /broken HTTP/1.1" 500' in access[1]
