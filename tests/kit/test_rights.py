"""The participant side of a correction (OB-R-1): ``kit.rights.CorrectionsFetcher`` reads a
service's part from the privacy center with a service token, tells "none for you" (404)
from "cannot ask now" (retried, then ``CorrectionsUnavailable``), never follows a redirect
and never puts the token or a body in its error."""

from __future__ import annotations

import httpx
import pytest

from kit.rights import CorrectionsFetcher, CorrectionsUnavailable

TOKEN = "service-token-value"
PART = {"order_id": "ord_abc", "consignee_name": "王小明"}


def fetcher(handler: httpx.MockTransport, *, token_fails: bool = False) -> CorrectionsFetcher:
    async def token() -> str:
        if token_fails:
            raise RuntimeError("identity down")
        return TOKEN

    async def no_sleep(_: float) -> None:
        return None

    return CorrectionsFetcher(
        privacy_center_url="http://consent.internal/",
        token_provider=token,
        client=httpx.AsyncClient(transport=handler),
        sleep=no_sleep,
    )


@pytest.mark.obligation("OB-R-1")
async def test_the_part_is_read_with_the_service_token() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json={"request_id": "rr_x", "service": "orders", "corrections": PART}
        )

    part = await fetcher(httpx.MockTransport(answer)).fetch(request_id="rr_x", service="orders")
    assert part == PART
    (request,) = seen
    assert request.url == "http://consent.internal/rights-requests/rr_x/corrections/orders"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.obligation("OB-R-1")
async def test_none_for_this_service_is_none() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(404, json={}))
    assert await fetcher(transport).fetch(request_id="rr_x", service="orders") is None


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(503, text=f"down {TOKEN}"),
        httpx.Response(302, headers={"Location": "http://elsewhere/"}),
        httpx.Response(
            200, json={"request_id": "rr_other", "service": "orders", "corrections": {}}
        ),
        httpx.Response(200, text="not json"),
    ],
)
@pytest.mark.obligation("OB-R-1")
async def test_failures_are_retried_then_reported_without_token_or_body(
    response: httpx.Response,
) -> None:
    calls: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return response

    with pytest.raises(CorrectionsUnavailable) as raised:
        await fetcher(httpx.MockTransport(answer)).fetch(request_id="rr_x", service="orders")
    assert TOKEN not in str(raised.value) and "down" not in str(raised.value)
    if response.status_code != 200:
        assert len(calls) == 3  # retried
    assert all(call.url.host == "consent.internal" for call in calls)


@pytest.mark.obligation("OB-R-1")
async def test_no_token_is_unavailable() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    with pytest.raises(CorrectionsUnavailable, match="no service token"):
        await fetcher(transport, token_fails=True).fetch(request_id="rr_x", service="orders")
