"""Forwarding to the upstream services: one pooled client per upstream.

- :class:`Upstreams` holds the clients, made by an injectable :data:`ClientFactory` (tests
  pass one that returns ``httpx.AsyncClient`` over ``httpx.ASGITransport`` to in-process
  apps).
- :func:`default_client_factory`, production's: a :class:`gateway.http1.Http1Pool` per
  upstream, HTTP/1.1 over pooled asyncio connections parsed by httptools (issue 14: aiohttp's
  client was ~22 % of the hot path's cost in process; the pool does what the gateway needs
  of it and no more). Its limits: ``upstream_max_connections`` bounds the pool, no proxy
  from the environment, no redirects followed, no cookies, ``gzip`` / ``deflate`` bodies
  decoded.
- :func:`aiohttp_client_factory`: one ``aiohttp.ClientSession`` per upstream, used directly
  (the transport before; httpx's request and response objects on top of aiohttp's pool had
  cost the hot path more than the pool itself), kept for ``bench.http`` and for the
  transport tests to compare against. Before it, httpx over aiohttp's pool
  (``httpx_aiohttp``) had replaced httpx's own pool (httpcore over anyio): 993 against
  412 req/s for the pure proxy (``python -m bench.http``, wrk -c32, 2 cores, same run).
- :func:`httpcore_client_factory`: httpx over its own pool, the former transport, kept for
  ``bench.http`` and for the transport tests to compare against.
- :func:`forward` sends one request and reads the whole answer (the gateway filters
  responses, so it does not stream), bounded by ``upstream_timeout_s`` for the whole
  exchange: a refused, reset or garbled connection is :class:`UpstreamDown` (502), a
  timeout :class:`UpstreamTimeout` (504). It never hangs, whatever the transport.
- The clients keep no cookies: one client serves every user, so a ``Set-Cookie`` in one
  user's answer must never go back upstream with another user's request.
- Hop-by-hop headers (RFC 9110 7.6.1, plus any named in ``Connection``) are dropped both
  ways; ``Host`` and lengths are set by the client; the request id and ``X-Forwarded-For``
  / ``-Proto`` / ``-Host`` are set by the gateway (``X-Forwarded-For``: the client's
  address alone, resolved through ``trusted_proxies``; a chain the client sent is
  replaced).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Final

import aiohttp
import httpx
from yarl import URL

from gateway import http1
from gateway.config import Settings

__all__ = [
    "UPSTREAM_IDLE_S",
    "ClientFactory",
    "UpstreamClient",
    "UpstreamDown",
    "UpstreamResponse",
    "UpstreamTimeout",
    "Upstreams",
    "aiohttp_client_factory",
    "default_client_factory",
    "forward",
    "httpcore_client_factory",
    "request_headers",
    "response_headers",
]

HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Set again by httpx or by the gateway, never copied.
_REQUEST_DROP: Final = frozenset(
    {
        "host",
        "content-length",
        "x-request-id",
        "x-purpose",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "forwarded",
    }
)
# The body is read decoded and re-serialised; the gateway adds its own request id.
_RESPONSE_DROP: Final = frozenset(
    {"content-length", "content-encoding", "x-request-id", "date", "server"}
)

UpstreamClient = http1.Http1Pool | httpx.AsyncClient | aiohttp.ClientSession
ClientFactory = Callable[[str, str, Settings], UpstreamClient]


class UpstreamDown(Exception):
    """The upstream could not be reached or broke the exchange (502)."""


class UpstreamTimeout(Exception):
    """The upstream did not answer in time (504)."""


#: How long an idle pooled connection to an upstream is kept: below the services' own
#: keep-alive (uvicorn's ``timeout_keep_alive``, 5 s), so the gateway drops a connection
#: before the service does. At the same length (httpx's 5 s) or longer (aiohttp's 15 s), a
#: request sent just as the service closed the idle connection found it gone: a 502 from
#: an upstream that was up (found by tests/invariants: a POST 5.0 s after the last one).
UPSTREAM_IDLE_S: Final = 4.0


def _limits(settings: Settings) -> httpx.Limits:
    return httpx.Limits(
        max_connections=settings.upstream_max_connections,
        max_keepalive_connections=settings.upstream_max_keepalive,
        keepalive_expiry=UPSTREAM_IDLE_S,
    )


def _timeout(settings: Settings) -> httpx.Timeout:
    return httpx.Timeout(settings.upstream_timeout_s, connect=settings.upstream_connect_timeout_s)


def _no_cookies() -> CookieJar:
    # One client serves every user: a cookie an upstream sets in one user's answer must
    # never go back upstream with another user's request (httpx keeps them by default).
    # The answer still carries its Set-Cookie to its own client.
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def default_client_factory(name: str, base_url: str, settings: Settings) -> UpstreamClient:
    """The gateway's own HTTP/1.1 pool: what production forwards with (module notes)."""
    return http1.Http1Pool(
        base_url,
        max_connections=settings.upstream_max_connections,
        connect_timeout_s=settings.upstream_connect_timeout_s,
        timeout_s=settings.upstream_timeout_s,
        idle_s=UPSTREAM_IDLE_S,
    )


