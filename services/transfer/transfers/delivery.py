"""Handing a package to a recipient over HTTPS, one attempt at a time (the transfers
service retries, with backoff, and records every attempt).

Every attempt of one transfer carries the same ``Idempotency-Key`` (the transfer id), so
when a response is lost and the package is sent again the recipient keeps it once. A 2xx
is delivered; 5xx, 408, 425, 429 and transport errors (connection refused, timeouts, a lost
response) are worth retrying; other answers end the round (they need a person) and the
next round tries again later. Redirects are not followed: a package goes only to the URL
on record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

import httpx

PACKAGE_MEDIA_TYPE: Final = "application/json"
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
_RETRYABLE_STATUS: Final = frozenset({408, 425, 429})


@dataclass(frozen=True)
class AttemptResult:
    delivered: bool
    retryable: bool
    status_code: int | None = None
    error: str | None = None


class Deliverer(Protocol):
    async def post(self, url: str, *, body: bytes, idempotency_key: str) -> AttemptResult:
        """One attempt to hand ``body`` to ``url``."""
        ...


@dataclass(frozen=True)
class HttpsDeliverer:
    """Posts packages with httpx; ``transport`` is injectable (tests: ``MockTransport``)."""

    timeout_s: float = 10.0
    transport: httpx.AsyncBaseTransport | None = None

    async def post(self, url: str, *, body: bytes, idempotency_key: str) -> AttemptResult:
        try:
            async with httpx.AsyncClient(
                transport=self.transport, timeout=self.timeout_s, follow_redirects=False
            ) as client:
                response = await client.post(
                    url,
                    content=body,
                    headers={
                        "Content-Type": PACKAGE_MEDIA_TYPE,
                        IDEMPOTENCY_HEADER: idempotency_key,
                    },
                )
        except httpx.HTTPError as exc:
            return AttemptResult(delivered=False, retryable=True, error=type(exc).__name__)
        status = response.status_code
        if 200 <= status < 300:
            return AttemptResult(delivered=True, retryable=False, status_code=status)
        return AttemptResult(
            delivered=False,
            retryable=status >= 500 or status in _RETRYABLE_STATUS,
            status_code=status,
            error=f"HTTP {status}",
        )
