# ruff: noqa: RUF001  (Chinese text uses its own full-width punctuation)
"""The privacy center web app (``/privacy/`` on the gateway) in a real browser: Debian's
Chromium, headless, driven by Playwright, against the running suite (:mod:`tests.e2e.suite`).
A person signs in with the keyboard, grants a consent, reads the ledger, switches to
English, requests an export and downloads it, and requests deletion; another sees the
overseas recipient waiting for their data, grants that recipient's cross-border consent (the
transfer then goes), withdraws it, and reads the policy's versions and a diff; another
corrects an order and withdraws every consent, following each service's answer; another
filters the ledger by purpose and days and pages through it. A form posted without this
session's anti-forgery token changes nothing, and the cookies are HttpOnly and
SameSite=Strict (Secure over HTTPS: tests/gateway/test_privacy_web_cookies.py). Each page is
photographed at phone and desktop width into ``.run/screenshots/`` (CI keeps them as
artifacts). The pages are checked with axe-core (``.ci/run`` installs it from npm into
``.run/node``): no serious or critical violation.

Without Chromium the tests are skipped, except in CI (``CI`` set), where they fail:
``.ci/run`` installs it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from playwright.async_api import Locator, Page, async_playwright, expect

from gateway.privacy_web.router import LEDGER_PAGE, NOTICES_PAGE
from kit.catalogue import default_catalogue
from kit.clock import CHINA_TZ, china_today
from kit.models import utcnow
from kit.settings import REPO_ROOT
from tests.e2e.conftest import Received
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
        # What the purpose means, in the reader's language (the catalogue's description_zh).
        assert (
            await price_drop.get_by_role("heading").inner_text() == "购物车内商品的降价和优惠提醒。"
        )
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
        await page.get_by_role("link", name="My consents").click()
        assert await price_drop.get_by_role("heading").inner_text() == (
            "Price-drop and discount reminders for goods in the cart."
        )

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
            for path in (
                "/privacy/consents",
                "/privacy/ledger",
                "/privacy/ledger?purpose=rights.access&offset=0",
                "/privacy/requests",
                "/privacy/overseas",  # nothing sent abroad yet
                "/privacy/notices",  # none yet
                "/privacy/policy",
            ):
                await page.goto(path)
                found[f"{language} {path}"] = await serious_violations(page)
    assert found == {name: [] for name in found}


def _recipient_body() -> dict[str, Any]:
    """An overseas recipient as the privacy officer registers it (in Chinese, as the
    disclosure a person here reads)."""
    today = china_today()
    return {
        "legal_name": f"海洋物流株式会社 {secrets.token_hex(3)}",
        "contact": "个人信息保护负责人，dpo@kaiyo-logistics.example",
        "country_region": "日本",
        "purpose": "向买家配送跨境订单的商品",
        "processing_method": "在日本加密存储，送达后 90 天删除",
        "data_categories": ["user.contact.address.region", "user.name"],
        "how_to_exercise_rights": "通过隐私中心提出，注明运单号",
        "dpa_reference": "DPA-2026-031",
        "public_key_pem": x25519.X25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
        "delivery": "kafka",
        "legal_basis": {
            "kind": "standard_contract",
            "reference": "SC-FILING-2026-0107",
            "decided_on": str(today - timedelta(days=30)),
            "review_due": str(today + timedelta(days=365)),
        },
        "assessment": {"assessed_on": str(today - timedelta(days=10)), "result": "passed"},
    }


def china_time(value: str) -> str:
    return datetime.fromisoformat(value).astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M")


async def _a_transfer_waits_for_consent(
    suite: Suite, person: Person, account_id: str, headers: dict[str, str]
) -> dict[str, Any]:
    """A recipient registered and one of the person's orders asked to go to it: the
    transfer waits for the person's separate consent. The recipient."""
    recipient: dict[str, Any] = await suite.call(
        "POST", "/transfer/recipients", headers=suite.admin, json=_recipient_body(), expect=201
    )
    order_id = await suite.place_order(person, headers, name="Oolong")
    waiting = await suite.call(
        "POST",
        "/transfer/transfers",
        headers=suite.admin,
        json={
            "subject": account_id,
            "order_id": order_id,
            "recipient_id": recipient["id"],
            "categories": ["user.contact.address.region", "user.name"],
            "contract_necessary": True,
        },
        expect=202,
    )
    assert waiting["status"] == "awaiting_consent"
    return recipient


async def _cross_border_consent(suite: Suite, headers: dict[str, str], key: str) -> bool | None:
    """The consent ``key`` in force: granted, withdrawn, or None (never decided)."""
    mine = await suite.call("GET", "/consent/consents/me", headers=headers)
    granted: bool | None = {c["key"]: c["granted"] for c in mine["consents"]}.get(key)
    return granted


