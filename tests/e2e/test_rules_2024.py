"""The rules in force since 2024 (issue 16, OB-L-1 ... OB-L-5), through the gateway of the
running suite as apps, partners and administrators drive them (see :mod:`tests.e2e.suite`).

1. The two lists (NDSMR art. 21): generated from the catalogue and the registries,
   versioned with the policy, served as JSON and as a page, diffable.
2. Restriction, explanation and portability as rights requests every service answers.
3. After account deletion, what is kept under a legal hold is storage-only: the gateway and
   each service refuse any other processing of it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import httpx
import pytest

from kit.catalogue import default_catalogue
from tests.e2e.conftest import Received
from tests.e2e.suite import Person, Suite, bearer

PARTICIPANTS = ["consent", "identity", "orders", "transfer"]


@pytest.mark.obligation("OB-L-1")
async def test_the_two_lists_follow_the_catalogue_and_a_new_partner_makes_a_new_version(
    suite: Suite,
) -> None:
    catalogue = default_catalogue()
    before = await suite.call("GET", "/consent/lists")
    policy = await suite.call("GET", "/consent/policy")
    assert before["policy_version"] == policy["version"]
    # Every personal category a resource holds is listed, with its purposes and retention.
    held = {
        field.category
        for resource in catalogue.resources.values()
        for field in resource.fields.values()
        if catalogue.category(field.category).personal
    }
    listed = {item["category"]: item for item in before["collected"]}
    assert set(listed) == held
    phone = listed["user.contact.phone_number"]
    assert "order.fulfilment" in phone["purposes"]
    assert "orders.order" in phone["functions"]
    assert "transaction_record" in [r["id"] for r in phone["retention"]]

    courier, _ = await suite.partner("logistics", "logistics.delivery")

    def names_courier(lists: Any) -> bool:
        return courier in [item["id"] for item in lists["shared"]]

    after = await suite.eventually("GET", "/consent/lists", names_courier, headers={})
    assert after["number"] > before["number"]
    assert after["policy_version"] == policy["version"]
    [entry] = [item for item in after["shared"] if item["id"] == courier]
    assert entry["kind"] == "partner"
    assert entry["purposes"] == ["logistics.delivery"]
    assert entry["method"] == "entrusted processing on our behalf"
    assert "user.contact.phone_number" in entry["categories"]
    assert entry["contact"]

    diff = await suite.call(
        "GET", "/consent/lists/diff", params={"from": before["number"], "to": after["number"]}
    )
    assert {"key": courier, "change": "added", "fields": []} in diff["shared"]
    assert diff["collected"] == []
    versions = await suite.call("GET", "/consent/lists/versions")
    assert [v["number"] for v in versions][:1] == [after["number"]]
    kept = await suite.call("GET", f"/consent/lists/versions/{before['number']}")
    assert kept["shared"] == before["shared"]
    page = await suite.client.get("/consent/lists.html")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert entry["recipient"] in page.text and "user.contact.phone_number" in page.text
    missing = await suite.client.get("/consent/lists/versions/999999")
    assert missing.status_code == 404
    assert missing.json()["type"].endswith("/problems/list-version-not-found")


# ---------------------------------------------------------------------------- helpers


async def _file(suite: Suite, user: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    filed: dict[str, Any] = await suite.call(
        "POST", "/consent/rights-requests", headers=user, json=body, expect=202
    )
    return filed


async def _answered_by_all(suite: Suite, user: dict[str, str], request_id: str) -> dict[str, Any]:
    done: dict[str, Any] = await suite.eventually(
        "GET",
        f"/consent/rights-requests/{request_id}",
        lambda request: request["status"] == "completed",
        headers=user,
    )
    assert sorted(p["service"] for p in done["participants"]) == PARTICIPANTS
    return done


async def _answer_becomes(
    suite: Suite, method: str, path: str, status: int, *, headers: dict[str, str], **kwargs: Any
) -> Any:
    """Poll until ``path`` answers ``status`` (every app learns from Kafka shortly after)."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        response = await suite.client.request(method, path, headers=headers, **kwargs)
        if response.status_code == status:
            return response.json() if response.content else None
        assert asyncio.get_running_loop().time() < deadline, f"{path}: {response.text}"
        await asyncio.sleep(0.3)


