"""Handing a package to a recipient over HTTPS, one attempt at a time (the transfers
service retries, with backoff, and records every attempt).

Every attempt of one transfer carries the same ``Idempotency-Key`` (the transfer id), so
when a response is lost and the package is sent again the recipient keeps it once. A 2xx
is delivered; 5xx, 408, 425, 429 and transport errors (connection refused, timeouts, a lost
response) are worth retrying; other answers end the round (they need a person) and the
next round tries again later. Redirects are not followed: a package goes only to the URL
on record. The TLS of each recipient (a private CA to trust, a client certificate for
mutual TLS) comes from the settings (``Settings.delivery_tls_for``); a bad bundle or
certificate file is an attempt that failed (``tls-config``), retried like the others.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

import httpx

from services.transfer.config import DeliveryTls
from services.transfer.transfers.package import MEDIA_TYPE

logger = logging.getLogger("transfer.delivery")

PACKAGE_MEDIA_TYPE: Final = MEDIA_TYPE  # a compact JWE
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
_RETRYABLE_STATUS: Final = frozenset({408, 425, 429})


@dataclass(frozen=True)
class AttemptResult:
    delivered: bool
    retryable: bool
    status_code: int | None = None
    error: str | None = None


class Deliverer(Protocol):
    async def post(
        self, url: str, *, body: bytes, idempotency_key: str, recipient_id: str
    ) -> AttemptResult:
        """One attempt to hand ``body`` to ``recipient_id``'s ``url``."""
        ...


def _system_store(recipient_id: str) -> DeliveryTls:
    return DeliveryTls()


def tls_context(tls: DeliveryTls) -> ssl.SSLContext:
    """Certificates checked against ``ca_bundle`` (else the system store), with the
    client certificate when one is set."""
    context = ssl.create_default_context(cafile=str(tls.ca_bundle) if tls.ca_bundle else None)
    if tls.client_cert is not None:
        context.load_cert_chain(
            str(tls.client_cert), str(tls.client_key) if tls.client_key else None
        )
    return context


@dataclass
class HttpsDeliverer:
    """Posts packages with httpx; ``transport`` is injectable (tests: ``MockTransport``);
    ``tls_for`` names each recipient's TLS settings (one context built per setting)."""

    timeout_s: float = 10.0
    transport: httpx.AsyncBaseTransport | None = None
    tls_for: Callable[[str], DeliveryTls] = _system_store
    _contexts: dict[DeliveryTls, ssl.SSLContext] = field(default_factory=dict, repr=False)

    def _context(self, recipient_id: str) -> ssl.SSLContext:
        tls = self.tls_for(recipient_id)
        if tls not in self._contexts:
            self._contexts[tls] = tls_context(tls)
        return self._contexts[tls]

    async def post(
        self, url: str, *, body: bytes, idempotency_key: str, recipient_id: str
    ) -> AttemptResult:
        try:
            verify = self._context(recipient_id)
        except (OSError, ssl.SSLError) as exc:  # a missing or unreadable PEM file
            logger.error("TLS settings of recipient %s unusable: %s", recipient_id, exc)
            return AttemptResult(
                delivered=False, retryable=True, error=f"tls-config: {type(exc).__name__}"
            )
        try:
            async with httpx.AsyncClient(
                transport=self.transport,
                timeout=self.timeout_s,
                follow_redirects=False,
                verify=verify,
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