async def _the_receipt_holds_the_disclosure(
    suite: Suite, headers: dict[str, str], recipient_id: str, section: Locator
) -> None:
    """The newest consent receipt is the grant to ``recipient_id`` and holds the disclosure
    the page showed, word for word, with its types of data as the page's ``section`` names
    them (in Chinese, the catalogue's name_zh)."""
    disclosure = await suite.call(
        "GET", f"/transfer/recipients/{recipient_id}/disclosure", headers=headers
    )
    [receipt, *_] = await suite.call("GET", "/consent/consents/me/receipts", headers=headers)
    assert receipt["recipient_id"] == recipient_id and receipt["granted"] is True
    assert receipt["shown"]["recipient"] == disclosure
    shown = await section.locator("dl li").all_inner_texts()
    assert receipt["shown"]["data_types"] == shown == ["所在地区", "姓名"]


async def test_a_person_sees_their_overseas_recipient_and_consents_to_it_on_its_own(
    suite: Suite,
) -> None:
    _needed(str(AXE) if AXE.exists() else None, "axe-core is not installed (see .ci/run)")
    person = Person.new()
    account_id, headers = await suite.register(person)
    recipient = await _a_transfer_waits_for_consent(suite, person, account_id, headers)
    key = f"cross_border.transfer:{recipient['id']}"
    found: dict[str, list[str]] = {}
    async with browser_page(suite.gateway_url, locale="zh-CN") as page:
        await sign_in_by_keyboard(page, person)

        # Overseas recipients: the one waiting for this person's data, not provided yet.
        await page.get_by_role("link", name="境外接收方").click()
        await page.wait_for_url("**/privacy/overseas")
        heading = page.get_by_role("heading", name=recipient["legal_name"])
        card = page.locator("section.overseas-recipient", has=heading)
        assert await card.locator("[data-field=country_region]").inner_text() == "日本"
        assert await card.locator("[data-field=purpose]").inner_text() == "向买家配送跨境订单的商品"
        row = card.locator(".overseas-transfer")
        assert await row.get_attribute("data-status") == "awaiting_consent"
        assert await row.locator("[data-field=status]").inner_text() == "等待您的单独同意，尚未提供"
        found["zh /privacy/overseas (waiting)"] = await serious_violations(page)

        # The consents page: this recipient's consent, with its disclosure, granted by keyboard.
        await page.get_by_role("link", name="我的授权").click()
        section = page.locator("section.recipient-consent", has=heading)
        assert await section.locator("[data-recipient-state]").inner_text() == "未同意"
        assert "在日本加密存储" in await section.locator("dl").inner_text()
        # A grant is recorded only with the disclosure the page showed (checked by digest).
        csrf = await section.locator("input[name=csrf]").get_attribute("value")
        stale = await page.request.post(
            "/privacy/consents/overseas",
            form={
                "recipient": recipient["id"],
                "granted": "true",
                "disclosure": "0" * 64,
                "csrf": csrf or "",
            },
            max_redirects=0,
        )
        assert (stale.status, await _cross_border_consent(suite, headers, key)) == (409, None)
        await section.get_by_role("button", name="同意", exact=True).focus()
        await page.keyboard.press("Enter")
        await page.wait_for_url("**/privacy/consents?done=consent")
        assert await section.locator("[data-recipient-state]").inner_text() == "已同意"
        assert await _cross_border_consent(suite, headers, key) is True
        await _the_receipt_holds_the_disclosure(suite, headers, recipient["id"], section)
        await photograph(page, "consents-overseas")
        found["zh /privacy/consents (recipient)"] = await serious_violations(page)

        # With the consent the transfer goes; the page shows when.
        delivered = await suite.eventually(
            "GET",
            "/transfer/transfers/me",
            lambda body: [t["status"] for t in body] == ["delivered"],
            headers=headers,
        )
        await page.get_by_role("link", name="境外接收方").click()
        await page.wait_for_url("**/privacy/overseas")
        assert await row.get_attribute("data-status") == "delivered"
        assert await row.locator("[data-field=status]").inner_text() == "已提供"
        provided = await row.locator("[data-field=provided]").inner_text()
        assert provided == china_time(delivered[0]["delivered_at"])
        await photograph(page, "overseas")

        # Withdrawn as easily.
        await page.get_by_role("link", name="我的授权").click()
        await section.get_by_role("button", name="撤回").click()
        await page.wait_for_url("**/privacy/consents?done=consent")
        assert await section.locator("[data-recipient-state]").inner_text() == "未同意"
        assert await _cross_border_consent(suite, headers, key) is False

        await page.goto("/privacy/language/en?next=/privacy/overseas")
        for path in ("/privacy/overseas", "/privacy/consents"):
            await page.goto(path)
            found[f"en {path}"] = await serious_violations(page)
    assert found == {name: [] for name in found}


