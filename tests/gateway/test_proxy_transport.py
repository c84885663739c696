"""Production's upstream transport (the gateway's HTTP/1.1 pool) against real sockets.

The other gateway tests inject in-process upstreams; these use
:func:`gateway.proxy.default_client_factory` itself, against small asyncio servers on
127.0.0.1 that answer, refuse, hang up, stall or garble, and check that :func:`forward`
maps each as it did over aiohttp's and httpx's own pools (the former transports, run alike
for comparison): 502 for a broken upstream, 504 for a slow one, no redirect followed,
hop-by-hop headers dropped, bodies decoded.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress

import pytest
import uvicorn

from gateway import proxy
from gateway.config import Settings
from gateway.proxy import (
    ClientFactory,
    UpstreamDown,
    UpstreamResponse,
    Upstreams,
    UpstreamTimeout,
    aiohttp_client_factory,
    default_client_factory,
    forward,
    httpcore_client_factory,
)

Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def _answer(status: str, headers: list[tuple[str, str]], body: bytes) -> Reply:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:  # keep-alive: one answer per request until the client hangs up
            try:
                await _read_head(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}"]
            head += [f"{name}: {value}" for name, value in headers]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
            await writer.drain()
        writer.close()

    return reply


async def _cookie_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        try:
            head = (await _read_head(reader)).decode("latin-1")
        except (asyncio.IncompleteReadError, ConnectionError):
            break
        cookie = [line.split(":", 1)[1].strip() for line in head.split("\r\n")[1:]
                  if line.lower().startswith("cookie:")]  # fmt: skip
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nSet-Cookie: sid=user-a; Path=/\r\n"
            + f"X-Got-Cookie: {cookie[0] if cookie else '-'}\r\n\r\n".encode()
        )
        await writer.drain()
    writer.close()


async def _hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_head(reader)
    writer.close()


async def _stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_head(reader)
    await asyncio.sleep(30)


async def _garble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_head(reader)
    writer.write(b"this is not HTTP at all\r\n\r\n")
    await writer.drain()
    writer.close()


@asynccontextmanager
async def serving(reply: Reply) -> AsyncIterator[str]:
    server = await asyncio.start_server(reply, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(
    params=[default_client_factory, aiohttp_client_factory, httpcore_client_factory],
    ids=["http1", "aiohttp", "httpcore"],
)
def factory(request: pytest.FixtureRequest) -> ClientFactory:
    chosen: ClientFactory = request.param
    return chosen


async def _get(
    factory: ClientFactory, base_url: str, *, timeout_s: float = 2.0
) -> UpstreamResponse:
    settings = Settings(upstream_orders_url=base_url, upstream_timeout_s=timeout_s)
    upstreams = Upstreams(settings, factory)
    try:
        return await forward(
            upstreams,
            "orders",
            method="GET",
            path="/orders/o1",
            query=b"a=1",
            headers=[("Accept", "application/json")],
            body=b"",
        )
    finally:
        await upstreams.aclose()


async def test_an_answer_is_read_whole_decoded_and_without_hop_by_hop_headers(
    factory: ClientFactory,
) -> None:
    body = b'{"order_id":"o1"}'
    reply = _answer(
        "200 OK",
        [
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
            ("Connection", "keep-alive, x-private"),
            ("X-Private", "1"),
            ("Keep-Alive", "timeout=5"),
            ("X-Kept", "yes"),
        ],
        gzip.compress(body),
    )
    async with serving(reply) as url:
        answer = await _get(factory, url)
    assert answer.status_code == 200 and answer.content == body
    assert answer.content_type == "application/json"
    names = {name.lower() for name, _ in answer.headers}
    assert "x-kept" in names
    assert not names & {"connection", "x-private", "keep-alive", "content-encoding"}


async def test_a_redirect_is_passed_on_not_followed(factory: ClientFactory) -> None:
    async with serving(_answer("302 Found", [("Location", "http://127.0.0.1:1/x")], b"")) as url:
        answer = await _get(factory, url)
    assert answer.status_code == 302
    assert ("location", "http://127.0.0.1:1/x") in answer.headers


async def test_a_cookie_set_for_one_request_never_goes_back_with_another(
    factory: ClientFactory,
) -> None:
    settings = Settings(upstream_timeout_s=2.0)
    async with serving(_cookie_echo) as url:
        settings.upstream_orders_url = url
        upstreams = Upstreams(settings, factory)
        try:
            answers = [
                await forward(upstreams, "orders", method="GET", path="/o", query=b"",
                              headers=[], body=b"")
                for _ in range(2)
            ]  # fmt: skip
        finally:
            await upstreams.aclose()
    for answer in answers:
        headers = dict(answer.headers)
        assert headers["set-cookie"] == "sid=user-a; Path=/"  # passed on to its own client
        assert headers["x-got-cookie"] == "-"  # but never sent upstream again


async def test_a_refused_connection_is_down_not_slow(factory: ClientFactory) -> None:
    with pytest.raises(UpstreamDown):
        await _get(factory, f"http://127.0.0.1:{_closed_port()}")


@pytest.mark.parametrize("reply", [_hang_up, _garble], ids=["hang-up", "garbled"])
async def test_a_broken_exchange_is_down_not_slow(factory: ClientFactory, reply: Reply) -> None:
    async with serving(reply) as url:
        with pytest.raises(UpstreamDown):
            await _get(factory, url)


async def test_a_stalled_upstream_is_a_timeout_within_the_limit(factory: ClientFactory) -> None:
    async with serving(_stall) as url:
        started = asyncio.get_running_loop().time()
        with pytest.raises(UpstreamTimeout):
            await _get(factory, url, timeout_s=0.3)
    assert asyncio.get_running_loop().time() - started < 2.0


def _first_request_only(connections: list[int]) -> Reply:
    """An upstream that answers the first request of a connection and hangs up on any
    later one, as a service does when its keep-alive timer fires as a request comes."""

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        await _read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        with suppress(asyncio.IncompleteReadError, ConnectionError):
            await _read_head(reader)
        writer.close()

    return reply


def test_the_gateway_drops_an_idle_upstream_connection_before_the_service_does() -> None:
    assert uvicorn.Config(app="gateway.main:app").timeout_keep_alive > proxy.UPSTREAM_IDLE_S


async def test_a_connection_idle_past_its_time_is_not_reused(
    factory: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(proxy, "UPSTREAM_IDLE_S", 0.2)
    connections: list[int] = []
    async with serving(_first_request_only(connections)) as url:
        settings = Settings(upstream_orders_url=url, upstream_timeout_s=2.0)
        upstreams = Upstreams(settings, factory)
        try:
            for _ in range(2):
                answer = await forward(
                    upstreams, "orders", method="POST", path="/orders", query=b"",
                    headers=[], body=b"{}",
                )  # fmt: skip
                assert answer.status_code == 200 and answer.content == b"ok"
                await asyncio.sleep(0.5)  # idle past UPSTREAM_IDLE_S
        finally:
            await upstreams.aclose()
    assert len(connections) == 2
