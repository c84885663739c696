"""Resource consumption (OWASP API4): the gateway caps body sizes (413, nothing
forwarded), every list route pages with a maximum page size, and the rate limit holds
under a real burst on loopback (429 with ``Retry-After``), per client, then recovers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from kit.auth import PARTNER_SCOPES, STAFF_ROLE_SCOPES, USER_SCOPES
from kit.settings import REPO_ROOT
from kit.testing import new_subject
from tests.security.conftest import SERVICES, Suite, on_loopback, running_suite

pytestmark = pytest.mark.security

MAX_BODY = 1_048_576  # the gateway's default GATEWAY_MAX_BODY_BYTES

#: List routes without paging, each bounded by what it lists.
BOUNDED_LISTS = {
    ("consent", "/policy/versions"): "published policy versions: a handful a year",
    ("consent", "/consents/purposes"): "the catalogue's consent purposes",
    ("consent", "/cessations"): "declared cessations: a handful in the service's life",
    ("consent", "/announcements"): "public incident announcements: rare by nature",
    ("orders", "/cart/shares"): "a user's own share links",
    ("orders", "/admin/discounts"): "staff-made discount codes",
    ("identity", "/partners"): "registered partners, staff only",
    ("consent", "/incidents"): "recorded incidents, staff only",
    ("transfer", "/recipients"): "registered overseas recipients, staff only",
    ("orders", "/admin/payment-providers"): "payment providers set up by staff: a handful",
    ("orders", "/payment-providers"): "the wallets a buyer may pay with: a handful",
    ("orders", "/support/cases"): "a user's own customer service cases: a handful",
    ("consent", "/mini-program/privacy-guide"): "the catalogue's categories the app collects",
    ("consent", "/consents/me/prompts"): "the catalogue's purposes that ask, one each",
    ("consent", "/lists/versions"): "one list version per policy or registry change",
}


def _is_list(spec: dict[str, Any], operation: dict[str, Any]) -> bool:
    schema = (
        operation.get("responses", {})
        .get("200", {})
        .get("content", {})
        .get("application/json", {})
        .get("schema", {})
    )
    if schema.get("type") == "array":
        return True
    ref = schema.get("$ref", "").rsplit("/", 1)[-1]
    members = spec.get("components", {}).get("schemas", {}).get(ref, {}).get("properties", {})
    return bool({"items", "entries", "next_cursor"} & set(members))


def _limit(operation: dict[str, Any]) -> dict[str, Any] | None:
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "query" and parameter["name"] == "limit":
            schema: dict[str, Any] = parameter["schema"]
            return schema
    return None


async def test_every_list_route_has_a_maximum_page_size(suite: Suite) -> None:
    """A list route either pages (``limit`` with a maximum, over it 422 naming the field,
    asked through the gateway by a caller the route admits) or is listed in
    :data:`BOUNDED_LISTS` with what bounds it."""
    paged = 0
    seen: set[tuple[str, str]] = set()
    routes = route_entries()
    for name in SERVICES:
        spec = (await suite.clients[name].get("/openapi.json")).json()
        for path, operations in spec["paths"].items():
            operation = operations.get("get")
            if operation is None or not _is_list(spec, operation):
                continue
            limit = _limit(operation)
            if limit is None:
                assert (name, path) in BOUNDED_LISTS, f"{name} GET {path} lists without a limit"
                seen.add((name, path))
                continue
            assert 1 <= limit["maximum"] <= 1000, f"{name} GET {path}"
            assert limit["default"] <= limit["maximum"]
            entry = routes[f"GET /{name}{path}"]
            if "{" in path or entry.get("internal"):
                continue
            over = await suite.client.get(
                f"/{name}{path}",
                params={"limit": limit["maximum"] + 1},
                headers=admitted_caller(suite, entry),
            )
            assert over.status_code == 422, f"{name} GET {path}: {over.text}"
            assert over.json()["errors"][0]["field"] == "query.limit", over.text
            paged += 1
    assert seen == set(BOUNDED_LISTS), "a bounded list is gone: drop it from BOUNDED_LISTS"
    assert paged >= 6


def route_entries() -> dict[str, dict[str, Any]]:
    """``policy/routes.yaml`` by route (``"GET /orders/orders"``)."""
    entries = yaml.safe_load((REPO_ROOT / "policy" / "routes.yaml").read_text("utf-8"))
    return {entry["route"]: entry for entry in entries["routes"]}


def admitted_caller(suite: Suite, entry: dict[str, Any]) -> dict[str, str]:
    """Headers of a caller the route admits: a user, the staff role or the partner holding
    its first scope, or nobody for a public route."""
    if entry.get("public"):
        return {}
    purposes: dict[str, str] = entry.get("purposes", {})
    scope = (entry.get("scopes") or list(purposes))[0]
    if scope in USER_SCOPES:
        return suite.user(new_subject())
    if scope in PARTNER_SCOPES:
        purpose = purposes[scope] if purposes else entry["purpose"]
        return suite.partner(new_subject("ptn"), scope, [purpose])
    role = next(role for role, held in STAFF_ROLE_SCOPES.items() if scope in held)
    return suite.staff(new_subject("stf"), role)


@pytest.mark.parametrize(
    ("path", "headers_of"),
    [("/orders/orders", "user"), ("/orders/goods", None), ("/consent/ledger/me", "user")],
)
async def test_a_page_past_its_maximum_is_refused_and_the_maximum_served(
    suite: Suite, path: str, headers_of: str | None
) -> None:
    headers = suite.user(new_subject()) if headers_of else {}
    too_big = await suite.client.get(path, params={"limit": 101}, headers=headers)
    assert too_big.status_code == 422, too_big.text
    assert too_big.json()["errors"][0]["field"] == "query.limit"
    biggest = await suite.client.get(path, params={"limit": 100}, headers=headers)
    assert biggest.status_code == 200, biggest.text
    for limit in (0, -1, "all"):
        refused = await suite.client.get(path, params={"limit": limit}, headers=headers)
        assert refused.status_code == 422, (limit, refused.text)


@pytest.mark.parametrize("path", ["/orders/goods", "/orders/admin/goods", "/consent/ledger/me"])
async def test_an_offset_past_the_bound_is_422_not_a_server_error(suite: Suite, path: str) -> None:
    """Found by fuzzing: an offset past 2**63 reached the database and failed with 500."""
    headers = (
        suite.staff(new_subject("stf"), "catalogue_manager")
        if "admin" in path
        else suite.user(new_subject())
    )
    for offset in (2**63, 10**30, 1_000_001):
        answer = await suite.client.get(path, params={"offset": offset}, headers=headers)
        assert answer.status_code == 422, answer.text
        assert answer.json()["errors"][0]["field"] == "query.offset"
    deepest = await suite.client.get(path, params={"offset": 1_000_000}, headers=headers)
    assert deepest.status_code == 200, deepest.text


async def _chunks(total: int) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        chunk = b"x" * min(65_536, total - sent)
        sent += len(chunk)
        yield chunk


async def test_a_body_past_the_limit_is_413_and_never_forwarded(suite: Suite) -> None:
    user = suite.user(new_subject())
    before = suite.calls()
    declared = await suite.client.post(
        "/orders/orders",
        content=b"{" + b" " * MAX_BODY + b"}",
        headers={**user, "Content-Type": "application/json"},
    )
    assert declared.status_code == 413, declared.text
    streamed = await suite.client.post(  # chunked: no Content-Length to trust
        "/orders/cart/items",
        content=_chunks(MAX_BODY + 1),
        headers={**user, "Content-Type": "application/json"},
    )
    assert streamed.status_code == 413, streamed.text
    lying = await suite.client.post(
        "/orders/cart/items",
        content=b"{}",
        headers={**user, "Content-Type": "application/json", "Content-Length": "-1"},
    )
    assert lying.status_code == 400, lying.text
    assert lying.json()["errors"][0]["field"] == "header.content-length", lying.text
    assert suite.calls() == before, "an oversized body reached a service"
    at_limit = await suite.client.post(
        "/orders/cart/items",
        content=b'{"goods_id":"gds_none"' + b" " * (MAX_BODY - 24) + b"}",
        headers={**user, "Content-Type": "application/json"},
    )
    # Within the limit the body reaches orders, which judges it: no such goods.
    assert at_limit.status_code == 422, at_limit.text
    assert at_limit.json()["errors"][0]["field"] == "body.goods_id", at_limit.text


RATE, BURST, SENT = 2.0, 10, 40


async def test_rate_limits_hold_under_a_burst_and_recover(tmp_path: Path) -> None:
    async with (
        running_suite(tmp_path, rate_limit_per_s=RATE, rate_limit_burst=BURST) as suite,
        on_loopback(suite) as url,
        httpx.AsyncClient(base_url=url, trust_env=False) as client,
    ):
        user_a, user_b = suite.user(new_subject()), suite.user(new_subject())
        before = suite.calls()
        answers = await asyncio.gather(
            *(client.get("/orders/cart", headers=user_a) for _ in range(SENT))
        )
        codes = [answer.status_code for answer in answers]
        passed, limited = codes.count(200), codes.count(429)
        assert passed + limited == SENT, codes
        # The burst, plus what the bucket refilled while the burst was in flight.
        assert BURST <= passed <= BURST + 3, codes
        assert suite.calls() - before == passed, "a limited request reached orders"
        refused = next(answer for answer in answers if answer.status_code == 429)
        wait = int(refused.headers["retry-after"])
        assert 1 <= wait <= 60
        assert refused.headers["content-type"].startswith("application/problem+json")
        # Another client is not held back by the first one's burst...
        other = await client.get("/orders/cart", headers=user_b)
        assert other.status_code == 200, other.text
        # ... nor are anonymous callers, counted per address.
        anonymous = await client.get("/orders/goods")
        assert anonymous.status_code == 200, anonymous.text
        await asyncio.sleep(wait)
        recovered = await client.get("/orders/cart", headers=user_a)
        assert recovered.status_code == 200, recovered.text