async def test_a_person_reads_the_policys_versions_and_what_changed(suite: Suite) -> None:
    _needed(str(AXE) if AXE.exists() else None, "axe-core is not installed (see .ci/run)")
    person = Person.new()
    await suite.register(person)
    current = await suite.call("GET", "/consent/policy")
    added = f"第十一条 境外接收方名单每季度更新（{secrets.token_hex(3)}）。"
    newer = f"{current['version']}-w{secrets.token_hex(2)}"
    await suite.call(
        "POST",
        "/consent/policy/versions",
        headers=suite.admin,
        json={
            "version": newer,
            "effective_date": str(china_today()),
            "text": current["text"].rstrip("\n") + "\n" + added + "\n",
            "summary_of_changes": "说明境外接收方名单的更新频率。",
            "major": False,
            "reduces_rights": False,
        },
        expect=201,
    )
    found: dict[str, list[str]] = {}
    async with browser_page(suite.gateway_url, locale="zh-CN") as page:
        await sign_in_by_keyboard(page, person)
        await page.get_by_role("link", name="隐私政策").click()
        await page.wait_for_url("**/privacy/policy")
        versions = page.locator("section.policy-version")
        assert await versions.nth(0).get_attribute("data-version") == newer
        assert await versions.nth(0).get_attribute("data-status") == "current"
        older = versions.nth(1)
        assert await older.get_attribute("data-version") == current["version"]
        assert await older.get_attribute("data-status") == "superseded"
        assert "您已同意此版本" in await older.inner_text()
        assert "您已同意此版本" not in await versions.nth(0).inner_text()
        await photograph(page, "policy")
        found["zh /privacy/policy"] = await serious_violations(page)

        await versions.nth(0).get_by_role("link", name="阅读全文").click()
        assert added in await page.locator(f"[data-version-text='{newer}']").inner_text()
        await versions.nth(0).get_by_role("link", name="与上一版比较").click()
        await page.wait_for_url("**/privacy/policy/diff?**")
        assert await page.locator("[data-diff-summary]").inner_text() == "新增 1 行，删除 0 行。"
        assert await page.locator("ins.diff-line").all_text_contents() == [f"新增: + {added}"]
        assert await page.locator("del.diff-line").count() == 0
        await photograph(page, "policy-diff")
        found["zh /privacy/policy/diff"] = await serious_violations(page)

        # In English too (the switch keeps the versions compared); and the policy is public:
        # readable signed out, without the menu.
        await page.get_by_role("link", name="English").click()
        await expect(page.locator("html")).to_have_attribute("lang", "en")
        summary = await page.locator("[data-diff-summary]").inner_text()
        assert summary == "Lines added: 1; lines removed: 0."
        found["en /privacy/policy/diff"] = await serious_violations(page)
        await page.get_by_role("link", name="Back to the version history").click()
        found["en /privacy/policy"] = await serious_violations(page)
        await page.get_by_role("button", name="Sign out").click()
        await page.get_by_role("link", name="Privacy policy").click()
        await page.wait_for_url("**/privacy/policy")
        assert await versions.nth(0).get_attribute("data-version") == newer
        assert await page.get_by_role("navigation").count() == 0
        found["en /privacy/policy (signed out)"] = await serious_violations(page)

        # A major version's diff names its kinds of major change (in effect today, as
        # test_privacy_center's is: a later version may not take effect before one
        # published earlier, whichever file runs first).
        major = f"{current['version']}-m{secrets.token_hex(2)}"
        await suite.call(
            "POST",
            "/consent/policy/versions",
            headers=suite.admin,
            json={
                "version": major,
                "effective_date": str(china_today()),
                "text": current["text"].rstrip("\n") + "\n" + added + "\n",
                "summary_of_changes": "更换境外接收方。",
                "major": True,
                "major_change_kinds": ["sharing_recipients"],
                "reduces_rights": False,
            },
            expect=201,
        )
        await page.goto(f"/privacy/policy/diff?from={newer}&to={major}")
        kinds = await page.locator("[data-change-kind]").all_inner_texts()
        assert kinds == ["The main recipients of shared or disclosed data"]
    assert found == {name: [] for name in found}


# --------------------------------------------------------------------------- more requests


async def grant(suite: Suite, headers: dict[str, str], purpose: str, granted: bool) -> None:
    shown = {"text": purpose, "page": "/test", "language": "zh"}
    await suite.call(
        "POST",
        "/consent/consents",
        headers=headers,
        json={"purpose": purpose, "granted": granted, "shown": shown},
        expect=(200, 201),
    )


