"""HTTP as clients already speak it, at the gateway (issue 24 item 8), through the gateway
with httpx as a client: gzip when ``Accept-Encoding`` allows it (RFC 9110 8.4, 12.5.3),
validators and ``Cache-Control`` on the policy versions with 304 on a repeated request
(RFC 9110 13, RFC 9111), malformed JSON 400 (not 422), and problem ``type`` references
(RFC 9457) that resolve to the suite's own error-code catalogue, which documents every
code any app can emit."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
from fastapi import FastAPI

from gateway.compression import accepts_gzip
from kit.errors import PROBLEM_SCHEMA, problem
from kit.problem_types import (
    CODE_STYLE,
    OAUTH_CODES,
    codes_table,
    emitted_codes,
    load_problem_catalogue,
)
from kit.settings import REPO_ROOT
from kit.testing import TEST_ISSUER, UNREACHABLE_KAFKA, serve_app, trust_only
from services.consent.config import Settings as ConsentSettings
from services.identity.config import Settings as IdentitySettings
from tests.gateway.conftest import KEY, GatewayUnderTest, fake_orders_app, running_gateway

#: A goods list of about 4 kB, as the issue measured it.
GOODS = [{"goods_id": f"gds_{n:04d}", "name": f"Longjing tea, grade {n}", "price": "99.90",
          "currency": "CNY", "cross_border": False, "special_category": False}
         for n in range(40)]  # fmt: skip


def goods_app() -> FastAPI:
    app = FastAPI()

    @app.get("/goods")
    async def goods() -> list[dict[str, Any]]:
        return GOODS

    @app.get("/goods/{goods_id}")
    async def one(goods_id: str) -> dict[str, Any]:
        return {**GOODS[0], "goods_id": goods_id}

    return app


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[GatewayUnderTest]:
    (tmp_path / "shop").mkdir()
    async with running_gateway(tmp_path / "shop", {"orders": goods_app()}) as gateway:
        yield gateway


@pytest.fixture
async def privacy_center(tmp_path: Path) -> AsyncIterator[GatewayUnderTest]:
    """The real consent service (its first policy, 2026.1, published at start) behind the
    gateway."""
    settings = ConsentSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/consent.db",
        kafka_bootstrap_servers=UNREACHABLE_KAFKA,
        auth_issuer=TEST_ISSUER,
        log_json=False,
    )
    async with serve_app("services.consent", settings) as (consent_app, _):
        trust_only(consent_app, KEY)
        async with running_gateway(tmp_path, {"consent": consent_app}) as gateway:
            yield gateway


# --------------------------------------------------------------------------- compression


async def test_a_long_answer_is_gzipped_for_a_client_that_accepts_it(
    shop: GatewayUnderTest,
) -> None:
    plain = await shop.client.get("/orders/goods", headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and len(plain.content) > 4000
    assert "content-encoding" not in plain.headers
    assert plain.headers["vary"] == "Accept-Encoding"  # caches keep the codings apart

    packed = await shop.client.get("/orders/goods", headers={"Accept-Encoding": "gzip"})
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.headers["vary"] == "Accept-Encoding"
    assert int(packed.headers["content-length"]) < len(plain.content) / 4
    assert packed.json() == plain.json() == GOODS  # httpx decoded it, as a client does
    raw = await shop.client.send(
        shop.client.build_request("GET", "/orders/goods", headers={"Accept-Encoding": "gzip"}),
        stream=True,
    )
    assert gzip.decompress(b"".join([chunk async for chunk in raw.aiter_raw()])) == plain.content


@pytest.mark.parametrize("accept", ["gzip;q=0", "br", "identity, *;q=0", ""])
async def test_no_gzip_unless_accept_encoding_allows_it(
    shop: GatewayUnderTest, accept: str
) -> None:
    response = await shop.client.get("/orders/goods", headers={"Accept-Encoding": accept})
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert response.json() == GOODS


async def test_a_short_answer_is_sent_as_it_is(shop: GatewayUnderTest) -> None:
    response = await shop.client.get("/orders/goods/gds_1", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert "content-encoding" not in response.headers and "vary" not in response.headers


def test_accept_encoding_is_read_with_its_q_values() -> None:
    assert accepts_gzip("gzip") and accepts_gzip("deflate, gzip;q=0.5") and accepts_gzip("*")
    assert accepts_gzip("x-gzip") and accepts_gzip("br;q=1, *;q=0.1")
    assert not accepts_gzip("gzip;q=0") and not accepts_gzip("*;q=0")
    assert not accepts_gzip("gzip;q=0, *") and not accepts_gzip("") and not accepts_gzip("br")


# --------------------------------------------------------------------------- caching


async def test_a_policy_version_has_validators_and_a_repeat_is_304(
    privacy_center: GatewayUnderTest,
) -> None:
    client = privacy_center.client
    path = "/consent/policy/versions/2026.1"
    first = await client.get(path)
    assert first.status_code == 200, first.text
    etag = first.headers["etag"]
    assert etag.strip("W/").startswith('"') and etag.endswith('"')
    assert first.headers["cache-control"] == "public, no-cache"  # its status can change

    again = await client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"].removeprefix("W/") == etag.removeprefix("W/")
    other = await client.get(path, headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200 and other.json() == first.json()
    star = await client.get(path, headers={"If-None-Match": "*"})
    assert star.status_code == 304


async def test_the_policy_in_effect_has_last_modified_and_a_diff_is_immutable(
    privacy_center: GatewayUnderTest,
) -> None:
    client = privacy_center.client
    current = await client.get("/consent/policy", headers={"Accept-Encoding": "identity"})
    assert current.status_code == 200, current.text
    last_modified = current.headers["last-modified"]
    assert last_modified.endswith(" GMT")
    assert current.headers["etag"].startswith('"')  # strong while not compressed
    since = await client.get("/consent/policy", headers={"If-Modified-Since": last_modified})
    assert since.status_code == 304
    older = await client.get(
        "/consent/policy", headers={"If-Modified-Since": "Mon, 01 Jan 2024 00:00:00 GMT"}
    )
    assert older.status_code == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
    both = await client.get(
        "/consent/policy",
        headers={"If-None-Match": '"stale"', "If-Modified-Since": last_modified},
    )
    assert both.status_code == 200

    # Compressed, the tag is weak; a client sending it back still gets 304.
    packed = await client.get("/consent/policy", headers={"Accept-Encoding": "gzip"})
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.headers["etag"] == "W/" + current.headers["etag"]
    revalidated = await client.get(
        "/consent/policy",
        headers={"If-None-Match": packed.headers["etag"], "Accept-Encoding": "gzip"},
    )
    assert revalidated.status_code == 304

    diff = await client.get("/consent/policy/diff", params={"from": "2026.1", "to": "2026.1"})
    assert diff.status_code == 200
    assert diff.headers["cache-control"] == "public, max-age=31536000, immutable"
    repeat = await client.get(
        "/consent/policy/diff",
        params={"from": "2026.1", "to": "2026.1"},
        headers={"If-None-Match": diff.headers["etag"]},
    )
    assert repeat.status_code == 304


async def test_the_signing_keys_have_a_validator_and_a_repeat_is_304(tmp_path: Path) -> None:
    settings = IdentitySettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/identity.db",
        kafka_bootstrap_servers=UNREACHABLE_KAFKA,
        auth_issuer=TEST_ISSUER,
        log_json=False,
    )
    async with (
        serve_app("services.identity", settings, base_url=TEST_ISSUER) as (identity_app, _),
        running_gateway(tmp_path, {"identity": identity_app}) as gw,
    ):
        path = "/identity/.well-known/jwks.json"
        keys = await gw.client.get(path)
        assert keys.status_code == 200 and keys.json()["keys"]
        assert keys.headers["cache-control"] == "public, max-age=60"
        again = await gw.client.get(path, headers={"If-None-Match": keys.headers["etag"]})
        assert again.status_code == 304 and again.content == b""


# --------------------------------------------------------------------------- malformed JSON


async def test_malformed_json_is_400_at_the_service_and_at_the_gateway(
    privacy_center: GatewayUnderTest, tmp_path: Path
) -> None:
    _, user = privacy_center.user()
    broken = {**user, "Content-Type": "application/json"}
    service = await privacy_center.client.post(
        "/consent/consents", content=b'{"purpose": "location", ', headers=broken
    )
    assert service.status_code == 400, service.text
    assert service.headers["content-type"] == "application/problem+json"
    assert service.json()["type"] == "/problems/malformed-json"
    assert service.json()["errors"][0]["field"].startswith("body")
    # Well-formed JSON with a wrong field stays 422.
    wrong = await privacy_center.client.post("/consent/consents", json={"purpose": 7}, headers=user)
    assert wrong.status_code == 422

    # A route whose body the gateway reads itself (the order's personal fields).
    (tmp_path / "shop").mkdir()
    async with running_gateway(tmp_path / "shop", {"orders": fake_orders_app()}) as gw:
        _, buyer = gw.user()
        gateway = await gw.client.post(
            "/orders/orders",
            content=b"{nope",
            headers={**buyer, "Content-Type": "application/json"},
        )
    assert gateway.status_code == 400, gateway.text
    assert gateway.json()["type"] == "/problems/malformed-json"
    assert gateway.json()["errors"] == [
        {"field": "body", "message": "not valid JSON", "type": "json_invalid"}
    ]


async def test_an_unknown_query_parameter_is_refused_by_name_through_the_gateway(
    privacy_center: GatewayUnderTest,
) -> None:
    _, user = privacy_center.user()
    path = "/consent/consents/me/receipts"
    misspelt = await privacy_center.client.get(path, params={"limt": "1"}, headers=user)
    assert misspelt.status_code == 422, misspelt.text
    assert misspelt.headers["content-type"] == "application/problem+json"
    assert misspelt.json()["errors"] == [
        {"field": "query.limt", "message": "Unknown query parameter", "type": "extra_forbidden"}
    ]
    # The declared ones (also a dependency's, such as the page's) still pass.
    paged = await privacy_center.client.get(
        path, params={"limit": "1", "offset": "0"}, headers=user
    )
    assert paged.status_code == 200, paged.text


# --------------------------------------------------------------------------- problem types


async def test_a_problems_type_resolves_to_its_page_at_the_gateway(
    privacy_center: GatewayUnderTest,
) -> None:
    client = privacy_center.client
    missing = await client.get("/consent/policy/versions/1999.9")
    assert missing.status_code == 404
    problem = missing.json()
    page_url = urljoin(str(missing.url), problem["type"])  # RFC 9457 3.1.1, RFC 3986 5
    assert page_url == "http://gateway/problems/policy-version-not-found"
    page = await client.get(page_url)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "No such policy version" in page.text and "404" in page.text
    assert "What to do" in page.text
    assert page.headers["etag"] and page.headers["cache-control"] == "public, max-age=86400"

    index = await client.get("/problems")
    assert index.status_code == 200
    for code in load_problem_catalogue().types:
        assert f'href="/problems/{code}"' in index.text
    # An old spelling a client may still hold leads to the code's page.
    old = await client.get("/problems/consent_required", follow_redirects=False)
    assert old.status_code == 301 and old.headers["location"] == "/problems/consent-required"
    assert "Consent required" in (await client.get("/problems/consent-required")).text
    unknown = await client.get("/problems/no-such-type")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"


def test_every_problem_type_any_app_can_emit_is_documented() -> None:
    documented = load_problem_catalogue().types
    emitted = emitted_codes()
    assert len(emitted) > 60  # the scan found the apps' errors

    missing = sorted(set(emitted) - set(documented))
    assert missing == [], f"undocumented problem types: {missing} (policy/problems.yaml)"
    for code, found in emitted.items():
        # NotificationRefused sets its status per reason: the catalogue lists them all.
        assert found.statuses <= set(documented[code].status) or code == "notification-refused", (
            code
        )
    unused = sorted(set(documented) - set(emitted))
    assert unused == [], f"documented but never emitted: {unused}"


def test_every_code_is_spelt_one_way() -> None:
    """Lower-case words joined by hyphens; OAuth 2.0's own codes as RFC 6749 spells them."""
    for code in emitted_codes():
        assert CODE_STYLE.match(code) or code in OAUTH_CODES, code
    aliases = load_problem_catalogue().aliases
    assert aliases == {
        "consent_required": "consent-required",
        "verification_required": "verification-required",
    }


def test_readme_lists_every_code_as_the_code_answers_it() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(
        r"<!-- problem-codes:start -->\n(.*?)<!-- problem-codes:end -->", readme, re.DOTALL
    )
    assert found, "README lost its problem-codes markers"
    assert found.group(1) == codes_table(), "run `python -m kit.problem_types` into README"
    assert (
        "| `consent-required` (was `consent_required`) | 403 | gateway, orders |" in codes_table()
    )


def test_the_problem_schema_takes_the_relative_type() -> None:
    body = json.loads(bytes(problem(404, code="not-found").body))
    assert body["type"] == "/problems/not-found"
    assert PROBLEM_SCHEMA["properties"]["type"]["format"] == "uri-reference"
