"""The shop's calls to a payment provider's API: create a payment, ask for a refund.

Each request body is JSON signed with the shop's key for that provider
(``kit.payment_signature``: ``Payment-Timestamp``, ``-Nonce``, ``-Signature``, ``-Serial``),
as WeChat Pay v3 signs a merchant's requests. Both calls are idempotent at the provider
(by order number, by refund id), so a retry after a timeout is safe. A provider that is down
or slow is :class:`ProviderUnavailable` (503): the caller's transaction rolls back and
nothing is changed here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx

from kit.errors import DomainError, ServiceUnavailable
from kit.payment_signature import PrivateKey, sign_headers

CREATE_PATH: Final = "/v3/payments"
REFUND_PATH: Final = "/v3/refunds"


class ProviderUnavailable(ServiceUnavailable):
    code, title = "payment-provider-unavailable", "Payment provider unavailable"
    headers = {"Retry-After": "5"}


class ProviderRefused(DomainError):
    status, code, title = 502, "payment-provider-refused", "Payment provider refused"


@dataclass(frozen=True)
class ProviderEndpoint:
    """Where a provider answers and the key the shop signs its requests to it with."""

    provider_id: str
    api_url: str
    shop_key: PrivateKey


class ProviderApi:
    """One pooled HTTP client for every provider (``app.state.payment_api``)."""

    def __init__(self, *, timeout_s: float, transport: httpx.AsyncBaseTransport | None = None):
        self._client = httpx.AsyncClient(timeout=timeout_s, transport=transport)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _post(
        self, endpoint: ProviderEndpoint, path: str, payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json", **sign_headers(endpoint.shop_key, body)}
        url = endpoint.api_url.rstrip("/") + path
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise ProviderUnavailable(
                f"the payment provider {endpoint.provider_id} did not answer; try again"
            ) from exc
        if response.status_code >= 500:
            raise ProviderUnavailable(
                f"the payment provider {endpoint.provider_id} is unavailable; try again"
            )
        if response.status_code >= 400:
            raise ProviderRefused(
                f"the payment provider {endpoint.provider_id} refused the request "
                f"({response.status_code})"
            )
        answer: dict[str, Any] = response.json()
        return answer

    async def create_payment(self, endpoint: ProviderEndpoint, payload: Mapping[str, Any]) -> str:
        """The provider's payment reference (what the app opens the wallet with)."""
        answer = await self._post(endpoint, CREATE_PATH, payload)
        return str(answer["provider_reference"])

    async def request_refund(self, endpoint: ProviderEndpoint, payload: Mapping[str, Any]) -> str:
        """The provider's refund reference; the refund's outcome comes as a notification."""
        answer = await self._post(endpoint, REFUND_PATH, payload)
        return str(answer["refund_reference"])
