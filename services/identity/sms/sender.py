"""The SMS gateway, behind one adapter (built as the real-name authority is, see
``services.identity.verification.authority``).

- :class:`SmsSender` is the protocol: ``send_code(phone=, code=, ttl_s=)`` sends one
  sign-in code or raises :class:`~services.identity.verification.authority.ProviderUnavailable`.
- :class:`FileSmsSender` is the stand-in: it appends ``{"phone", "code", "sent_at"}`` as one
  JSON line to a file that only the tests and whoever runs ``make run`` read; no API
  serves it. Refused in production.
- :class:`HttpSmsSender` calls a provider over HTTP(S) with httpx.
- :func:`sms_sender_from_settings` picks one from ``IDENTITY_SMS_*``.

No adapter logs the phone number or the code.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Protocol

import httpx

from kit.models import utcnow
from kit.settings import REPO_ROOT
from services.identity.config import Settings
from services.identity.verification.authority import ProviderUnavailable

__all__ = ["FileSmsSender", "HttpSmsSender", "SmsSender", "sms_sender_from_settings"]

logger = logging.getLogger("services.identity.sms.sender")
TEMPLATE = "sign_in_code"


class SmsSender(Protocol):
    async def send_code(self, *, phone: str, code: str, ttl_s: int) -> None:
        """Send ``code`` (valid ``ttl_s`` seconds) to the mainland mobile ``phone``."""
        ...


class FileSmsSender:
    """The stand-in SMS gateway: one JSON line per message in ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"FileSmsSender(path={str(self.path)!r})"

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as outbox:
            outbox.write(line + "\n")

    async def send_code(self, *, phone: str, code: str, ttl_s: int) -> None:
        line = json.dumps({"phone": phone, "code": code, "sent_at": utcnow().isoformat()})
        await asyncio.to_thread(self._append, line)


class HttpSmsSender:
    """A provider reached over HTTP(S): ``POST url`` with HTTP basic auth and the JSON body
    ``{"phone", "template": "sign_in_code", "params": {"code", "minutes"}}``; any 2xx is
    sent. Anything else, a timeout or a connection error is :class:`ProviderUnavailable`
    (the caller's send is not counted: nothing is committed). Logs carry status codes and
    error types only."""

    def __init__(
        self,
        url: str,
        *,
        client_id: str,
        client_secret: str,
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not url:
            raise ValueError("the SMS provider URL is required")
        self.url = url
        self.timeout_s = timeout_s
        self._auth = httpx.BasicAuth(client_id, client_secret)
        self._transport = transport

    def __repr__(self) -> str:  # never the client secret
        return f"HttpSmsSender(url={self.url!r})"

    async def send_code(self, *, phone: str, code: str, ttl_s: int) -> None:
        body = {
            "phone": phone,
            "template": TEMPLATE,
            "params": {"code": code, "minutes": str(max(1, ttl_s // 60))},
        }
        async with httpx.AsyncClient(
            transport=self._transport, timeout=self.timeout_s, auth=self._auth
        ) as client:
            try:
                response = await client.post(self.url, json=body)
            except httpx.TransportError as exc:
                logger.warning("SMS provider call failed: %s", type(exc).__name__)
                raise ProviderUnavailable("the SMS provider did not answer") from exc
        if not response.is_success:
            logger.warning("SMS provider answered %d", response.status_code)
            raise ProviderUnavailable("the SMS provider refused the message")


def sms_sender_from_settings(settings: Settings) -> SmsSender:
    """The adapter ``IDENTITY_SMS_ADAPTER`` names; the file stand-in never serves production."""
    if settings.sms_adapter == "http":
        return HttpSmsSender(
            settings.sms_url,
            client_id=settings.sms_client_id,
            client_secret=settings.sms_client_secret.get_secret_value(),
            timeout_s=settings.sms_timeout_s,
        )
    if settings.environment == "production":
        raise ValueError(
            "the stand-in SMS gateway cannot serve production: set IDENTITY_SMS_ADAPTER=http "
            "and IDENTITY_SMS_URL"
        )
    path = Path(settings.sms_file)
    return FileSmsSender(path if path.is_absolute() else REPO_ROOT / path)