def aiohttp_client_factory(name: str, base_url: str, settings: Settings) -> UpstreamClient:
    """aiohttp's client, used directly: the transport before (module notes)."""
    return aiohttp.ClientSession(
        base_url=None,
        connector=aiohttp.TCPConnector(
            limit=settings.upstream_max_connections, keepalive_timeout=UPSTREAM_IDLE_S
        ),
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(
            total=settings.upstream_timeout_s, connect=settings.upstream_connect_timeout_s
        ),
        trust_env=False,
        auto_decompress=True,
    )


def httpcore_client_factory(name: str, base_url: str, settings: Settings) -> httpx.AsyncClient:
    """httpx over its own pool (httpcore): the former transport, kept for ``bench.http``."""
    return httpx.AsyncClient(
        base_url=base_url,
        cookies=_no_cookies(),
        timeout=_timeout(settings),
        limits=_limits(settings),
        follow_redirects=False,
        trust_env=False,
    )


class Upstreams:
    """The clients, one per upstream, made at start and closed at shutdown."""

    def __init__(self, settings: Settings, factory: ClientFactory) -> None:
        self.timeout_s = settings.upstream_timeout_s
        self.base_urls = {name: url.rstrip("/") for name, url in settings.upstream_urls().items()}
        self.clients = {
            name: factory(name, url, settings) for name, url in settings.upstream_urls().items()
        }

    def client(self, name: str) -> UpstreamClient:
        return self.clients[name]

    async def aclose(self) -> None:
        for client in self.clients.values():
            if isinstance(client, http1.Http1Pool | aiohttp.ClientSession):
                await client.close()
            else:
                await client.aclose()


_REQUEST_DROPPED: Final = HOP_BY_HOP | _REQUEST_DROP
_RESPONSE_DROPPED: Final = HOP_BY_HOP | _RESPONSE_DROP


def _connection_named(headers: Iterable[tuple[str, str]]) -> set[str]:
    named: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            named.update(token.strip().lower() for token in value.split(",") if token.strip())
    return named


def _kept(items: list[tuple[str, str]], dropped: frozenset[str]) -> list[tuple[str, str]]:
    """``items`` without the ``dropped`` names and those their ``Connection`` names (looked
    for only when a ``Connection`` header is there: most messages have none)."""
    kept: list[tuple[str, str]] = []
    connection = False
    for name, value in items:
        lowered = name.lower()
        if lowered in dropped:
            connection = connection or lowered == "connection"
        else:
            kept.append((name, value))
    if not connection:
        return kept
    named = _connection_named(items)
    return [(name, value) for name, value in kept if name.lower() not in named]


