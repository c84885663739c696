"""The service-token provider: client credentials against identity's token endpoint (on
httpx.MockTransport), one fetch shared by concurrent callers, the token kept until shortly
before it expires, and failures that never reveal the secret."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from kit.service_token import ServiceTokenProvider, ServiceTokenUnavailable

TOKEN_URL = "http://identity/oauth2/token"
SECRET = "scs_not-to-be-seen"


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class TokenEndpoint:
    """Identity's token endpoint: answers token-1, token-2, ... valid ``expires_in``."""

    def __init__(self, expires_in: int = 600) -> None:
        self.expires_in = expires_in
        self.forms: list[dict[str, list[str]]] = []
        self.status = 200
        self.body: Any = None
        self.delay_s = 0.0

    async def handler(self, request: httpx.Request) -> httpx.Response:
        self.forms.append(parse_qs(request.content.decode()))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.status != 200:
            return httpx.Response(self.status, json={"error": "invalid_client"})
        body = self.body or {
            "access_token": f"token-{len(self.forms)}",
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": "service:cross_border.transfer",
        }
        return httpx.Response(200, json=body)

    def provider(self, clock: FakeClock, **kwargs: Any) -> ServiceTokenProvider:
        client = httpx.AsyncClient(transport=httpx.MockTransport(self.handler))
        return ServiceTokenProvider(
            TOKEN_URL, "svc_transfer", SECRET, client=client, clock=clock, **kwargs
        )


async def test_the_token_is_fetched_with_client_credentials_and_cached() -> None:
    endpoint, clock = TokenEndpoint(expires_in=600), FakeClock()
    provider = endpoint.provider(clock, scope="service:cross_border.transfer")
    assert await provider() == "token-1"
    assert endpoint.forms == [
        {
            "grant_type": ["client_credentials"],
            "client_id": ["svc_transfer"],
            "client_secret": [SECRET],
            "scope": ["service:cross_border.transfer"],
        }
    ]
    clock.now += 539  # 600 s token, refreshed 60 s before it expires
    assert await provider() == "token-1"
    assert provider.fetches == 1
    clock.now += 1
    assert await provider() == "token-2"
    assert provider.fetches == 2


async def test_a_short_lived_token_is_still_reused_for_half_its_life() -> None:
    endpoint, clock = TokenEndpoint(expires_in=60), FakeClock()
    provider = endpoint.provider(clock, refresh_margin_s=60)
    assert await provider() == "token-1"
    clock.now += 29
    assert await provider() == "token-1"
    clock.now += 1
    assert await provider() == "token-2"


async def test_concurrent_callers_share_one_fetch() -> None:
    endpoint, clock = TokenEndpoint(), FakeClock()
    endpoint.delay_s = 0.05
    provider = endpoint.provider(clock)
    tokens = await asyncio.gather(*(provider() for _ in range(20)))
    assert set(tokens) == {"token-1"} and len(endpoint.forms) == 1


async def test_invalidate_makes_the_next_call_fetch_anew() -> None:
    endpoint, clock = TokenEndpoint(), FakeClock()
    provider = endpoint.provider(clock)
    assert await provider() == "token-1"
    provider.invalidate()
    assert await provider() == "token-2"


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (401, None, "HTTP 401"),
        (200, {"token_type": "Bearer", "expires_in": 600}, "no access token"),
        (200, {"access_token": "t", "token_type": "mac", "expires_in": 600}, "not a bearer"),
        (200, {"access_token": "t", "token_type": "Bearer", "expires_in": 0}, "expires_in"),
        (200, {"access_token": "t", "token_type": "Bearer"}, "expires_in"),
    ],
)
@pytest.mark.obligation("OB-4-7")
async def test_failures_raise_without_the_secret_and_cache_nothing(
    status: int, body: Any, reason: str
) -> None:
    endpoint, clock = TokenEndpoint(), FakeClock()
    endpoint.status, endpoint.body = status, body
    provider = endpoint.provider(clock)
    with pytest.raises(ServiceTokenUnavailable, match=reason) as info:
        await provider()
    assert SECRET not in str(info.value) and SECRET not in repr(provider)
    endpoint.status, endpoint.body = 200, None
    assert await provider() == "token-2"  # nothing was cached; the next call fetches


async def test_an_unreachable_identity_is_unavailable() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = httpx.AsyncClient(transport=httpx.MockTransport(down))
    provider = ServiceTokenProvider(TOKEN_URL, "svc_transfer", SECRET, client=client)
    with pytest.raises(ServiceTokenUnavailable, match="unreachable"):
        await provider()


def test_credentials_are_required() -> None:
    with pytest.raises(ValueError, match="secret"):
        ServiceTokenProvider(TOKEN_URL, "svc_transfer", "")
    with pytest.raises(ValueError, match="client id"):
        ServiceTokenProvider(TOKEN_URL, "", SECRET)
