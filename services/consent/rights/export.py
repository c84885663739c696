"""Gathering an access export over HTTP: ``GET <service_url>/rights/export/{subject}`` on
every participant, in parallel, under the purpose ``rights.access``.

The :class:`RightsExporter` takes its ``httpx.AsyncClient`` and a ``token_provider`` from
outside: it mints no token itself, and the user's own token is never forwarded (a service
answers the privacy center, not the user). Each service's failure (no URL, unreachable,
timed out, non-200, too large, not JSON) is recorded in the document as that service's
error; one failing service never fails the whole export. Redirects are not followed, so the
token never travels to another host. Errors name the failure only: a response body is never
copied into the document.

Wiring: the app sets ``app.state.rights_exporter`` at start (``services.consent.main``)
when ``identity_token_url``, ``service_client_id`` and ``service_client_secret`` are set,
with a :class:`~kit.service_token.ServiceTokenProvider` for ``service:rights.access``, and
closes its client at shutdown. Without them it stays unset and
``GET /rights-requests/{id}/export`` answers 503 and says so.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

import httpx

from kit.errors import DomainError, ServiceUnavailable
from services.consent.rights.schemas import (
    ExportDocument,
    ServiceExport,
    ServiceExportError,
    ServiceExportOk,
)

logger = logging.getLogger("services.consent.rights.export")

TokenProvider = Callable[[], Awaitable[str]]
EXPORT_PATH = "/rights/export/{subject}"
EXPORT_PURPOSE = "rights.access"
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MAX_BYTES = 5 * 1024 * 1024


class ExportNotConfigured(ServiceUnavailable):
    code, title = "export-not-configured", "Export not available"


@dataclass(frozen=True)
class RightsExporter:
    """Fetches each participant's export for one subject."""

    client: httpx.AsyncClient
    token_provider: TokenProvider
    service_urls: Mapping[str, str]
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_bytes: int = DEFAULT_MAX_BYTES

    async def gather(
        self, *, subject: str, services: Iterable[str], generated_at: datetime
    ) -> ExportDocument:
        names = list(dict.fromkeys(services))
        try:
            token = await self.token_provider()
        except Exception as exc:
            logger.warning("no service token for the export: %s", type(exc).__name__)
            failed: ServiceExport = ServiceExportError(error="no service token available")
            return ExportDocument(
                subject=subject,
                generated_at=generated_at,
                services=dict.fromkeys(names, failed),
            )
        parts = await asyncio.gather(
            *(self._fetch(service, subject=subject, token=token) for service in names)
        )
        return ExportDocument(
            subject=subject,
            generated_at=generated_at,
            services=dict(zip(names, parts, strict=True)),
        )

    async def _fetch(self, service: str, *, subject: str, token: str) -> ServiceExport:
        base = self.service_urls.get(service)
        if not base:
            return ServiceExportError(error="no URL configured for this service")
        url = base.rstrip("/") + EXPORT_PATH.format(subject=quote(subject, safe=""))
        # The purpose (rights.access) travels in the service token, not in a header.
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        try:
            response = await self.client.get(
                url, headers=headers, timeout=self.timeout_s, follow_redirects=False
            )
        except httpx.TimeoutException:
            return self._error(service, f"timed out after {self.timeout_s:g}s")
        except httpx.HTTPError as exc:
            return self._error(service, f"unreachable ({type(exc).__name__})")
        if response.status_code != 200:
            return self._error(service, f"answered HTTP {response.status_code}")
        if len(response.content) > self.max_bytes:
            return self._error(service, f"answer larger than {self.max_bytes} bytes")
        try:
            return ServiceExportOk(data=response.json())
        except ValueError:
            return self._error(service, "answer is not JSON")

    @staticmethod
    def _error(service: str, error: str) -> ServiceExportError:
        logger.warning("rights export from %s failed: %s", service, error)
        return ServiceExportError(error=error)


def new_rights_exporter(
    *,
    service_urls: Mapping[str, str],
    token_provider: TokenProvider,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> RightsExporter:
    """An exporter with its own client (the caller closes ``exporter.client``)."""
    return RightsExporter(
        client=httpx.AsyncClient(timeout=timeout_s, follow_redirects=False),
        token_provider=token_provider,
        service_urls=service_urls,
        timeout_s=timeout_s,
    )


class DestinationUnreachable(DomainError):
    status, code, title = 502, "portability-destination-failed", "Destination did not take the copy"


async def deliver_copy(
    client: httpx.AsyncClient, *, url: str, body: bytes, content_type: str, timeout_s: float
) -> None:
    """POST a portability copy to the destination the user named (no redirects followed,
    so the copy goes to that URL only); :class:`DestinationUnreachable` unless it answers
    2xx. The error names the failure, never the copy."""
    try:
        response = await client.post(
            url,
            content=body,
            headers={"Content-Type": content_type},
            timeout=timeout_s,
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        raise DestinationUnreachable(
            f"the destination could not be reached ({type(exc).__name__})"
        ) from None
    if not 200 <= response.status_code < 300:
        raise DestinationUnreachable(f"the destination answered HTTP {response.status_code}")
