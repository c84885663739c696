"""Slow and greedy clients cannot hold the gateway (issue 23 item 8).

The gateway is served as ``deploy/Procfile`` serves it (uvicorn with
:class:`gateway.protocol.GuardedHttpToolsProtocol`), with short limits so the test is short.
Raw sockets play the attackers: a body sent one byte every 2 s, headers sent one line every
2 s, a connection that sends nothing, headers of 100 kB in many small lines, and more
connections from one address than the cap. Each is answered with the one right status (or
closed without one) while an ordinary client is answered as usual. The outcomes are read
from the sockets (the answer, then the end of the stream), not from clocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway.protocol import ConnectionLimits, GuardedHttpToolsProtocol
from kit.testing import on_loopback_port
from tests.gateway.conftest import POINT, GatewayUnderTest, fake_orders_app, running_gateway

DRIP_S = 2.0  # the attackers' pace
OUTCOME_WITHIN_S = 30.0  # a bound for a stuck test, not a threshold under test
CAP = 6


class ShortLimits(GuardedHttpToolsProtocol):
    limits = ConnectionLimits(
        idle_timeout_s=3.0,
        header_timeout_s=3.0,
        body_timeout_s=3.0,
        max_request_header_bytes=32_768,
        max_connections_per_client=CAP,
    )
    open_by_address: Counter[str] = Counter()  # type: ignore[misc]


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[GatewayUnderTest, int]]:
    async with (
        running_gateway(tmp_path, {"orders": fake_orders_app()}) as gateway,
        on_loopback_port(gateway.app, http=ShortLimits) as port,
    ):
        yield gateway, port


class Attacker:
    """One raw connection: sends ``lines`` one every :data:`DRIP_S` and reads until the
    gateway closes the connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.closed = asyncio.Event()
        self.answer = b""

    async def run(self, opening: bytes, drips: list[bytes]) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)

        async def drip() -> None:
            with contextlib.suppress(ConnectionError):
                writer.write(opening)
                await writer.drain()
                for piece in drips:
                    await asyncio.sleep(DRIP_S)
                    writer.write(piece)
                    await writer.drain()

        dripping = asyncio.create_task(drip())
        try:
            with contextlib.suppress(ConnectionError):
                self.answer = await reader.read()  # until the gateway closes
        finally:
            self.closed.set()
            dripping.cancel()
            writer.close()
        return self.answer


def _status(answer: bytes) -> int | None:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None


async def test_slow_connections_are_closed_while_everyone_else_is_answered(
    served: tuple[GatewayUnderTest, int],
) -> None:
    gateway, port = served
    subject, user = gateway.user()
    gateway.consents.add((subject, "location"))
    body = json.dumps(POINT).encode()
    authorization = user["Authorization"].encode()
    slow_body, slow_headers, silent = Attacker(port), Attacker(port), Attacker(port)
    attacks = [
        asyncio.create_task(
            slow_body.run(
                b"POST /orders/location/nearby HTTP/1.1\r\nhost: gateway\r\n"
                b"authorization: " + authorization + b"\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n" % len(body),
                [bytes([byte]) for byte in body],
            )
        ),
        asyncio.create_task(
            slow_headers.run(
                b"GET /healthz HTTP/1.1\r\n", [b"x-line-%d: 1\r\n" % n for n in range(30)]
            )
        ),
        asyncio.create_task(silent.run(b"", [])),
    ]
    await asyncio.sleep(0.2)  # let the three connect
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        for _ in range(5):
            assert (await client.get("/healthz")).status_code == 200
        answered = await client.post("/orders/location/nearby", headers=user, json=POINT)
        assert answered.status_code == 200, answered.text
    # everyone else was answered while the three were still held open
    assert not any(a.closed.is_set() for a in (slow_body, slow_headers, silent))

    body_answer, headers_answer, silent_answer = await asyncio.wait_for(
        asyncio.gather(*attacks), OUTCOME_WITHIN_S
    )
    assert _status(body_answer) == 408
    assert _status(headers_answer) == 408
    assert silent_answer == b""  # closed without a word


async def test_headers_too_large_in_all_are_refused_before_they_are_buffered(
    served: tuple[GatewayUnderTest, int],
) -> None:
    _, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    # 100 headers of 1 kB: each under the app's per-header limit, 100 kB in all
    lines = b"".join(b"x-filler-%d: %s\r\n" % (n, b"a" * 1000) for n in range(100))
    with contextlib.suppress(ConnectionError):
        writer.write(b"GET /healthz HTTP/1.1\r\nhost: gateway\r\n" + lines + b"\r\n")
        await writer.drain()
    answer = await asyncio.wait_for(reader.read(), OUTCOME_WITHIN_S)
    writer.close()
    assert _status(answer) == 431


async def test_one_address_opens_at_most_the_cap_of_connections(
    served: tuple[GatewayUnderTest, int],
) -> None:
    _, port = served
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(CAP)]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answer = await asyncio.wait_for(reader.read(), OUTCOME_WITHIN_S)
        writer.close()
        assert _status(answer) == 429 and b"retry-after: 1" in answer
        # the held ones still serve requests
        held_reader, held_writer = held[0]
        held_writer.write(b"GET /healthz HTTP/1.1\r\nhost: gateway\r\n\r\n")
        await held_writer.drain()
        assert _status(await asyncio.wait_for(held_reader.readline(), OUTCOME_WITHIN_S)) == 200
    finally:
        for _, held_writer in held:
            held_writer.close()
