"""Fetching the necessary order fields from the orders service, under the purpose
``cross_border.transfer`` (design principle 1: a service that needs another's data asks
for it over HTTP, under a purpose, and that read is recorded there).

:class:`OrderFetcher` is the interface the transfers use (tests give a stub);
:class:`HttpOrderFetcher` implements it against the orders route::

    GET <orders_url>/transfer/orders/{order_id}?subject=<account id>&fields=a,b,c
    Authorization: Bearer <service token whose purpose is cross_border.transfer>

    200 {"order_id": "...", "subject": "...", "fields": {"consignee_name": "张*", ...}}
    404 / 410   no such order for that subject, or its data was erased

The route belongs to the orders service (``services/orders/transfer``): it answers only
the fields named, only those ``cross_border.transfer`` may see, masked as the catalogue
says, and only for an order of that subject, to a service token (kind ``service``, scope
``service:cross_border.transfer``) from ``kit.service_token.ServiceTokenProvider``. When
orders answers 401 the provider's cached token is dropped, so the next try gets a new
one. The transfer service masks and filters again anyway before anything leaves (defence
in depth). Redirects are not followed, so the token never travels to another host; a
response body is never logged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from kit.service_token import ServiceTokenUnavailable

TRANSFER_ORDER_PATH: Final = "/transfer/orders/{order_id}"
MAX_BODY_BYTES: Final = 64 * 1024

TokenProvider = Callable[[], Awaitable[str]]


class OrderUnavailable(Exception):
    """The order is gone for good (unknown, not the subject's, or erased): refuse."""


class OrderFetchFailed(Exception):
    """The orders service could not answer now: try again later."""


class OrderFetcher(Protocol):
    async def fetch(
        self, *, order_id: str, subject: str, fields: Sequence[str]
    ) -> Mapping[str, Any]:
        """The named fields of ``subject``'s order, as ``cross_border.transfer`` sees them."""
        ...


def static_token_provider(token: SecretStr) -> TokenProvider:
    """A provider for a configured token; none configured: every fetch waits."""

    async def provide() -> str:
        value = token.get_secret_value()
        if not value:
            raise OrderFetchFailed("no service token for cross_border.transfer is configured")
        return value

    return provide


@dataclass(frozen=True)
class HttpOrderFetcher:
    base_url: str
    token_provider: TokenProvider
    timeout_s: float = 10.0
    transport: httpx.AsyncBaseTransport | None = None

    async def fetch(
        self, *, order_id: str, subject: str, fields: Sequence[str]
    ) -> Mapping[str, Any]:
        try:
            token = await self.token_provider()
        except ServiceTokenUnavailable as exc:
            raise OrderFetchFailed(f"no service token: {exc}") from exc
        url = self.base_url.rstrip("/") + TRANSFER_ORDER_PATH.format(
            order_id=quote(order_id, safe="")
        )
        try:
            async with httpx.AsyncClient(
                transport=self.transport, timeout=self.timeout_s, follow_redirects=False
            ) as client:
                response = await client.get(
                    url,
                    params={"subject": subject, "fields": ",".join(fields)},
                    headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                )
        except httpx.HTTPError as exc:
            raise OrderFetchFailed(f"orders unreachable ({type(exc).__name__})") from exc
        if response.status_code == 401:
            invalidate = getattr(self.token_provider, "invalidate", None)
            if callable(invalidate):
                invalidate()
        if response.status_code in (404, 410):
            raise OrderUnavailable(f"orders answered HTTP {response.status_code}")
        if response.status_code != 200:
            raise OrderFetchFailed(f"orders answered HTTP {response.status_code}")
        if len(response.content) > MAX_BODY_BYTES:
            raise OrderFetchFailed("orders' answer is too large")
        try:
            body = response.json()
        except ValueError as exc:
            raise OrderFetchFailed("orders' answer is not JSON") from exc
        if (
            not isinstance(body, dict)
            or body.get("order_id") != order_id
            or body.get("subject") != subject
            or not isinstance(body.get("fields"), dict)
        ):
            raise OrderFetchFailed("orders' answer is not for this order and subject")
        found: dict[str, Any] = body["fields"]
        return found
