"""The gateway's connections as deployed (uvicorn with
:class:`gateway.protocol.GuardedHttpToolsProtocol`), which writes each answer's head with
its body: over one kept-alive connection, every kind of answer still arrives whole and in
order (a GET, a HEAD with no body, a POST that waited for ``100 Continue``); and one that
goes silent after its answers is closed, its idle deadline moved on by each request."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.protocol import ConnectionLimits, GuardedHttpToolsProtocol
from kit.testing import on_loopback_port
from tests.gateway.conftest import POINT, GatewayUnderTest, fake_orders_app, running_gateway

OUTCOME_WITHIN_S = 30.0  # a bound for a stuck test, not a threshold under test


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[GatewayUnderTest, int]]:
    async with (
        running_gateway(tmp_path, {"orders": fake_orders_app()}) as gateway,
        on_loopback_port(gateway.app, http=GuardedHttpToolsProtocol) as port,
    ):
        yield gateway, port


async def _answer(reader: asyncio.StreamReader, *, head_only: bool = False) -> tuple[int, bytes]:
    """One answer's status and body, read by its ``content-length``."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
    length = 0 if head_only else int(fields["content-length"])
    return int(lines[0].split(" ")[1]), await reader.readexactly(length)


async def test_answers_of_every_kind_arrive_whole_and_in_order_on_one_connection(
    served: tuple[GatewayUnderTest, int],
) -> None:
    gateway, port = served
    subject, user = gateway.user()
    gateway.consents.add((subject, "location"))
    auth = user["Authorization"].encode()
    body = json.dumps(POINT).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async with asyncio.timeout(OUTCOME_WITHIN_S):
            writer.write(b"GET /healthz HTTP/1.1\r\nhost: gateway\r\n\r\n")
            status, content = await _answer(reader)
            assert status == 200 and json.loads(content) == {"status": "ok"}

            writer.write(b"HEAD /healthz HTTP/1.1\r\nhost: gateway\r\n\r\n")
            status, content = await _answer(reader, head_only=True)
            assert status == 200 and content == b""

            writer.write(
                b"POST /orders/location/nearby HTTP/1.1\r\nhost: gateway\r\n"
                b"authorization: " + auth + b"\r\ncontent-type: application/json\r\n"
                b"expect: 100-continue\r\ncontent-length: %d\r\n\r\n" % len(body)
            )
            assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
            writer.write(body)
            status, content = await _answer(reader)
            assert status == 200, content
            assert json.loads(content) == {"items": [{"goods_id": "gds_tea"}]}

            writer.write(b"GET /orders/orders/ord_1 HTTP/1.1\r\nhost: gateway\r\n\r\n")
            status, content = await _answer(reader)
            assert status == 401 and json.loads(content)["status"] == 401
    finally:
        writer.close()


class ShortIdle(GuardedHttpToolsProtocol):
    limits = ConnectionLimits(
        idle_timeout_s=1.0,
        header_timeout_s=10.0,
        body_timeout_s=10.0,
        max_request_header_bytes=32_768,
        max_connections_per_client=0,
    )


async def test_a_kept_alive_connection_silent_after_its_answers_is_closed(tmp_path: Path) -> None:
    async with (
        running_gateway(tmp_path, {"orders": fake_orders_app()}) as gateway,
        on_loopback_port(gateway.app, http=ShortIdle) as port,
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            async with asyncio.timeout(OUTCOME_WITHIN_S):
                for _ in range(3):
                    writer.write(b"GET /healthz HTTP/1.1\r\nhost: gateway\r\n\r\n")
                    assert (await _answer(reader))[0] == 200
                assert await reader.read() == b""  # closed by the gateway, nothing more said
        finally:
            writer.close()