# ---------------------------------------------------------------------------- restriction


@pytest.mark.obligation("OB-L-2")
async def test_a_restricted_purpose_is_refused_by_the_gateway_and_the_service_until_lifted(
    suite: Suite,
) -> None:
    _, user = await suite.register(Person.new())
    await suite.call("GET", "/orders/orders", headers=user)
    filed = await _file(suite, user, {"kind": "restriction", "purposes": ["order.query"]})
    assert filed["restriction"]["purposes"] == ["order.query"]
    refused = await _answer_becomes(suite, "GET", "/orders/orders", 403, headers=user)
    assert refused["type"].endswith("/problems/processing-restricted")
    assert refused["purpose"] == "order.query"
    # Behind the gateway's back, the service refuses the same purpose itself.
    async with suite.direct("orders") as orders:
        direct = await orders.get("/orders", headers={**user, "X-Purpose": "order.query"})
    assert direct.status_code == 403
    assert direct.json()["type"].endswith("/problems/processing-restricted")
    # The user's rights stay open, and every service answers the request.
    done = await _answered_by_all(suite, user, filed["id"])
    assert {p["status"] for p in done["participants"]} == {"done"}

    lifted = await suite.call("POST", f"/consent/rights-requests/{filed['id']}/lift", headers=user)
    assert lifted["restriction"]["lifted_at"] is not None
    await _answer_becomes(suite, "GET", "/orders/orders", 200, headers=user)
    again = await suite.client.post(f"/consent/rights-requests/{filed['id']}/lift", headers=user)
    assert again.status_code == 409


@pytest.mark.obligation("OB-L-2")
async def test_a_restricted_category_is_refused_wherever_a_purpose_would_see_it(
    suite: Suite,
) -> None:
    _, user = await suite.register(Person.new())
    await suite.call("GET", "/identity/accounts/me", headers=user)
    filed = await _file(
        suite, user, {"kind": "restriction", "categories": ["user.contact.phone_number"]}
    )
    refused = await _answer_becomes(suite, "GET", "/identity/accounts/me", 403, headers=user)
    assert refused["categories"] == ["user.contact.phone_number"]
    # Functions that do not show the phone number go on.
    await suite.call("GET", "/consent/consents/me", headers=user)
    await suite.call("POST", f"/consent/rights-requests/{filed['id']}/lift", headers=user)
    await _answer_becomes(suite, "GET", "/identity/accounts/me", 200, headers=user)


@pytest.mark.obligation("OB-L-2")
async def test_a_restriction_names_only_purposes_and_categories_the_catalogue_allows(
    suite: Suite,
) -> None:
    _, user = await suite.register(Person.new())
    response = await suite.client.post(
        "/consent/rights-requests",
        headers=user,
        json={"kind": "restriction", "purposes": ["nosuch.purpose", "rights.access"],
              "categories": ["user.nosuch"]},
    )  # fmt: skip
    assert response.status_code == 422
    fields = {error["field"]: error["type"] for error in response.json()["errors"]}
    assert fields == {
        "body.purposes.0": "unknown_purpose",
        "body.purposes.1": "not_restrictable",
        "body.categories.0": "unknown_category",
    }
    empty = await suite.client.post(
        "/consent/rights-requests", headers=user, json={"kind": "restriction"}
    )
    assert empty.status_code == 422


