"""The privacy center's calls to the gateway: the pages' one way to the services.

Each call goes through the gateway app itself (``httpx.ASGITransport`` on the running
app), so the route table, token checks, consent and field filtering apply exactly as to
any other client; the browser's address is the caller's address, so the gateway's limits
and identity's login throttling count the person, not the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import Request

__all__ = ["GatewayAnswer", "call_gateway"]

#: The cookie holding the access token of a signed-in person.
SESSION_COOKIE = "privacy_session"


@dataclass(frozen=True)
class GatewayAnswer:
    status: int
    body: Any
    content: bytes
    headers: httpx.Headers

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def problem_detail(self) -> str:
        """What a problem answer says, for the page (its detail, else its title)."""
        if isinstance(self.body, dict):
            return str(self.body.get("detail") or self.body.get("title") or self.status)
        return str(self.status)


async def call_gateway(
    request: Request,
    method: str,
    path: str,
    *,
    json: Any = None,
    params: dict[str, str] | None = None,
    token: str | None = None,
) -> GatewayAnswer:
    """Call ``path`` of the gateway serving ``request`` as the signed-in person."""
    client = request.client
    transport = httpx.ASGITransport(
        app=request.app, client=(client.host, client.port) if client else ("127.0.0.1", 0)
    )
    headers = {"Accept-Language": request.headers.get("accept-language", "")}
    if token is None:
        token = request.cookies.get(SESSION_COOKIE)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    base = f"{request.url.scheme}://{request.url.netloc}"
    async with httpx.AsyncClient(transport=transport, base_url=base) as http:
        answer = await http.request(method, path, json=json, params=params, headers=headers)
    try:
        body: Any = answer.json()
    except ValueError:
        body = None
    return GatewayAnswer(answer.status_code, body, answer.content, answer.headers)
