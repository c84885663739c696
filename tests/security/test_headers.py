"""Hostile request headers (issue 20, item 4): every header the gateway reads or forwards,
with non-ASCII bytes, control characters and an overlong value.

The one right answer: the gateway refuses the request before anything else, naming the
header in a problem+json (400 ``invalid-header`` for bytes outside visible ASCII, 431
``header-too-large`` past ``GATEWAY_MAX_HEADER_BYTES``); no service is reached, nothing
answers 500, and over a real socket the connection serves the next request (control
characters never get past the HTTP parser there: see the socket test).
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit

import h11
import pytest

from gateway.config import Settings
from kit.testing import new_subject
from tests.security.conftest import Suite, on_loopback

LIMIT = Settings.model_fields["max_header_bytes"].default

# What the gateway reads itself, what the services read, and what is only passed on.
HEADERS = [
    "Authorization",
    "X-Purpose",
    "Idempotency-Key",
    "Accept-Language",
    "Accept",
    "Accept-Encoding",
    "Content-Type",
    "User-Agent",
    "Cookie",
    "Referer",
    "Origin",
    "If-None-Match",
    "X-Request-ID",
    "X-Forwarded-For",
    "X-Client-Version",
]

HOSTILE: dict[str, tuple[bytes, int]] = {
    "utf-8": ("订单-001-é".encode(), 400),
    "latin-1": (b"caf\xe9", 400),
    "control": (b"abc\x01def", 400),
    "escape": (b"\x1b[31mred", 400),
    "nul": (b"abc\x00def", 400),
    "delete": (b"abc\x7f", 400),
    "overlong": (b"A" * (LIMIT + 1), 431),
}

# Refused by the HTTP parser before any app sees them (uvicorn's 400, connection closed).
UNPARSEABLE = {"control", "escape", "nul", "delete"}

CASES = [(name, kind) for name in HEADERS for kind in HOSTILE]


@pytest.mark.parametrize(("header", "kind"), CASES, ids=[f"{h}-{k}" for h, k in CASES])
async def test_a_hostile_header_is_refused_by_name_and_reaches_no_service(
    suite: Suite, header: str, kind: str
) -> None:
    value, status = HOSTILE[kind]
    headers = {**suite.user(new_subject()), "Content-Type": "application/json"}
    sent = [(name.encode(), text.encode()) for name, text in headers.items() if name != header]
    sent.append((header.encode(), value))
    before = suite.calls()
    answer = await suite.client.post("/orders/orders", content=b"{}", headers=sent)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["header"] == header.lower()
    assert problem["errors"][0]["field"] == f"header.{header.lower()}"
    assert suite.calls() == before, "the request reached a service"


async def test_headers_at_the_limit_in_visible_ascii_pass(suite: Suite) -> None:
    """The control: the same headers with long, plain values reach the service."""
    plain = {"Accept-Language": "zh-CN,zh;q=0.9", "X-Client-Version": "a" * LIMIT}
    answer = await suite.client.get("/orders/goods", headers=plain)
    assert answer.status_code == 200, answer.text


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, dict[bytes, bytes], bytes]:
    """One request and its whole answer on an open connection."""
    parser = h11.Connection(h11.CLIENT)
    parser.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))  # arm it
    writer.write(request)
    await writer.drain()
    status, headers, body = 0, {}, b""
    while True:
        event = parser.next_event()
        if event is h11.NEED_DATA:
            data = await asyncio.wait_for(reader.read(65_536), timeout=10)
            parser.receive_data(data)
            continue
        if isinstance(event, h11.Response):
            status, headers = event.status_code, dict(event.headers)
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            return status, headers, body


def _request(extra: bytes = b"") -> bytes:
    return b"GET /orders/goods HTTP/1.1\r\nHost: gateway\r\n" + extra + b"\r\n"


async def test_over_a_real_socket_the_connection_survives_every_hostile_header(
    suite: Suite,
) -> None:
    """uvicorn in front (httptools, as deployed). Non-ASCII and overlong values reach the
    gateway: refused by name and the same keep-alive connection serves the next request.
    Control characters never get past uvicorn's HTTP parser: it answers 400 and closes
    the connection, as RFC 9112 (2.2) asks of a message it cannot parse; the next
    connection is served. Nothing answers 500."""
    async with on_loopback(suite) as url:
        address = urlsplit(url)
        assert address.hostname is not None and address.port is not None
        reader, writer = await asyncio.open_connection(address.hostname, address.port)
        try:
            for header, kind in CASES:
                value, expected = HOSTILE[kind]
                hostile = _request(header.encode() + b": " + value + b"\r\n")
                status, headers, body = await _exchange(reader, writer, hostile)
                assert status == expected, (header, kind, body[:200])
                if kind in UNPARSEABLE:
                    assert body == b"Invalid HTTP request received.", (header, kind)
                    assert await reader.read() == b"", "the connection stayed open"
                    writer.close()
                    reader, writer = await asyncio.open_connection(address.hostname, address.port)
                else:
                    assert headers[b"content-type"].startswith(b"application/problem+json")
                    assert json.loads(body)["header"] == header.lower()
                status, _, body = await _exchange(reader, writer, _request())
                assert status == 200, (header, kind, body[:200])
        finally:
            writer.close()
            await writer.wait_closed()
