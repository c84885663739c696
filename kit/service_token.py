"""Service tokens for calls from one service to another, under a purpose.

:class:`ServiceTokenProvider` gets a token from identity's ``/oauth2/token`` with the
client-credentials grant (``client_secret_post``) for an internal service client
(``svc_...``, made by ``python -m services.identity create-service-client``), and keeps it
until shortly before it expires. It is the ``token_provider`` the callers take
(``async () -> str``)::

    provider = ServiceTokenProvider(
        "http://identity/oauth2/token", "svc_...", secret, scope="service:cross_border.transfer"
    )
    token = await provider()

With no ``client`` given, each fetch uses a short-lived
``httpx.AsyncClient`` of its own, so there is nothing to close. Concurrent callers share
one fetch (a lock, checked again inside). Redirects are not
followed, so the secret never travels to another host; neither the secret, the token nor a
response body is ever logged or put in an error. A failure raises
:class:`ServiceTokenUnavailable`, which callers treat as "try again later".
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Final

import httpx
from pydantic import SecretStr

logger = logging.getLogger("kit.service_token")

MAX_BODY_BYTES: Final = 64 * 1024


class ServiceTokenUnavailable(Exception):
    """No service token could be had now (identity unreachable, refused, or answered
    something that is not a token)."""


class ServiceTokenProvider:
    """A cached client-credentials token; refetched ``refresh_margin_s`` before it expires
    (at most half its lifetime early, so short-lived tokens are still reused)."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str | SecretStr,
        *,
        client: httpx.AsyncClient | None = None,
        scope: str | None = None,
        refresh_margin_s: float = 60.0,
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not token_url or not client_id:
            raise ValueError("a token URL and a client id are required")
        secret = client_secret if isinstance(client_secret, SecretStr) else SecretStr(client_secret)
        if not secret.get_secret_value():
            raise ValueError("a client secret is required")
        self.token_url = token_url
        self.client_id = client_id
        self._secret = secret
        self.scope = scope
        self.refresh_margin_s = refresh_margin_s
        self._client = client
        self._timeout_s = timeout_s
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = -math.inf
        self._lock = asyncio.Lock()
        self.fetches = 0

    def __repr__(self) -> str:
        return f"ServiceTokenProvider(token_url={self.token_url!r}, client_id={self.client_id!r})"

    def _cached(self) -> str | None:
        if self._token is not None and self._clock() < self._refresh_at:
            return self._token
        return None

    async def __call__(self) -> str:
        token = self._cached()
        if token is not None:
            return token
        async with self._lock:
            token = self._cached()
            if token is not None:
                return token
            return await self._fetch()

    def invalidate(self) -> None:
        """Forget the cached token (a callee refused it): the next call fetches anew."""
        self._token, self._refresh_at = None, -math.inf

    async def _fetch(self) -> str:
        self.fetches += 1
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._secret.get_secret_value(),
        }
        if self.scope:
            form["scope"] = self.scope
        started = self._clock()
        try:
            if self._client is not None:
                response = await self._post(self._client, form)
            else:  # a token lives minutes: a client per fetch leaves nothing to close
                async with httpx.AsyncClient(follow_redirects=False) as client:
                    response = await self._post(client, form)
        except httpx.HTTPError as exc:
            logger.warning("fetching a service token failed: %s", type(exc).__name__)
            raise ServiceTokenUnavailable(f"identity unreachable ({type(exc).__name__})") from None
        if response.status_code != 200:
            logger.warning("identity refused a service token: HTTP %s", response.status_code)
            raise ServiceTokenUnavailable(f"identity answered HTTP {response.status_code}")
        if len(response.content) > MAX_BODY_BYTES:
            raise ServiceTokenUnavailable("identity's answer is too large")
        try:
            body = response.json()
        except ValueError:
            raise ServiceTokenUnavailable("identity's answer is not JSON") from None
        token = body.get("access_token") if isinstance(body, dict) else None
        expires_in = body.get("expires_in") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ServiceTokenUnavailable("identity's answer holds no access token")
        if str(body.get("token_type", "")).lower() != "bearer":
            raise ServiceTokenUnavailable("identity's answer is not a bearer token")
        if isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in <= 0:
            raise ServiceTokenUnavailable("identity's answer has no valid expires_in")
        margin = min(self.refresh_margin_s, expires_in / 2)
        # Counted from before the request: the token cannot outlive what identity granted.
        self._token, self._refresh_at = token, started + expires_in - margin
        return token

    async def _post(self, client: httpx.AsyncClient, form: dict[str, str]) -> httpx.Response:
        return await client.post(
            self.token_url,
            data=form,
            headers={"Accept": "application/json"},
            timeout=self._timeout_s,
            follow_redirects=False,
        )
