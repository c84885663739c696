"""The gateway's HTTP/1.1 connections, guarded against slow and greedy clients.

uvicorn's httptools protocol waits as long as a client likes for a request's headers and
body, keeps a connection that never sent anything open for good, buffers any amount of
header bytes, and lets one address open as many connections as it wants. The gateway
serves the internet, so :class:`GuardedHttpToolsProtocol` (``uvicorn --http
gateway.protocol:GuardedHttpToolsProtocol``, as ``deploy/Procfile`` and
``deploy/entrypoint.sh`` run it) adds, per connection:

- an idle timeout (``GATEWAY_IDLE_TIMEOUT_S``): a connection with no request under way (a
  new one, or a kept-alive one between requests) that sends nothing is closed;
- a header timeout (``GATEWAY_HEADER_TIMEOUT_S``): the request line and every header must
  have arrived that long after the request's first byte, or the answer is 408 and the
  connection is closed;
- a body timeout (``GATEWAY_BODY_TIMEOUT_S``): the whole body must have arrived that long
  after the headers, or the answer is 408 (if the app has not answered yet) and the
  connection is closed; the app sees the client gone;
- a header size limit (``GATEWAY_MAX_REQUEST_HEADER_BYTES``, request line and all headers
  together): past it, 431 and the connection is closed, before the rest is buffered (the
  app's own per-header limit, ``GATEWAY_MAX_HEADER_BYTES``, answers problem+json);
- a cap on the connections open at once from one client address
  (``GATEWAY_MAX_CONNECTIONS_PER_CLIENT``, 0: none): one more is answered 429 and closed.
  The address is the TCP peer's: behind a load balancer turn the cap off (0) and let the
  balancer cap its clients.

Timeouts answer with a bare response and ``connection: close`` (the connection is no longer
in a state to carry problem+json through the app). Closing is counted in
``gateway_connections_closed_total`` by reason.

A response's head (status line and headers) leaves with its first body bytes, in one write:
uvicorn writes them apart, two system calls and two TCP segments per answer, which was
~8-10 % of the gateway's samples under load (:class:`_HeadWithBody`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from prometheus_client import Counter as MetricCounter
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from gateway.config import Settings

CONNECTIONS_CLOSED = MetricCounter(
    "gateway_connections_closed_total",
    "Client connections the gateway closed for being slow or too many",
    ["reason"],
)

#: A timer may fire this much before its deadline (the loop's clock resolution): due.
_TIMER_SLACK_S: Final = 0.001

_REASONS: Final = {
    408: b"Request Timeout",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
}


@dataclass(frozen=True)
class ConnectionLimits:
    idle_timeout_s: float
    header_timeout_s: float
    body_timeout_s: float
    max_request_header_bytes: int
    max_connections_per_client: int  # 0: no cap


def limits_from(settings: Settings) -> ConnectionLimits:
    return ConnectionLimits(
        idle_timeout_s=settings.idle_timeout_s,
        header_timeout_s=settings.header_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        max_request_header_bytes=settings.max_request_header_bytes,
        max_connections_per_client=settings.max_connections_per_client,
    )


class _HeadWithBody:
    """The transport as one response cycle sees it: the response head (its first write
    once the response started) is held and written with the first body bytes. A HEAD
    answer has no body, so its head is written at once; closing writes a held head first
    (an app that failed after starting its answer)."""

    __slots__ = ("_cycle", "_head", "_transport", "_waiting")

    def __init__(self, transport: asyncio.Transport, cycle: RequestResponseCycle) -> None:
        self._transport = transport
        self._cycle = cycle
        self._head: bytes | None = None
        self._waiting = cycle.scope["method"] != "HEAD"  # for the head, to hold it

    def write(self, data: bytes) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.write(head + data)
        elif self._waiting and self._cycle.response_started:  # not "100 Continue"
            self._waiting = False
            self._head = data
        else:
            self._transport.write(data)

    def close(self) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.write(head)
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above (from the gateway's settings,
    read once per process; a subclass may set :attr:`limits` itself)."""

    limits: ClassVar[ConnectionLimits | None] = None
    #: Open connections per client address, per process.
    open_by_address: ClassVar[Counter[str]] = Counter()

    #: One timer per connection, firing at or before the deadline (see :meth:`_arm`).
    _timer: asyncio.TimerHandle | None = None
    _timer_at: float = 0.0
    _deadline: float | None = None
    _on_deadline: Callable[[], None] | None = None
    _address: str | None = None
    _header_bytes: int = 0
    _refused: bool = False
    _in_headers: bool = False

    @classmethod
    def _limits(cls) -> ConnectionLimits:
        if cls.limits is None:
            cls.limits = limits_from(Settings())  # once per process, at its first connection
        return cls.limits

    # -- connection --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limits = self._limits()
        if self.client is not None:
            self._address = self.client[0]
            self.open_by_address[self._address] += 1
            cap = limits.max_connections_per_client
            if cap and self.open_by_address[self._address] > cap:
                self._refuse(429, "too_many_connections", retry_after=True)
                return
        self._arm(limits.idle_timeout_s, self._on_idle)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._address is not None:
            self.open_by_address[self._address] -= 1
            if self.open_by_address[self._address] <= 0:
                del self.open_by_address[self._address]
            self._address = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)

    # -- parser callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._in_headers = True
        self._arm(self._limits().header_timeout_s, self._on_slow_headers)

    def on_url(self, url: bytes) -> None:
        if self._count_header_bytes(len(url)):
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._count_header_bytes(len(name) + len(value) + 4):
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._in_headers = False
        self._arm(self._limits().body_timeout_s, self._on_slow_body)
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle is not before:  # its task has not run yet
            cycle.transport = _HeadWithBody(self.transport, cycle)  # type: ignore[assignment]

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._disarm()  # the request is in; the app takes its time (upstream timeout)
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            # between requests: uvicorn's keep-alive timer is ours
            self._unset_keepalive_if_required()
            self._arm(self._limits().idle_timeout_s, self._on_idle)

    # -- limits ----------------------------------------------------------------------------

    def _count_header_bytes(self, size: int) -> bool:
        if self._refused:
            return False
        self._header_bytes += size
        if self._header_bytes > self._limits().max_request_header_bytes:
            self._refuse(431, "header_too_large")
            return False
        return True

    def _on_idle(self) -> None:
        if not self.transport.is_closing():
            CONNECTIONS_CLOSED.labels("idle").inc()
            self.transport.close()

    def _on_slow_headers(self) -> None:
        if self._in_headers:
            self._refuse(408, "slow_headers")

    def _on_slow_body(self) -> None:
        if self.cycle is not None and not self.cycle.response_started:
            self._refuse(408, "slow_body")
        else:
            CONNECTIONS_CLOSED.labels("slow_body").inc()
            self._refused = True
            self.transport.close()

    def _refuse(self, status: int, reason: str, *, retry_after: bool = False) -> None:
        """Answer ``status`` without a body and close the connection."""
        self._refused = True
        self._disarm()
        CONNECTIONS_CLOSED.labels(reason).inc()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False
        if not self.transport.is_closing():
            head = b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])
            head += b"content-length: 0\r\nconnection: close\r\n"
            if retry_after:
                head += b"retry-after: 1\r\n"
            self.transport.write(head + b"\r\n")
            self.transport.close()

    def _arm(self, delay_s: float, callback: Callable[[], None]) -> None:
        """Call ``callback`` in ``delay_s`` unless re-armed or disarmed before. Re-arming for
        a later deadline keeps the timer (it fires, finds the deadline moved and waits
        on): a request moves the deadline three times, and a new timer each time (and
        the old one cancelled) was a cost of every request."""
        deadline = self.loop.time() + delay_s
        self._deadline, self._on_deadline = deadline, callback
        if self._timer is None or self._timer_at > deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _disarm(self) -> None:
        self._deadline = self._on_deadline = None  # a timer still set finds nothing due

    def _on_timer(self) -> None:
        self._timer = None
        deadline, callback = self._deadline, self._on_deadline
        if deadline is None or callback is None:
            return
        if deadline - self.loop.time() > _TIMER_SLACK_S:  # moved later meanwhile
            self._timer_at = deadline
            self._timer = self.loop.call_at(deadline, self._on_timer)
            return
        self._deadline = self._on_deadline = None
        callback()


__all__ = ["ConnectionLimits", "GuardedHttpToolsProtocol"]