@pytest.mark.obligation("OB-L-2")
async def test_a_staff_read_of_a_restricted_users_data_is_refused_by_the_gateway_itself(
    suite: Suite,
) -> None:
    goods = await suite.call(
        "POST", "/orders/admin/goods", headers=suite.admin,
        json={"name": f"Restricted tea {secrets.token_hex(3)}", "price": "12.00"}, expect=201,
    )  # fmt: skip
    person = Person.new()
    _, user = await suite.register(person)
    placed = await suite.call(
        "POST", "/orders/orders", headers={**user, "Idempotency-Key": secrets.token_hex(8)},
        json=person.order_body(goods["goods_id"]), expect=201,
    )  # fmt: skip
    text = f"Parcel {secrets.token_hex(6)} has not arrived."
    case = await suite.call(
        "POST", "/orders/support/cases", headers=user,
        json={"topic": "delivery", "order_id": placed["order_id"], "text": text}, expect=201,
    )  # fmt: skip
    agent_person = Person.new()
    await suite.call(
        "POST", "/identity/staff", headers=suite.admin,
        json={"phone": agent_person.phone, "password": agent_person.password,
              "roles": ["customer_service"]},
        expect=201,
    )  # fmt: skip
    agent = await suite.login(agent_person.phone, agent_person.password)
    path = f"/orders/support/agent/cases/{case['case_id']}"
    await suite.call("GET", path, headers=agent)

    await _file(suite, user, {"kind": "restriction", "purposes": ["customer_service"]})
    refused = await _answer_becomes(suite, "GET", path, 403, headers=agent)
    assert refused["type"].endswith("/problems/processing-restricted")
    assert refused["purpose"] == "customer_service"
    assert not [value for value in (text, person.name, person.phone)
                if value in json.dumps(refused, ensure_ascii=False)]  # fmt: skip
    # The refusal is the gateway's own: behind its back orders still answers the agent.
    async with suite.direct("orders") as orders:
        direct = await orders.get(
            f"/support/agent/cases/{case['case_id']}",
            headers={**agent, "X-Purpose": "customer_service"},
        )
    assert direct.status_code == 200
    assert direct.json()["case_id"] == case["case_id"]


async def test_every_app_is_ready_only_with_its_restriction_view_caught_up(suite: Suite) -> None:
    """An app that has not read ``consent.restrictions`` could serve a restricted or held
    subject's data: its ``/readyz`` says whether the view caught up (what a rollout and
    the suite wait for)."""
    for name, process in suite.processes.items():
        async with httpx.AsyncClient(base_url=process.ops_url, timeout=5.0) as client:
            readiness = (await client.get("/readyz")).json()
        view = readiness["checks"][f"loop:{name}.restrictions"]
        assert view == {"ok": True, "detail": {"caught_up": True}}, name


# ---------------------------------------------------------------------------- explanation


@pytest.mark.obligation("OB-L-3")
async def test_an_explanation_says_which_data_for_what_by_whom_on_which_basis_how_long(
    suite: Suite,
) -> None:
    _, user = await suite.register(Person.new())
    await suite.call("GET", "/identity/accounts/me", headers=user)
    await suite.eventually(
        "GET", "/consent/ledger/me", lambda page: page["total"] > 0, headers=user
    )
    filed = await _file(suite, user, {"kind": "explanation"})
    await _answered_by_all(suite, user, filed["id"])

    def explains_the_phone(body: Any) -> bool:
        return "user.contact.phone_number" in [c["category"] for c in body["categories"]]

    explanation = await suite.eventually(
        "GET",
        f"/consent/rights-requests/{filed['id']}/explanation",
        explains_the_phone,
        headers=user,
    )
    [phone] = [c for c in explanation["categories"] if c["category"] == "user.contact.phone_number"]
    assert phone["description"]
    account = [p for p in phone["purposes"] if p["purpose"] == "account"]
    assert account and account[0]["legal_basis"] == "contract / policy agreement"
    assert account[0]["by"]
    assert phone["retention"] and all(r["legal_basis"] for r in phone["retention"])
    other = await _file(suite, user, {"kind": "access"})
    wrong = await suite.client.get(
        f"/consent/rights-requests/{other['id']}/explanation", headers=user
    )
    assert wrong.status_code == 409


# ---------------------------------------------------------------------------- portability


