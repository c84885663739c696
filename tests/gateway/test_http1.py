"""The gateway's own HTTP/1.1 pool (:mod:`gateway.http1`) against real sockets: the
shapes of answer an upstream may send, the pool's limit and what it refuses to send.
``tests/gateway/test_proxy_transport.py`` runs it beside aiohttp's and httpx's pools."""

from __future__ import annotations

import asyncio
import zlib

import pytest
import uvloop

from gateway.http1 import BrokenExchange, Http1Pool
from tests.gateway.test_proxy_transport import Reply, serving


def pool(url: str, *, max_connections: int = 10, timeout_s: float = 2.0) -> Http1Pool:
    return Http1Pool(
        url, max_connections=max_connections, connect_timeout_s=1.0, timeout_s=timeout_s,
        idle_s=4.0,
    )  # fmt: skip


def replying(raw: bytes, *, close: bool = False, heads: list[bytes] | None = None) -> Reply:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            if heads is not None:
                heads.append(head)
            writer.write(raw)
            await writer.drain()
            if close:
                break
        writer.close()

    return reply


async def test_a_chunked_answer_is_read_whole() -> None:
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    raw += b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    async with serving(replying(raw)) as url:
        client = pool(url)
        answer = await client.request("GET", "/x", [], b"")
        await client.close()
    assert (answer.status, answer.body) == (200, b"hello world")


async def test_an_answer_without_a_length_ends_with_the_connection() -> None:
    raw = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it"
    async with serving(replying(raw, close=True)) as url:
        client = pool(url)
        answer = await client.request("GET", "/x", [], b"")
        await client.close()
    assert answer.body == b"all of it"


async def test_an_interim_answer_is_skipped_for_the_final_one() -> None:
    raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
    async with serving(replying(raw)) as url:
        client = pool(url)
        answer = await client.request("POST", "/x", [], b"{}")
        await client.close()
    assert (answer.status, answer.body) == (201, b"ok")


async def test_a_raw_deflate_body_is_decoded_and_a_broken_one_is_a_broken_exchange() -> None:
    squeezer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    body = squeezer.compress(b'{"a":1}') + squeezer.flush()
    raw = b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\n" % len(body)
    async with serving(replying(raw + body)) as url:
        client = pool(url)
        answer = await client.request("GET", "/x", [], b"")
        await client.close()
    assert answer.body == b'{"a":1}'
    broken = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc"
    async with serving(replying(broken)) as url:
        client = pool(url)
        with pytest.raises(BrokenExchange):
            await client.request("GET", "/x", [], b"")
        await client.close()


async def test_requests_beyond_the_limit_wait_for_a_connection_and_reuse_it() -> None:
    heads: list[bytes] = []
    connections: list[int] = []
    inner = replying(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", heads=heads)

    async def counted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        await inner(reader, writer)

    async with serving(counted) as url:
        client = pool(url, max_connections=1)
        answers = await asyncio.gather(
            *(client.request("GET", f"/x{i}", [], b"") for i in range(3))
        )
        await client.close()
    assert [answer.body for answer in answers] == [b"ok"] * 3
    assert len(connections) == 1 and len(heads) == 3


async def test_the_request_goes_as_given_with_host_and_length() -> None:
    heads: list[bytes] = []
    async with serving(replying(b"HTTP/1.1 204 No Content\r\n\r\n", heads=heads)) as url:
        client = pool(url)
        await client.request("PUT", "/a%2Fb?q=1", [("X-One", "1")], b"")
        await client.request("GET", "/c", [], b"")
        await client.close()
    port = url.rsplit(":", 1)[1]
    assert (
        heads[0]
        == (
            f"PUT /a%2Fb?q=1 HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nX-One: 1\r\n"
            "content-length: 0\r\n\r\n"
        ).encode()
    )
    assert heads[1] == f"GET /c HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\r\n".encode()


async def test_a_body_of_no_declared_type_goes_as_bytes_never_as_json() -> None:
    # The gateway checks a body's personal fields only when it is JSON: an untyped body
    # must not become JSON to the upstream either (FastAPI reads an untyped body as JSON).
    heads: list[bytes] = []
    async with serving(replying(b"HTTP/1.1 204 No Content\r\n\r\n", heads=heads)) as url:
        client = pool(url)
        await client.request("POST", "/x", [], b'{"invoice_tax_id":"x"}')
        await client.request("POST", "/x", [("Content-Type", "application/json")], b"{}")
        await client.close()
    assert b"content-type: application/octet-stream\r\n" in heads[0]
    assert b"octet-stream" not in heads[1]


async def test_a_line_break_in_a_header_is_refused_before_anything_is_sent() -> None:
    heads: list[bytes] = []
    async with serving(replying(b"HTTP/1.1 204 No Content\r\n\r\n", heads=heads)) as url:
        client = pool(url)
        with pytest.raises(ValueError, match="CR or LF"):
            await client.request("GET", "/x", [("X-A", "1\r\nX-Injected: yes")], b"")
        await client.close()
    assert heads == []


def test_it_runs_on_uvloop_as_the_gateway_does() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    async def twice() -> list[bytes]:
        async with serving(replying(raw)) as url:
            client = pool(url)
            bodies = [(await client.request("GET", "/x", [], b"")).body for _ in range(2)]
            await client.close()
        return bodies

    assert uvloop.run(twice()) == [b"ok", b"ok"]
