"""CORS as a browser enforces it (issue 24 item 7): a real Chromium (Debian's ``chromium``,
driven by Playwright) loads a page from one origin and calls the gateway, on another,
with ``fetch``. A page of an origin in ``GATEWAY_CORS_ALLOW_ORIGINS`` gets its answers,
with credentials, and reads the exposed headers; a page of any other origin gets nothing
(its preflighted request never leaves the browser). Without Chromium the test is skipped,
except in CI (``CI`` set), where it fails: ``.ci/run`` installs it."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from playwright.async_api import Page, async_playwright

from gateway.cors import EXPOSED_HEADERS
from kit.testing import on_loopback_port
from tests.gateway.conftest import fake_orders_app, running_gateway

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

#: The page's script: one fetch, what the page could read of the answer, or the error.
FETCH = """
async ([url, init]) => {
  try {
    const answer = await fetch(url, init);
    return {
      ok: true,
      status: answer.status,
      requestId: answer.headers.get("X-Request-ID"),
      renewal: answer.headers.get("X-Policy-Renewal-Required"),
      body: await answer.text(),
    };
  } catch (error) {
    return {ok: false, error: String(error)};
  }
}
"""


def _browser_or_skip() -> str:
    if CHROMIUM is None:
        message = "Chromium is not installed (Debian: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


def page_app() -> FastAPI:
    app = FastAPI()

    @app.get("/")
    async def page() -> HTMLResponse:
        return HTMLResponse("<!doctype html><title>A shop's web app</title><p>shop</p>")

    return app


@asynccontextmanager
async def page_origin() -> AsyncIterator[str]:
    async with on_loopback_port(page_app()) as port:
        yield f"http://127.0.0.1:{port}"


@asynccontextmanager
async def chromium_page(executable: str, origin: str) -> AsyncIterator[Page]:
    async with async_playwright() as playwright:
        # As root (CI) Chromium runs only without its sandbox.
        browser = await playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox"]
        )
        try:
            page = await browser.new_page()
            page.set_default_timeout(15_000)
            await page.goto(origin + "/")
            yield page
        finally:
            await browser.close()


async def test_a_page_of_an_allowed_origin_calls_the_gateway_and_another_is_blocked(
    tmp_path: Path,
) -> None:
    executable = _browser_or_skip()
    orders = fake_orders_app()
    async with AsyncExitStack() as stack:
        shop = await stack.enter_async_context(page_origin())
        stranger = await stack.enter_async_context(page_origin())
        gw = await stack.enter_async_context(
            running_gateway(
                tmp_path,
                {"orders": orders},
                cors_allow_origins=[shop],
                policy_major_sequence=2,
                policy_major_version="2026.2",
            )
        )
        agreed, agreed_auth = gw.user()
        gw.agreed[agreed] = 2
        _, renewing_auth = gw.user()
        port = await stack.enter_async_context(on_loopback_port(gw.app))
        gateway = f"http://127.0.0.1:{port}"
        order = f"{gateway}/orders/orders/o1"
        goods = f"{gateway}/orders/goods/gds_1"

        def with_token(auth: dict[str, str]) -> dict[str, Any]:
            return {"credentials": "include", "headers": {"Authorization": auth["Authorization"]}}

        async with chromium_page(executable, shop) as page:
            # Authorization makes it a preflighted request: answered, then sent.
            mine = await page.evaluate(FETCH, [order, with_token(agreed_auth)])
            assert mine["ok"], mine
            assert mine["status"] == 200
            assert '"order_id":"o1"' in mine["body"]
            assert mine["requestId"]  # an exposed header the page can read
            renewing = await page.evaluate(FETCH, [order, with_token(renewing_auth)])
            assert renewing["ok"] and renewing["status"] == 428, renewing
            assert renewing["renewal"] == "2026.2"
            public = await page.evaluate(FETCH, [goods, {"credentials": "include"}])
            assert public["ok"] and public["status"] == 200, public
        assert len(orders.state.seen) == 2  # the 428 stayed at the gateway

        async with chromium_page(executable, stranger) as page:
            blocked = await page.evaluate(FETCH, [order, with_token(agreed_auth)])
            assert blocked == {"ok": False, "error": "TypeError: Failed to fetch"}
            # The preflight was refused: the request itself never left the browser.
            assert len(orders.state.seen) == 2
            simple = await page.evaluate(FETCH, [goods, {}])
            # A simple request is sent, but the page may not read the answer.
            assert simple == {"ok": False, "error": "TypeError: Failed to fetch"}
            assert len(orders.state.seen) == 3


async def test_the_preflight_states_origin_credentials_methods_and_exposed_headers(
    tmp_path: Path,
) -> None:
    shop = "https://shop.example"
    async with running_gateway(
        tmp_path, {"orders": fake_orders_app()}, cors_allow_origins=[shop]
    ) as gw:
        preflight = await gw.client.options(
            "/orders/orders",
            headers={
                "Origin": shop,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == shop
        assert preflight.headers["access-control-allow-credentials"] == "true"
        assert "POST" in preflight.headers["access-control-allow-methods"]
        allowed = preflight.headers["access-control-allow-headers"].lower()
        assert {"authorization", "content-type", "idempotency-key"} <= {
            name.strip() for name in allowed.split(",")
        }
        assert preflight.headers["access-control-max-age"] == "600"

        answer = await gw.client.get("/orders/goods/gds_1", headers={"Origin": shop})
        assert answer.headers["access-control-allow-origin"] == shop
        exposed = {h.strip() for h in answer.headers["access-control-expose-headers"].split(",")}
        assert {"X-Policy-Renewal-Required", "Retry-After", "X-Request-ID"} <= exposed
        assert exposed == set(EXPOSED_HEADERS)
        assert "Origin" in answer.headers["vary"]

        other = await gw.client.options(
            "/orders/orders",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert other.status_code == 400
        assert "access-control-allow-origin" not in other.headers
        assert other.headers["content-type"] == "application/problem+json"
        assert other.json()["type"] == "/problems/cors-refused"
        assert other.json()["refused"] == ["origin"]


async def test_without_an_allow_list_no_origin_gets_cors_headers(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, {"orders": fake_orders_app()}) as gw:
        assert gw.settings.cors_allow_origins == []
        preflight = await gw.client.options(
            "/orders/orders",
            headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
        )
        # A plain OPTIONS answer (RFC 9110): nothing a browser would take as a grant.
        assert preflight.status_code == 204
        assert not any(name.startswith("access-control-") for name in preflight.headers)
        answer = await gw.client.get(
            "/orders/goods/gds_1", headers={"Origin": "https://shop.example"}
        )
        assert answer.status_code == 200
        assert not any(name.startswith("access-control-") for name in answer.headers)
