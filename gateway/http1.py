"""The hot path's upstream client: HTTP/1.1 over pooled asyncio connections, httptools-parsed.

aiohttp's client was the largest single cost left on the gateway's hot path (~22 % of the
in-process profile: its request and response objects, multidicts, URL objects, tracing
hooks and a timer context per request, all in Python). The gateway needs little of it: one
request at a time per connection to a known upstream, the whole answer read, no cookies, no
redirects, no proxies. :class:`Http1Pool` does that much and no more:

- the request's head is written with its body in one ``write`` (names and values as given;
  ``Host`` from the upstream's URL, ``Content-Length`` for a body and for every method
  but GET, HEAD, OPTIONS and TRACE, ``Content-Type: application/octet-stream`` for a body
  that names no type, as aiohttp sent them; a CR or LF in a header is refused with
  ``ValueError`` before anything is sent);
- the answer is parsed by httptools (llhttp, as uvicorn parses requests): lengths, chunked
  bodies, a body read until the connection closes, interim 1xx answers skipped; a ``gzip``
  or ``deflate`` body is decoded, as aiohttp's ``auto_decompress`` did;
- connections are kept per upstream, the most recently used first, never one idle longer
  than the module's idle time (below the services' own keep-alive, see
  :data:`gateway.proxy.UPSTREAM_IDLE_S`), at most ``max_connections`` open (a request
  waits for one while all are busy); one that the upstream closed leaves the pool at once;
- one deadline bounds the whole exchange (waiting for a connection, connecting, the
  answer), a single timer per request: past it :class:`TimeoutError`; a refused, reset,
  closed or garbled exchange is a :class:`ConnectionError` (:class:`BrokenExchange`), so
  :func:`gateway.proxy.forward` keeps 502 for a broken upstream and 504 for a slow one.
  A connection whose exchange did not end cleanly (timeout, cancellation, error) is closed,
  never reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import zlib
from collections import deque
from typing import Any, Final, cast
from urllib.parse import urlsplit

import httptools

__all__ = ["BrokenExchange", "Http1Answer", "Http1Pool"]

#: Methods sent without ``Content-Length`` when they have no body (aiohttp's GET_METHODS).
_BODILESS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class BrokenExchange(ConnectionError):
    """The upstream closed, reset or garbled the exchange."""


class Http1Answer:
    """An upstream's answer, read whole: status, headers as sent (names lower-cased), the
    body decoded from ``gzip`` / ``deflate``."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class _Connection(asyncio.Protocol):
    """One connection to the upstream, one exchange at a time."""

    def __init__(self, pool: Http1Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Http1Answer] | None = None
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.head_only = False
        #: The last answer was read whole and the upstream keeps the connection open (read
        #: as the answer ends: httptools forgets it once the message is complete).
        self.ended = False
        self.closed = False
        self.idle_since = 0.0

    # ------------------------------------------------------------------ the exchange
    def send(
        self, loop: asyncio.AbstractEventLoop, data: bytes, *, head_only: bool
    ) -> asyncio.Future[Http1Answer]:
        assert self.transport is not None
        waiter: asyncio.Future[Http1Answer] = loop.create_future()
        self.waiter = waiter
        self.status, self.headers, self.body = 0, [], []
        self.head_only = head_only
        self.ended = False
        self.transport.write(data)
        return waiter

    def reusable(self) -> bool:
        return self.ended and not self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def _fail(self, error: BaseException) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        self.close()

    # ------------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.waiter is None or self.waiter.done():
            self._fail(BrokenExchange("the upstream sent bytes nobody asked for"))
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(BrokenExchange("the upstream switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(BrokenExchange(f"the upstream's answer is not HTTP/1.1: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self.status and not self.head_only and self._read_until_close():
            self._complete()  # a body delimited by the connection's end
        else:
            waiter.set_exception(BrokenExchange("the upstream closed the connection"))

    def _read_until_close(self) -> bool:
        names = {name for name, _ in self.headers}
        return "content-length" not in names and "transfer-encoding" not in names

    # ------------------------------------------------------------------ httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:  # interim: the real answer follows
            self.headers = []
            return
        self.status = status
        if self.head_only:  # no body follows, whatever the headers say
            self.ended = False  # the parser expects one: the connection is not reused
            self._complete()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if not self.status:  # the end of an interim answer
            return
        self.ended = bool(self.parser.should_keep_alive())
        self._complete()

    def _complete(self) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        body = b"".join(self.body)
        try:
            body = _decoded(body, self.headers)
        except zlib.error as exc:
            self._fail(BrokenExchange(f"the upstream's body does not decode: {exc}"))
            return
        waiter.set_result(Http1Answer(self.status, self.headers, body))


def _decoded(body: bytes, headers: list[tuple[str, str]]) -> bytes:
    if not body:
        return body
    encoding = ""
    for name, value in headers:
        if name == "content-encoding":
            encoding = value.strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return _inflate(body, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":  # zlib-wrapped as RFC 9110 says, or raw as some servers send
        try:
            return _inflate(body, zlib.MAX_WBITS)
        except zlib.error:
            return _inflate(body, -zlib.MAX_WBITS)
    return body


def _inflate(body: bytes, wbits: int) -> bytes:
    decoder = zlib.decompressobj(wbits)
    out = decoder.decompress(body) + decoder.flush()
    if not decoder.eof:
        raise zlib.error("truncated")
    return out


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class Http1Pool:
    """Pooled HTTP/1.1 connections to one upstream; see the module's notes."""

    def __init__(
        self,
        base_url: str,
        *,
        max_connections: int,
        connect_timeout_s: float,
        timeout_s: float,
        idle_s: float,
    ) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = url.hostname
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.ssl: ssl.SSLContext | None = (
            ssl.create_default_context() if url.scheme == "https" else None
        )
        default_port = url.port is None or url.port == (443 if url.scheme == "https" else 80)
        netloc = f"[{self.host}]" if ":" in self.host else self.host
        self._host_line = f"host: {netloc if default_port else f'{netloc}:{url.port}'}"
        self.max_connections = max_connections
        self.connect_timeout_s = connect_timeout_s
        self.timeout_s = timeout_s
        self.idle_s = idle_s
        self._idle: list[_Connection] = []
        self._open = 0
        self._waiters: deque[asyncio.Future[_Connection | None]] = deque()
        self._closed = False

    async def request(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> Http1Answer:
        """Send ``method target`` with ``headers`` and ``body``; the whole answer."""
        data = self._encode(method, target, headers, body)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        connection = self._take_idle(loop.time())
        if connection is None:
            connection = await self._connection(loop, deadline)
        try:
            waiter = connection.send(loop, data, head_only=method == "HEAD")
            timer = loop.call_at(deadline, _expire, waiter)
            try:
                answer = await waiter
            finally:
                timer.cancel()
        except BaseException:
            connection.close()  # its exchange did not end cleanly: never reused
            self._give_back(None)
            raise
        connection.waiter = None
        if connection.reusable() and not self._closed:
            connection.idle_since = loop.time()
            self._give_back(connection)
        else:
            connection.close()
            self._give_back(None)
        return answer

    def _encode(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> bytes:
        lines = [f"{method} {target} HTTP/1.1", self._host_line]
        lines += [f"{name}: {value}" for name, value in headers]
        if body or method not in _BODILESS:
            lines.append(f"content-length: {len(body)}")
        if body and not any(name.lower() == "content-type" for name, _ in headers):
            # A body of no declared type is bytes, as aiohttp declared it: never JSON the
            # upstream would parse when the gateway did not check it as JSON.
            lines.append("content-type: application/octet-stream")
        text = "\r\n".join(lines)
        breaks = len(lines) - 1
        if text.count("\n") != breaks or text.count("\r") != breaks:
            raise ValueError("a CR or LF in the request line or a header")
        head = (text + "\r\n\r\n").encode("latin-1")
        return head + body if body else head

    def _take_idle(self, now: float) -> _Connection | None:
        idle = self._idle
        while idle:
            connection = idle.pop()
            if not connection.closed and now - connection.idle_since < self.idle_s:
                return connection
            connection.close()
            self._open -= 1
        return None

    async def _connection(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Connection:
        """A new connection, or one a finished request hands over once all are busy."""
        if self._closed:
            raise RuntimeError("the upstream pool is closed")
        if self._open >= self.max_connections:
            waiter: asyncio.Future[_Connection | None] = loop.create_future()
            self._waiters.append(waiter)
            timer = loop.call_at(deadline, _expire, waiter)
            try:
                handed = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    self._give_back(waiter.result())  # handed over as this one gave up
                raise
            finally:
                timer.cancel()
            if handed is not None:
                return handed
            # None: a slot was handed over; open a connection in it
        else:
            self._open += 1
        try:
            budget = min(self.connect_timeout_s, max(0.0, deadline - loop.time()))
            async with asyncio.timeout(budget):
                _, protocol = await loop.create_connection(
                    lambda: _Connection(self),
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.host if self.ssl else None,
                )
        except BaseException:
            self._give_back(None)
            raise
        return protocol

    def _give_back(self, connection: _Connection | None) -> None:
        """A finished request's connection (to reuse), or ``None``: its slot is free."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        if connection is None:
            self._open -= 1
        else:
            self._idle.append(connection)

    def forget(self, connection: _Connection) -> None:
        """An idle connection the upstream closed leaves the pool at once."""
        if connection in self._idle:
            self._idle.remove(connection)
            self._open -= 1

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
        self._open -= len(idle)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(RuntimeError("the upstream pool is closed"))
        with contextlib.suppress(Exception):
            await asyncio.sleep(0)  # let the transports close