@pytest.mark.obligation("OB-L-4")
async def test_portability_delivers_a_documented_copy_to_the_processor_the_user_names(
    suite: Suite, processor: tuple[str, Received]
) -> None:
    url, received = processor
    person = Person.new()
    account_id, user = await suite.register(person)
    refused = await suite.client.post(
        "/consent/rights-requests",
        headers=user,
        json={"kind": "portability", "destination": {"name": "Other shop",
                                                     "url": "http://other.example/import"}},
    )  # fmt: skip
    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["errors"]] == ["body.destination.url"]
    filed = await _file(
        suite, user, {"kind": "portability", "destination": {"name": "Other shop", "url": url}}
    )
    await _answered_by_all(suite, user, filed["id"])
    # Re-verification: the user signs in with the password again before the copy leaves.
    signed_in = bearer(
        (
            await suite.call(
                "POST",
                "/identity/login",
                json={"phone": person.phone, "password": person.password},
            )
        )["access_token"]
    )
    receipt = await suite.call(
        "POST", f"/consent/rights-requests/{filed['id']}/delivery", headers=signed_in
    )
    assert receipt["destination"] == "Other shop"
    assert set(receipt["services"]) == set(PARTICIPANTS)
    [(content_type, body)] = received
    assert content_type == receipt["format"] == "application/vnd.signature.portability.v1+json"
    copy = json.loads(body)
    assert copy["format"] == receipt["format"] and copy["subject"] == account_id
    assert person.phone in body.decode()  # the user's own data travels, to that processor
    assert "user.contact.phone_number" in receipt["categories"]
    for part in copy["left_out"]:
        assert part["reason"].startswith("collected under a legal obligation")
    wrong = await _file(suite, user, {"kind": "explanation"})
    other = await suite.client.post(
        f"/consent/rights-requests/{wrong['id']}/delivery", headers=signed_in
    )
    assert other.status_code == 409


# ---------------------------------------------------------------------------- legal hold


@pytest.mark.obligation("OB-L-5")
async def test_after_deletion_held_data_is_only_stored_and_each_service_refuses_processing(
    suite: Suite,
) -> None:
    admin = suite.admin
    goods = await suite.call(
        "POST", "/orders/admin/goods", headers=admin,
        json={"name": "Held tea", "price": "19.90"}, expect=201,
    )  # fmt: skip
    courier, courier_headers = await suite.partner("logistics", "logistics.delivery")
    person = Person.new()
    account_id, user = await suite.register(person)
    placed = await suite.call(
        "POST",
        "/orders/orders",
        headers={**user, "Idempotency-Key": secrets.token_hex(8)},
        json=person.order_body(goods["goods_id"]),
        expect=201,
    )
    order_id = placed["order_id"]
    await suite.pay(user, order_id)
    await suite.call(
        "PUT",
        f"/orders/admin/orders/{order_id}/partners",
        headers=admin,
        json={"logistics_partner_id": courier},
    )
    await suite.call("GET", f"/orders/partner/orders/{order_id}", headers=courier_headers)
    # Picked up: deleting the account no longer cancels the order, which stays on its way.
    await suite.call(
        "POST",
        f"/orders/partner/orders/{order_id}/delivery",
        headers=courier_headers,
        json={"status": "picked_up"},
    )

    deletion = await _file(suite, user, {"kind": "deletion"})

    def completed(requests: Any) -> bool:
        return deletion["id"] in [request["id"] for request in requests]

    # The account is closed with the deletion: the privacy officer follows the request.
    finished = await suite.eventually(
        "GET", "/consent/rights-requests?status=completed&limit=1000", completed, headers=admin
    )
    [done] = [request for request in finished if request["id"] == deletion["id"]]
    [orders_answer] = [p for p in done["participants"] if p["service"] == "orders"]
    assert orders_answer["kept"], "the open order's transaction record stays under a hold"

    # orders: the courier may no longer read the held order.
    held = await _answer_becomes(
        suite, "GET", f"/orders/partner/orders/{order_id}", 403, headers=courier_headers
    )
    assert held["type"].endswith("/problems/storage-only")
    page = await suite.call("GET", "/orders/partner/orders", headers=courier_headers)
    assert order_id not in [item["order_id"] for item in page["items"]]
    # transfer: nothing of the held data leaves the country.
    transfer = await _answer_becomes(
        suite, "POST", "/transfer/transfers", 403, headers=admin,
        json={"subject": account_id, "order_id": order_id, "recipient_id": "rcp_any",
              "categories": ["user.name"]},
    )  # fmt: skip
    assert transfer["type"].endswith("/problems/storage-only")
    # identity and the gateway: the account's own tokens are refused.
    closed = await suite.client.get("/identity/accounts/me", headers=user)
    assert closed.status_code == 401
    # Storage itself goes on: the order is still there for the legal hold.
    rows = await suite.sql("orders", "SELECT id FROM orders WHERE id = $1", order_id)
    assert [row["id"] for row in rows] == [order_id]
