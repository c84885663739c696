"""What a new user meets at the privacy center, through the gateway of the running suite
(real processes, PostgreSQL and Kafka; see :mod:`tests.e2e.suite`).

1. A fresh suite already has a policy: the shipped one, published at consent's first start,
   its first version; the one in effect names every purpose of the catalogue and a new user
   agrees to it right after registering.
2. A user who never agreed is asked to agree before shopping, as if they had agreed to an
   older version.
3. A problem answer names the path the client called, not the service's own path.
4. After a major change the user has not agreed to, shopping waits while every right stays
   open: the account, consents, the ledger, notices, transfers, rights requests and their
   export, withdrawing everything and deleting the account.

The last test publishes a major version, which every user of the suite must then agree to
(``Suite.register`` agrees to the version in effect), so it runs last in this module.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import yaml

from kit.catalogue import default_catalogue
from kit.clock import china_today
from kit.settings import REPO_ROOT
from tests.e2e.suite import Person, Suite

SHIPPED_POLICY = REPO_ROOT / "policy" / "privacy-policy.yaml"
RENEWAL_HEADER = "x-policy-renewal-required"


async def _answer_becomes(
    suite: Suite, method: str, path: str, status: int, *, headers: dict[str, str]
) -> httpx.Response:
    """Poll until the gateway answers ``status`` (it learns from Kafka shortly after)."""
    deadline = asyncio.get_running_loop().time() + 30
    while (response := await suite.client.request(method, path, headers=headers)).status_code != (
        status
    ):
        assert asyncio.get_running_loop().time() < deadline, f"{path}: {response.text}"
        await asyncio.sleep(0.3)
    return response


async def _newest_major_in_effect(suite: Suite) -> str:
    """The version a user must have agreed to before shopping: the newest major one in
    effect (the suite's other tests may have published minor or major ones since its start)."""
    archive = await suite.call("GET", "/consent/policy/versions")
    majors = [v for v in archive if v["major"] and v["effective_date"] <= str(china_today())]
    newest: str = max(majors, key=lambda v: v["sequence"])["version"]
    return newest


@pytest.mark.obligation("OB-5-1")
async def test_a_fresh_suite_serves_its_first_policy_and_a_new_user_agrees_to_it(
    suite: Suite,
) -> None:
    shipped = yaml.safe_load(SHIPPED_POLICY.read_text(encoding="utf-8"))
    # The first version is the shipped one, whatever the suite's other tests published
    # since (they share it): each test reads the version in effect rather than assume one.
    archive = await suite.call("GET", "/consent/policy/versions")
    first = min(archive, key=lambda version: version["sequence"])
    assert first["version"] == shipped["version"]
    published = await suite.call("GET", f"/consent/policy/versions/{first['version']}")
    assert published["text"] == shipped["text"]
    policy = await suite.call("GET", "/consent/policy")
    assert policy["effective_date"] <= str(china_today())
    # Written from the catalogue: every purpose it declares is explained to the user.
    unexplained = [p.id for p in default_catalogue().purposes if f"`{p.id}`" not in policy["text"]]
    assert unexplained == []
    page = await suite.client.get("/consent/policy.html")
    assert page.status_code == 200 and "Privacy policy" in page.text

    _, user = await suite.register(Person.new(), agree=False)
    before = await suite.call("GET", "/consent/policy/agreements/me", headers=user)
    assert before["renewal_required"] and before["reason"] == "never_agreed"
    await suite.call(
        "POST",
        "/consent/policy/agreements",
        headers=user,
        json={"version": policy["version"]},
        expect=201,
    )
    after = await suite.call("GET", "/consent/policy/agreements/me", headers=user)
    assert not after["renewal_required"]
    assert [a["version"] for a in after["agreements"]] == [policy["version"]]


@pytest.mark.obligation("OB-5-3")
async def test_a_user_who_never_agreed_is_asked_to_agree_before_shopping(suite: Suite) -> None:
    version = await _newest_major_in_effect(suite)
    _, user = await suite.register(Person.new(), agree=False)
    refused = await suite.client.get("/orders/cart", headers=user)
    assert refused.status_code == 428, refused.text
    assert refused.headers[RENEWAL_HEADER] == version
    assert 'rel="privacy-policy"' in refused.headers["link"]
    assert refused.json()["instance"] == "/orders/cart"
    # The policy and the user's rights answer meanwhile.
    mine = await suite.client.get("/consent/policy/agreements/me", headers=user)
    assert mine.status_code == 200 and mine.headers[RENEWAL_HEADER] == version

    # The user agrees to the version in effect (a minor one after that major one counts).
    current = (await suite.call("GET", "/consent/policy"))["version"]
    await suite.call(
        "POST", "/consent/policy/agreements", headers=user, json={"version": current}, expect=201
    )
    cart = await _answer_becomes(suite, "GET", "/orders/cart", 200, headers=user)
    assert RENEWAL_HEADER not in cart.headers


async def test_a_problem_names_the_path_the_client_called(suite: Suite) -> None:
    _, user = await suite.register(Person.new())
    missing = await suite.client.get("/consent/rights-requests/rr_nosuchrequest", headers=user)
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert missing.json()["instance"] == "/consent/rights-requests/rr_nosuchrequest"
    invalid = await suite.client.post("/orders/orders", headers=user, json={"items": []})
    assert invalid.status_code == 422
    problem = invalid.json()
    assert problem["instance"] == "/orders/orders"
    assert "body.consignee_name" in {error["field"] for error in problem["errors"]}


@pytest.mark.obligation("OB-5-3")
async def test_refusing_a_new_policy_never_blocks_the_users_rights(suite: Suite) -> None:
    account_id, user = await suite.register(Person.new())
    await suite.call(
        "POST",
        "/consent/consents",
        headers=user,
        json={"purpose": "location", "granted": True, "shown": {"text": "Allow location?"}},
        expect=201,
    )
    current = await suite.call("GET", "/consent/policy")
    changed = f"{current['version']}-r"
    await suite.call(
        "POST",
        "/consent/policy/versions",
        headers=suite.admin,
        json={
            "version": changed,
            "effective_date": str(china_today()),
            "text": current["text"] + "\n## 10. A new recipient\n\nA new partner kind.\n",
            "summary_of_changes": "A new kind of recipient.",
            "major": True,
            "major_change_kinds": ["sharing_recipients"],
            "reduces_rights": False,
        },
        expect=201,
    )
    # Once the gateway learns of the change, shopping waits for the user's agreement.
    waiting = await _answer_becomes(suite, "GET", "/orders/cart", 428, headers=user)
    assert waiting.headers[RENEWAL_HEADER] == changed

    async def right(method: str, path: str, status: int, body: Any = None) -> Any:
        response = await suite.client.request(method, path, headers=user, json=body)
        assert response.status_code == status, f"{method} {path}: {response.text}"
        assert response.headers[RENEWAL_HEADER] == changed, path
        return response.json()

    assert (await right("GET", "/identity/accounts/me", 200))["account_id"] == account_id
    await right("GET", "/consent/policy/agreements/me", 200)
    await right("GET", "/consent/consents/me", 200)
    await right("GET", "/consent/consents/me/receipts", 200)
    await right("GET", "/consent/ledger/me", 200)
    await right("GET", "/consent/notices/me", 200)
    await right("GET", "/transfer/transfers/me", 200)
    withdrawn = {"purpose": "location", "granted": False, "shown": {"text": "Allow location?"}}
    await right("POST", "/consent/consents", 201, withdrawn)
    access = await right("POST", "/consent/rights-requests", 202, {"kind": "access"})
    await right("GET", f"/consent/rights-requests/{access['id']}", 200)
    await right("GET", "/consent/rights-requests/me", 200)
    await right("POST", "/consent/rights-requests", 202, {"kind": "withdraw_all"})
    deletion = await right("POST", "/consent/rights-requests", 202, {"kind": "deletion"})
    assert deletion["kind"] == "deletion" and deletion["status"] == "open"
    # Shopping still waits.
    order = await suite.client.post("/orders/orders", headers=user, json={"items": []})
    assert order.status_code == 428
