"""The privacy center web app (``/privacy/`` on the gateway) in a real browser: Debian's
Chromium, headless, driven by Playwright, against the running suite (:mod:`tests.e2e.suite`).
A person signs in with the keyboard, grants a consent, reads the ledger, switches to
English, requests an export and downloads it, and requests deletion. Each page is
photographed at phone and desktop width into ``.run/screenshots/`` (CI keeps them as
artifacts). The pages are checked with axe-core (``.ci/run`` installs it from npm into
``.run/node``): no serious or critical violation.

Without Chromium the tests are skipped, except in CI (``CI`` set), where they fail:
``.ci/run`` installs it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import pytest
from playwright.async_api import Page, async_playwright, expect

from kit.settings import REPO_ROOT
from tests.e2e.suite import Person, Suite

CHROMIUM: Final = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS: Final = REPO_ROOT / ".run" / "screenshots"
AXE: Final = REPO_ROOT / ".run" / "node" / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS: Final = {"phone": (390, 844), "desktop": (1280, 900)}


def _needed(path: str | None, message: str) -> str:
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@asynccontextmanager
async def browser_page(base_url: str, *, locale: str) -> AsyncIterator[Page]:
    executable = _needed(CHROMIUM, "Chromium is not installed (Debian: apt-get install chromium)")
    async with async_playwright() as playwright:
        # As root (CI) Chromium runs only without its sandbox.
        browser = await playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox"]
        )
        try:
            # The pages forbid scripts (CSP); axe-core is injected past it, as a tester's is.
            context = await browser.new_context(
                base_url=base_url, locale=locale, accept_downloads=True, bypass_csp=True
            )
            page = await context.new_page()
            page.set_default_timeout(15_000)
            yield page
        finally:
            await browser.close()


async def photograph(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width_name, (width, height) in WIDTHS.items():
        await page.set_viewport_size({"width": width, "height": height})
        await page.screenshot(path=SCREENSHOTS / f"privacy-{name}-{width_name}.png", full_page=True)
        if width_name == "phone":
            # Readable on a phone: nothing wider than the screen but the ledger's own scroller.
            overflow = await page.evaluate("document.documentElement.scrollWidth")
            assert overflow <= width, f"{name} is {overflow}px wide on a {width}px phone"


async def sign_in_by_keyboard(page: Page, person: Person) -> None:
    await page.goto("/privacy/")
    await page.get_by_label("手机号").focus()
    await page.keyboard.type(person.phone)
    await page.keyboard.press("Tab")
    await page.keyboard.type(person.password)
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/privacy/consents")


async def download_json(page: Page, link: str, into: Path) -> dict[str, Any]:
    async with page.expect_download() as downloading:
        await page.get_by_role("link", name=link).click()
    download = await downloading.value
    saved = into / download.suggested_filename
    await download.save_as(saved)
    document: dict[str, Any] = json.loads(saved.read_text(encoding="utf-8"))
    return document


async def test_a_person_grants_consent_reads_the_ledger_downloads_an_export_and_asks_deletion(
    suite: Suite, tmp_path: Path
) -> None:
    person = Person.new()
    _, headers = await suite.register(person)
    async with browser_page(suite.gateway_url, locale="zh-CN") as page:
        # Chinese first, for a browser that prefers it.
        await page.goto("/privacy/")
        assert await page.get_attribute("html", "lang") == "zh-CN"
        assert await page.get_by_role("heading", level=1).inner_text() == "登录"
        await photograph(page, "sign-in")
        await sign_in_by_keyboard(page, person)

        # Consents: each purpose with what it means; granting one is recorded.
        price_drop = page.locator(
            "section", has=page.locator("code", has_text="marketing.price_drop")
        )
        state = price_drop.locator("[data-purpose-state]")
        assert await state.inner_text() == "未同意"
        await price_drop.get_by_role("button", name="同意", exact=True).click()
        await page.wait_for_url("**/privacy/consents?done=consent")
        assert await state.inner_text() == "已同意"
        assert await price_drop.get_by_role("button").inner_text() == "撤回"
        mine = await suite.call("GET", "/consent/consents/me", headers=headers)
        assert {c["purpose"]: c["granted"] for c in mine["consents"]}["marketing.price_drop"]
        await photograph(page, "consents")

        # The ledger: what the privacy center recorded, the chain verified.
        ledger = await suite.eventually(
            "GET", "/consent/ledger/me?limit=100", lambda body: body["total"] > 0, headers=headers
        )
        await page.get_by_role("link", name="处理记录").click()
        await page.wait_for_url("**/privacy/ledger")
        assert await page.locator("tr.ledger-entry").count() == len(ledger["entries"])
        assert await page.locator("[data-chain-valid]").get_attribute("data-chain-valid") == "true"
        await photograph(page, "ledger")

        # The switch: English, kept for the next pages.
        await page.get_by_role("link", name="English").click()
        await expect(page.locator("html")).to_have_attribute("lang", "en")
        assert page.url.endswith("/privacy/ledger")
        assert await page.get_by_role("heading", level=1).inner_text() == "Processing ledger"

        # An access request, answered by every service, then its export downloaded.
        await page.get_by_role("link", name="Rights requests").click()
        await page.get_by_role("button", name="Request an export of my data").click()
        await page.wait_for_url("**/privacy/requests?done=access")
        assert await page.get_by_role("status").inner_text() == "Your export request is filed."
        await suite.eventually(
            "GET",
            "/consent/rights-requests/me",
            lambda body: [r["status"] for r in body if r["kind"] == "access"] == ["completed"],
            headers=headers,
            within_s=60,
        )
        await page.reload()
        export = await download_json(page, "Download the export", tmp_path)
        assert {name: part["status"] for name, part in export["services"].items()} == {
            "consent": "ok",
            "identity": "ok",
            "orders": "ok",
            "transfer": "ok",
        }
        await photograph(page, "requests")

        # Deletion: explained (legal holds) and confirmed before it is filed.
        explained = await page.locator("#deletion-explained").inner_text()
        assert "only stored" in explained and "Tax Collection Law" in explained
        await page.get_by_label("I understand deletion cannot be undone").check()
        await page.get_by_role("button", name="Request deletion of my account and data").click()
        await page.wait_for_url("**/privacy/requests?done=deletion")
        assert await page.get_by_role("status").inner_text() == "Your deletion request is filed."
        kinds = await page.locator("section.rights-request").evaluate_all(
            "sections => sections.map(s => s.dataset.kind)"
        )
        assert sorted(kinds) == ["access", "deletion"]
        await photograph(page, "deletion-filed")


async def serious_violations(page: Page) -> list[str]:
    """axe-core's serious and critical violations of the page (rule id and the nodes)."""
    await page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = await page.evaluate("axe.run(document)")
    return [
        f"{v['id']}: {[node['target'] for node in v['nodes']]}"
        for v in result["violations"]
        if v["impact"] in {"serious", "critical"}
    ]


async def test_every_page_of_the_privacy_center_passes_axe_in_both_languages(
    suite: Suite,
) -> None:
    _needed(str(AXE) if AXE.exists() else None, "axe-core is not installed (see .ci/run)")
    person = Person.new()
    _, headers = await suite.register(person)
    await suite.call(
        "POST", "/consent/rights-requests", headers=headers, json={"kind": "access"}, expect=202
    )
    async with browser_page(suite.gateway_url, locale="zh-CN") as page:
        await page.goto("/privacy/")
        found = {"zh /privacy/": await serious_violations(page)}
        await sign_in_by_keyboard(page, person)
        for language in ("zh", "en"):
            await page.goto(f"/privacy/language/{language}?next=/privacy/consents")
            for path in ("/privacy/consents", "/privacy/ledger", "/privacy/requests"):
                await page.goto(path)
                found[f"{language} {path}"] = await serious_violations(page)
    assert found == {name: [] for name in found}