async def test_a_person_corrects_an_order_and_withdraws_every_consent_and_follows_both(
    suite: Suite,
) -> None:
    person = Person.new()
    _, headers = await suite.register(person)
    order_id = await suite.place_order(person, headers)
    await grant(suite, headers, "marketing.price_drop", True)
    async with browser_page(suite.gateway_url, locale="zh-CN") as page:
        await sign_in_by_keyboard(page, person)
        await page.get_by_role("link", name="权利请求").click()

        # A correction: which order, which field, the correct value; by keyboard.
        await page.get_by_label("订单号", exact=True).fill(order_id)
        await page.get_by_label("要更正的信息").select_option(label="收货人姓名")
        await page.get_by_label("更正后的内容").fill("欧阳小明")
        await page.get_by_label("更正后的内容").press("Enter")
        await page.wait_for_url("**/privacy/requests?done=correction")
        assert await page.get_by_role("status").inner_text() == "已提交更正申请。"
        await suite.eventually(
            "GET",
            "/consent/rights-requests/me",
            lambda body: [r["status"] for r in body if r["kind"] == "correction"] == ["completed"],
            headers=headers,
            within_s=60,
        )
        order = await suite.call("GET", f"/orders/orders/{order_id}", headers=headers)
        assert order["consignee_name"] == "欧阳小明"
        await page.reload()
        correction = page.locator("section.rights-request[data-kind=correction]")
        assert await correction.get_attribute("data-status") == "completed"
        orders_answer = correction.locator("[data-service=orders]")
        assert await orders_answer.get_attribute("data-answer") == "done"
        assert "已完成" in await orders_answer.inner_text()
        assert "corrected: " in await orders_answer.inner_text()

        # Withdraw every consent at once, confirmed first.
        await page.get_by_label("我要撤回全部授权").check()
        await page.get_by_role("button", name="撤回全部授权").click()
        await page.wait_for_url("**/privacy/requests?done=withdraw_all")
        assert await page.get_by_role("status").inner_text() == "已提交撤回全部授权的申请。"
        mine = await suite.eventually(
            "GET",
            "/consent/consents/me",
            lambda body: not any(c["granted"] for c in body["consents"]),
            headers=headers,
            within_s=60,
        )
        assert "marketing.price_drop" in {c["purpose"] for c in mine["consents"]}
        kinds = await page.locator("section.rights-request").evaluate_all(
            "sections => sections.map(s => s.dataset.kind)"
        )
        assert sorted(kinds) == ["correction", "withdraw_all"]
        await photograph(page, "requests-followed")
        await page.get_by_role("link", name="我的授权").click()
        price_drop = page.locator(
            "section", has=page.locator("code", has_text="marketing.price_drop")
        )
        assert await price_drop.locator("[data-purpose-state]").inner_text() == "未同意"


async def test_a_person_filters_the_ledger_and_pages_through_it(suite: Suite) -> None:
    person = Person.new()
    _, headers = await suite.register(person)
    # Each read of the order through the gateway is an entry of the reader's ledger.
    order_id = await suite.place_order(person, headers)
    for _ in range(LEDGER_PAGE + 1):
        await suite.call("GET", f"/orders/orders/{order_id}", headers=headers)
    ledger = await suite.eventually(
        "GET",
        "/consent/ledger/me?limit=100",
        lambda body: body["total"] > LEDGER_PAGE,
        headers=headers,
        within_s=60,
    )
    choices = await suite.call("GET", "/consent/ledger/me/choices", headers=headers)
    purpose = next(p for p in choices["purposes"] if p["id"] == "order.query")
    # Through the gateway: a category covers those below it; a misspelt filter is refused.
    contact = await suite.call(
        "GET", "/consent/ledger/me", headers=headers, params={"category": "user.contact"}
    )
    assert contact["entries"], "the order's reads show the consignee's contact details"
    assert all(
        any(c["id"].startswith("user.contact.") for c in e["categories"])
        for e in contact["entries"]
    )
    await suite.call(
        "GET", "/consent/ledger/me", headers=headers, params={"purpse": "x"}, expect=422
    )
    today = china_today().isoformat()
    async with browser_page(suite.gateway_url, locale="en-US") as page:
        await page.goto("/privacy/language/en?next=/privacy/ledger")
        await page.get_by_label("Phone number").fill(person.phone)
        await page.get_by_label("Password").fill(person.password)
        await page.get_by_label("Password").press("Enter")
        await page.wait_for_url("**/privacy/consents")
        await page.get_by_role("link", name="Processing ledger").click()

        # Pages of 20, newest first, the next and previous ones linked.
        rows = page.locator("tr.ledger-entry")
        assert await rows.count() == LEDGER_PAGE
        shown_total = await page.locator("[data-ledger-total]").get_attribute("data-ledger-total")
        assert int(shown_total or 0) >= ledger["total"]
        await page.get_by_role("link", name="Next page").click()
        await page.wait_for_url("**/privacy/ledger?offset=20")
        second = await suite.call("GET", "/consent/ledger/me?limit=20&offset=20", headers=headers)
        assert await rows.count() == len(second["entries"])
        await page.get_by_role("link", name="Previous page").click()
        await page.wait_for_url("**/privacy/ledger?offset=0")
        assert await rows.count() == LEDGER_PAGE

        # Filters: a purpose, by its description; today's days.
        await page.get_by_label("Purpose").select_option(label=purpose["description"])
        await page.get_by_label("From").fill(today)
        await page.get_by_label("To").fill(today)
        await page.get_by_role("button", name="Filter").click()
        await page.wait_for_url("**/privacy/ledger?purpose=*")
        wanted = await suite.call(
            "GET",
            "/consent/ledger/me",
            headers=headers,
            params={"purpose": purpose["id"], "since": today, "until": today, "limit": "20"},
        )
        assert wanted["total"] > 0
        assert await rows.count() == len(wanted["entries"])
        assert set(await rows.evaluate_all("rs => rs.map(r => r.dataset.purpose)")) == {
            purpose["id"]
        }
        await photograph(page, "ledger-filtered")
        # A day with nothing in it shows nothing.
        await page.get_by_label("From").fill("2020-01-01")
        await page.get_by_label("To").fill("2020-01-02")
        await page.get_by_role("button", name="Filter").click()
        await page.wait_for_url("**until=2020-01-02*")
        assert await rows.count() == 0
        assert await page.get_by_text("No processing recorded yet.").count() == 1