def request_headers(
    incoming: Iterable[tuple[str, str]],
    *,
    client_host: str | None,
    scheme: str,
    host: str | None,
    request_id: str | None,
    purpose: str,
) -> list[tuple[str, str]]:
    out = _kept(list(incoming), _REQUEST_DROPPED)
    # Only the client's address, as the gateway's trusted hops resolved it: whatever chain
    # an untrusted client sent is replaced, so a service trusting the gateway reads the
    # client's own address and nothing the client made up.
    if client_host:
        out.append(("X-Forwarded-For", client_host))
    out.append(("X-Forwarded-Proto", scheme))
    if host:
        out.append(("X-Forwarded-Host", host))
    if request_id:
        out.append(("X-Request-ID", request_id))
    out.append(("X-Purpose", purpose))
    return out


def response_headers(upstream: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return _kept(list(upstream), _RESPONSE_DROPPED)


@dataclass(frozen=True)
class UpstreamResponse:
    status_code: int
    headers: list[tuple[str, str]]
    content: bytes
    content_type: str


async def forward(
    upstreams: Upstreams,
    upstream: str,
    *,
    method: str,
    path: str,
    query: bytes,
    headers: list[tuple[str, str]],
    body: bytes,
) -> UpstreamResponse:
    client = upstreams.client(upstream)
    url = path + ("?" + query.decode("latin-1") if query else "")
    try:
        if isinstance(client, http1.Http1Pool):
            # Its one deadline bounds the exchange: no second timer (module notes).
            answer = await client.request(method, url, headers, body)
            content_type = ""
            for name, value in answer.headers:
                if name == "content-type":
                    content_type = value
                    break
            return UpstreamResponse(
                status_code=answer.status,
                headers=response_headers(answer.headers),
                content=answer.body,
                content_type=content_type,
            )
        if isinstance(client, aiohttp.ClientSession):
            # The session's own total timeout bounds the exchange (body included): no
            # second timer per request (with the access event's, timers were ~6 % of the
            # gateway's samples).
            return await _over_aiohttp(
                client, upstreams.base_urls[upstream] + url, method, headers, body
            )
        async with asyncio.timeout(upstreams.timeout_s):  # in-process transports have none
            response = await client.request(method, url, headers=headers, content=body)
    except (TimeoutError, httpx.TimeoutException) as exc:
        if _broken_not_slow(exc):
            raise UpstreamDown(f"{upstream}: {type(exc.__cause__).__name__}") from exc
        raise UpstreamTimeout(upstream) from exc
    except (httpx.HTTPError, aiohttp.ClientError) as exc:  # refused, reset or garbled
        raise UpstreamDown(f"{upstream}: {type(exc).__name__}") from exc
    except OSError as exc:  # an in-process transport may raise the socket error itself
        raise UpstreamDown(f"{upstream}: {type(exc).__name__}") from exc
    return UpstreamResponse(
        status_code=response.status_code,
        headers=response_headers(response.headers.multi_items()),
        content=response.content,
        content_type=response.headers.get("content-type", ""),
    )


async def _over_aiohttp(
    session: aiohttp.ClientSession,
    url: str,
    method: str,
    headers: list[tuple[str, str]],
    body: bytes,
) -> UpstreamResponse:
    # encoded=True: the path goes upstream byte for byte as the client sent it.
    async with session.request(
        method,
        URL(url, encoded=True),
        headers=headers,
        data=body or None,
        allow_redirects=False,
    ) as response:
        content = await response.read()
        raw = [
            (name.decode("latin-1").lower(), value.decode("latin-1"))
            for name, value in response.raw_headers
        ]
        return UpstreamResponse(
            status_code=response.status,
            headers=response_headers(raw),
            content=content,
            content_type=response.headers.get("Content-Type", ""),
        )


def _broken_not_slow(exc: BaseException) -> bool:
    """An httpx timeout made of a connection error that is no timeout (refused, reset,
    closed early): the upstream is down, not slow."""
    cause = exc.__cause__
    return isinstance(cause, aiohttp.ClientError) and not isinstance(cause, TimeoutError)


def as_mapping(headers: Iterable[tuple[str, str]]) -> Mapping[str, str]:
    return {name.lower(): value for name, value in headers}