# --------------------------------------------------------------------------- anti-forgery

TOKEN: Final = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


def set_cookie(answer: httpx.Response, name: str) -> str:
    """The Set-Cookie header of ``answer`` that sets ``name``."""
    (found,) = [c for c in answer.headers.get_list("set-cookie") if c.startswith(f"{name}=")]
    return found


def form_token(page: httpx.Response) -> str:
    found = TOKEN.search(page.text)
    assert found is not None, "the page has no anti-forgery token"
    return found.group(1)


@asynccontextmanager
async def browser_less(suite: Suite) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client keeping cookies, as a browser would, without following redirects."""
    async with httpx.AsyncClient(base_url=suite.gateway_url) as client:
        yield client


async def test_a_form_posted_without_this_sessions_token_changes_nothing(suite: Suite) -> None:
    person = Person.new()
    _, headers = await suite.register(person)
    async with browser_less(suite) as client:
        sign_in_page = await client.get("/privacy/")
        before = form_token(sign_in_page)
        credentials = {"phone": person.phone, "password": person.password}

        # Sign-in itself: another site's form (no token, or another's) signs no one in.
        for forged in ({}, {"csrf": "0" * 64}):
            refused = await client.post("/privacy/sign-in", data={**credentials, **forged})
            assert refused.status_code == 403
            assert 'data-refused="forged-form"' in refused.text
            assert "privacy_session" not in refused.headers.get("set-cookie", "")
        signed_in = await client.post("/privacy/sign-in", data={**credentials, "csrf": before})
        assert signed_in.status_code == 303
        session_cookie = set_cookie(signed_in, "privacy_session")
        assert "HttpOnly" in session_cookie and "SameSite=strict" in session_cookie
        assert "Path=/privacy" in session_cookie and "Secure" not in session_cookie

        consents = await client.get("/privacy/consents")
        token = form_token(consents)
        assert token != before, "the token is the session's, not the sign-in form's"
        grant_form = {"purpose": "marketing.price_drop", "granted": "true", "shown": "x"}
        for forged in ({}, {"csrf": before}, {"csrf": "f" * 64}):
            refused = await client.post("/privacy/consents", data={**grant_form, **forged})
            assert refused.status_code == 403, forged
            assert "nothing was changed" in refused.text or "未做任何更改" in refused.text
            refused = await client.post("/privacy/requests", data={"kind": "deletion", **forged})
            assert refused.status_code == 403, forged
            refused = await client.post("/privacy/sign-out", data=forged)
            assert refused.status_code == 403, forged
            overseas = {"recipient": "rcp_anyone", "granted": "false", **forged}
            refused = await client.post("/privacy/consents/overseas", data=overseas)
            assert refused.status_code == 403, forged
        mine = await suite.call("GET", "/consent/consents/me", headers=headers)
        assert not any(c["granted"] for c in mine["consents"])
        assert await suite.call("GET", "/consent/rights-requests/me", headers=headers) == []

        # With the token, the same form works: the refusal above was the token's.
        granted = await client.post("/privacy/consents", data={**grant_form, "csrf": token})
        assert granted.status_code == 303
        mine = await suite.call("GET", "/consent/consents/me", headers=headers)
        assert {c["purpose"]: c["granted"] for c in mine["consents"]}["marketing.price_drop"]


# --------------------------------------------------------------------------- notices


def incident_body(title: str, since: datetime) -> dict[str, Any]:
    """A security incident touching contact details since ``since``: everyone whose contact
    details were processed since then is told."""
    now = utcnow()
    return {
        "title": title,
        "what_happened": "一台面单打印机的队列可从办公网络读取。\n已于当日关闭。",
        "impact": "面单上的姓名和地址可能被看到。",
        "window_start": since.isoformat(),
        "window_end": now.isoformat(),
        "detected_at": now.isoformat(),
        "level": "general",
        "categories": ["user.contact"],
        "measures": "已关闭该队列并更换打印服务器。",
        "advice": "请警惕自称快递员的来电。",
        "remedies": "可联系客服申请补偿。",
        "contact": "privacy@signature.example",
    }


async def test_a_person_reads_their_notices_newest_first_and_pages_through_them(
    suite: Suite,
) -> None:
    _needed(str(AXE) if AXE.exists() else None, "axe-core is not installed (see .ci/run)")
    since = utcnow() - timedelta(seconds=5)
    person = Person.new()
    _, headers = await suite.register(person)
    order_id = await suite.place_order(person, headers)
    await suite.call("GET", f"/orders/orders/{order_id}", headers=headers)
    # The incidents find the person in their ledger: their contact details were processed.
    await suite.eventually(
        "GET",
        "/consent/ledger/me",
        lambda body: body["total"] > 0,
        headers=headers,
        payload=None,
        within_s=60,
    )
    tag = secrets.token_hex(3)
    titles = [f"面单打印机事件 {tag}-{number}" for number in range(NOTICES_PAGE + 1)]
    for title in titles:
        await suite.call(
            "POST",
            "/consent/incidents",
            headers=suite.admin,
            json=incident_body(title, since),
            expect=201,
        )
    notices = await suite.eventually(
        "GET",
        "/consent/notices/me?limit=100",
        lambda body: {n.get("title") for n in body} >= set(titles),
        headers=headers,
    )
    found: dict[str, list[str]] = {}
    async with browser_page(suite.gateway_url, locale="zh-CN") as page:
        await sign_in_by_keyboard(page, person)
        await page.get_by_role("link", name="通知").click()
        await page.wait_for_url("**/privacy/notices")

        # Newest first, a page of them, each in full.
        items = page.locator("article.notice-item")
        headings = items.get_by_role("heading", level=2)
        assert await headings.all_inner_texts() == [n.get("title") for n in notices[:NOTICES_PAGE]]
        assert await headings.first.inner_text() == titles[-1]
        newest = items.first
        assert await newest.get_attribute("data-kind") == "incident"
        assert (
            await newest.locator("[data-field=what_happened]").inner_text()
            == "一台面单打印机的队列可从办公网络读取。\n已于当日关闭。"
        )
        # Which of the person's data, by the catalogue's Chinese names.
        assert await newest.locator("[data-field=your_categories]").inner_text() == ", ".join(
            default_catalogue().category(c).name_zh for c in notices[0]["your_categories"]
        )
        assert (
            await newest.locator("[data-field=advice]").inner_text() == "请警惕自称快递员的来电。"
        )
        assert "收到时间" in await newest.inner_text()
        await photograph(page, "notices")
        found["zh /privacy/notices"] = await serious_violations(page)

        # Older ones on the next page, by keyboard.
        await page.get_by_role("link", name="更早的记录").focus()
        await page.keyboard.press("Enter")
        await page.wait_for_url(f"**/privacy/notices?offset={NOTICES_PAGE}")
        assert await headings.all_inner_texts() == [
            n.get("title") for n in notices[NOTICES_PAGE : 2 * NOTICES_PAGE]
        ]
        assert titles[0] in await headings.all_inner_texts()
        await page.get_by_role("link", name="较新的记录").click()
        await page.wait_for_url("**/privacy/notices?offset=0")
        assert await headings.first.inner_text() == titles[-1]

        await page.get_by_role("link", name="English").click()
        await expect(page.locator("html")).to_have_attribute("lang", "en")
        assert await page.get_by_role("heading", level=1).inner_text() == "Notices"
        assert "Received" in await items.first.inner_text()
        found["en /privacy/notices"] = await serious_violations(page)
    assert found == {name: [] for name in found}


# --------------------------------------------------- restriction, explanation, portability


async def _request_of(suite: Suite, headers: dict[str, str], kind: str) -> dict[str, Any]:
    """The person's only request of ``kind``, as the API shows it."""
    mine = await suite.call("GET", "/consent/rights-requests/me", headers=headers)
    [found] = [r for r in mine if r["kind"] == kind]
    return found  # type: ignore[no-any-return]


async def test_a_person_restricts_asks_for_an_explanation_and_ports_a_copy(
    suite: Suite, processor: tuple[str, Received]
) -> None:
    _needed(str(AXE) if AXE.exists() else None, "axe-core is not installed (see .ci/run)")
    _, received = processor
    person = Person.new()
    account_id, headers = await suite.register(person)
    order_id = await suite.place_order(person, headers)
    await suite.call("GET", f"/orders/orders/{order_id}", headers=headers)
    found: dict[str, list[str]] = {}
    async with browser_page(suite.gateway_url, locale="zh-CN") as page:
        await sign_in_by_keyboard(page, person)
        await page.get_by_role("link", name="权利请求").click()
        found["zh /privacy/requests (every kind)"] = await serious_violations(page)

        await _restrict_and_lift(page, suite, headers)
        await _ask_for_an_explanation(page, suite, headers, found)
        await _port_a_copy(
            page=page, suite=suite, person=person, headers=headers, processor=processor, found=found
        )
        assert json.loads(received[0][1])["subject"] == account_id

        await page.goto("/privacy/language/en?next=/privacy/requests")
        found["en /privacy/requests (every kind)"] = await serious_violations(page)
        await photograph(page, "requests-every-kind")
    assert found == {name: [] for name in found}


async def _restrict_and_lift(page: Page, suite: Suite, headers: dict[str, str]) -> None:
    """A restriction: the purposes and kinds of data it names (legal ones are not
    offered), in effect at once, lifted by the person as easily."""
    assert await page.locator("input[name=purposes][value='rights.access']").count() == 0
    await page.get_by_label("购物车内商品的降价和优惠提醒。", exact=True).check()
    await page.locator("input[name=categories][value='user.location.precise']").check()
    await page.get_by_role("button", name="申请限制处理").click()
    await page.wait_for_url("**/privacy/requests?done=restriction")
    assert await page.get_by_role("status").inner_text() == "已提交限制处理申请，限制立即生效。"
    restriction = (await _request_of(suite, headers, "restriction"))["restriction"]
    assert (restriction["purposes"], restriction["categories"]) == (
        ["marketing.price_drop"],
        ["user.location.precise"],
    )
    assert restriction["lifted_at"] is None
    card = page.locator("section.rights-request[data-kind=restriction]")
    shown = await card.locator("[data-field=restricted]").inner_text()
    # The purpose and the kind of data by their Chinese names (the catalogue's description_zh
    # and name_zh), their ids kept as the titles.
    assert shown == "购物车内商品的降价和优惠提醒。, 精准定位信息"
    assert await card.locator("[data-field=restricted] .purpose").get_attribute("title") == (
        "marketing.price_drop"
    )
    named = card.locator("[data-field=restricted] .category")
    assert await named.get_attribute("title") == "user.location.precise"
    assert await card.locator("dl.restriction").get_attribute("data-lifted") == "false"
    await photograph(page, "requests-restriction")
    # Lifted by the person.
    await card.get_by_role("button", name="解除限制").click()
    await page.wait_for_url("**/privacy/requests?done=lifted")
    assert (await _request_of(suite, headers, "restriction"))["restriction"]["lifted_at"]
    assert await card.locator("dl.restriction").get_attribute("data-lifted") == "true"
    assert await card.get_by_role("button", name="解除限制").count() == 0


async def _ask_for_an_explanation(
    page: Page, suite: Suite, headers: dict[str, str], found: dict[str, list[str]]
) -> None:
    """An explanation: which data, for what, by whom, on which basis, how long."""
    await page.get_by_role("button", name="申请解释处理规则").click()
    await page.wait_for_url("**/privacy/requests?done=explanation")
    filed = await _request_of(suite, headers, "explanation")
    explanation = f"/consent/rights-requests/{filed['id']}/explanation"
    before = await suite.call("GET", explanation, headers=headers)
    await page.get_by_role("link", name="查看解释").click()
    await page.wait_for_url(f"**/privacy/requests/{filed['id']}/explanation")
    sections = page.locator("section.explained-category")
    shown = await sections.evaluate_all("ss => ss.map(s => s.dataset.category)")
    # Each read of the explanation is processing of its own (in the ledger shortly after),
    # so the page holds what the API told before it and nothing it does not tell after.
    after = await suite.call("GET", explanation, headers=headers)
    assert {c["category"] for c in before["categories"]} <= set(shown)
    assert shown == [c["category"] for c in after["categories"] if c["category"] in shown]
    phone = "user.contact.phone_number"
    purposes = (
        await sections.filter(
            has=page.locator("code", has_text=re.compile(f"^{re.escape(phone)}$"))
        )
        .locator(".explained-purpose")
        .evaluate_all("ps => ps.map(p => p.dataset.purpose)")
    )

    def purposes_of(explained: dict[str, Any]) -> set[str]:
        [category] = [c for c in explained["categories"] if c["category"] == phone]
        return {p["purpose"] for p in category["purposes"]}

    assert purposes_of(before) <= set(purposes) <= purposes_of(after)
    assert "order.query" in purposes
    await photograph(page, "explanation")
    found["zh /privacy/requests/{id}/explanation"] = await serious_violations(page)
    await page.get_by_role("link", name="权利请求").first.click()


async def _port_a_copy(
    *,
    page: Page,
    suite: Suite,
    person: Person,
    headers: dict[str, str],
    processor: tuple[str, Received],
    found: dict[str, list[str]],
) -> None:
    """Portability: to the processor named, sent once the person gives the password again."""
    url, received = processor
    await page.get_by_label("接收方名称").fill("另一家商店")
    await page.get_by_label("接收方地址（HTTPS）").fill(url)
    await page.get_by_label("接收方地址（HTTPS）").press("Enter")
    await page.wait_for_url("**/privacy/requests?done=portability")
    filed = await _request_of(suite, headers, "portability")
    await suite.eventually(
        "GET",
        f"/consent/rights-requests/{filed['id']}",
        lambda body: body["status"] == "completed",
        headers=headers,
        within_s=60,
    )
    await page.reload()
    porting = page.locator("section.rights-request[data-kind=portability]")
    await porting.get_by_label("手机号").fill(person.phone)
    await porting.get_by_label("密码").fill("not the password")
    await porting.get_by_role("button", name="发送副本").click()
    await expect(page.get_by_role("alert")).to_be_visible()
    assert received == [], "a wrong password sends nothing"
    await page.go_back()
    await porting.get_by_label("手机号").fill(person.phone)
    await porting.get_by_label("密码").fill(person.password)
    await porting.get_by_role("button", name="发送副本").click()
    await page.wait_for_url(f"**/privacy/requests/{filed['id']}/delivery")
    assert await page.get_by_role("heading", level=1).inner_text() == "副本已发送"
    [(_, copy)] = received
    receipt = page.locator(".portability-receipt")
    assert await receipt.locator("[data-field=destination]").inner_text() == "另一家商店"
    digest = await receipt.locator("[data-field=sha256]").inner_text()
    assert digest == hashlib.sha256(copy).hexdigest()
    await photograph(page, "portability-sent")
    found["zh /privacy/requests/{id}/delivery"] = await serious_violations(page)


async def test_a_request_missing_what_its_kind_needs_is_refused_and_nothing_is_filed(
    suite: Suite,
) -> None:
    person = Person.new()
    _, headers = await suite.register(person)
    async with browser_less(suite) as client:
        sign_in_page = await client.get("/privacy/", headers={"Accept-Language": "en"})
        credentials = {"phone": person.phone, "password": person.password}
        await client.post(
            "/privacy/sign-in", data={**credentials, "csrf": form_token(sign_in_page)}
        )
        token = form_token(await client.get("/privacy/requests"))

        # Said by the page: a restriction naming nothing, a copy with no destination.
        nothing = await client.post(
            "/privacy/requests",
            data={"kind": "restriction", "csrf": token},
            headers={"Accept-Language": "en"},
        )
        assert nothing.status_code == 422
        assert "Choose at least one purpose or kind of data." in nothing.text
        nowhere = await client.post(
            "/privacy/requests",
            data={"kind": "portability", "destination_name": "Other shop", "csrf": token},
            headers={"Accept-Language": "en"},
        )
        assert nowhere.status_code == 422
        assert "Give the processor&#39;s address." in nowhere.text
        # Said by the consent service, passed on: a purpose imposed by law, a plain-HTTP copy.
        legal = await client.post(
            "/privacy/requests",
            data={"kind": "restriction", "purposes": "rights.access", "csrf": token},
        )
        assert legal.status_code == 422
        assert "imposed by law" in legal.text
        plain = await client.post(
            "/privacy/requests",
            data={
                "kind": "portability",
                "destination_name": "Other shop",
                "destination_url": "http://other.example/import",
                "csrf": token,
            },
        )
        assert plain.status_code == 422
        assert "must be an https URL" in plain.text
    assert await suite.call("GET", "/consent/rights-requests/me", headers=headers) == []
