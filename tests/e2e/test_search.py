"""Search through the gateway, as the app does it (policy 2B): the words travel in the
body, the history is the user's to see and delete, its read is one ledger entry; and a
search made while the user refused personalised recommendation never feeds them, even
after a later consent."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest

from tests.e2e.suite import Person, Suite


async def _goods(suite: Suite, name: str) -> str:
    created = await suite.call(
        "POST", "/orders/admin/goods", headers=suite.admin, json={"name": name, "price": "58.00"},
        expect=201,
    )  # fmt: skip
    goods_id: str = created["goods_id"]
    return goods_id


async def _search(suite: Suite, headers: dict[str, str], words: str) -> dict[str, Any]:
    found: dict[str, Any] = await suite.call(
        "POST", "/orders/search", headers=headers, json={"query": words}
    )
    return found


@pytest.mark.obligation("OB-2B-1")
async def test_the_user_sees_and_deletes_their_search_history(suite: Suite) -> None:
    mark = secrets.token_hex(4)
    teapot = await _goods(suite, f"Yixing teapot {mark}")
    person = Person.new()
    _, headers = await suite.register(person)

    found = await _search(suite, headers, f"teapot {mark}")
    assert [g["goods_id"] for g in found["goods"]] == [teapot]
    await _search(suite, headers, person.search_words)
    shown = await suite.call("GET", "/orders/search/history", headers=headers)
    assert [e["query"] for e in shown["search_history"]] == [
        person.search_words,
        f"teapot {mark}",
    ]
    assert [e["result_count"] for e in shown["search_history"]] == [0, 1]
    # Someone else sees none of it.
    _, stranger = await suite.register(Person.new())
    assert (await suite.call("GET", "/orders/search/history", headers=stranger))[
        "search_history"
    ] == []

    # The read is one entry of the user's ledger, the gateway's, under search.basic.
    def settled(page: dict[str, Any]) -> bool:
        return any(
            e["purpose"] == "search.basic" and e["action"] == "read" for e in page["entries"]
        )

    page = await suite.eventually("GET", "/consent/ledger/me?limit=100", settled, headers=headers)
    reads = [
        (e["who"]["service"], e["who"]["kind"])
        for e in page["entries"]
        if e["purpose"] == "search.basic" and e["action"] == "read"
    ]
    assert reads == [("gateway", "self")]

    await suite.call(
        "DELETE", f"/orders/search/history/{found['entry_id']}", headers=headers, expect=204
    )
    shown = await suite.call("GET", "/orders/search/history", headers=headers)
    assert [e["query"] for e in shown["search_history"]] == [person.search_words]
    cleared = await suite.call("DELETE", "/orders/search/history", headers=headers)
    assert cleared == {"deleted": 1}
    assert (await suite.call("GET", "/orders/search/history", headers=headers))["count"] == 0


@pytest.mark.obligation("OB-0-1")
async def test_searches_made_without_the_recommendation_consent_never_feed_recommendations(
    suite: Suite,
) -> None:
    mark = secrets.token_hex(4)
    refused_goods = await _goods(suite, f"Celadon bowl {mark}")
    consented_goods = await _goods(suite, f"Bamboo whisk {mark}")
    person = Person.new()
    _, headers = await suite.register(person)

    # The user has not consented to personalised recommendation: search works the same...
    found = await _search(suite, headers, f"celadon {mark}")
    assert [g["goods_id"] for g in found["goods"]] == [refused_goods]
    # ...and recommendations are refused.
    refused = await suite.client.get("/orders/search/recommendations", headers=headers)
    assert refused.status_code == 403, refused.text
    assert refused.json()["type"].endswith("/consent-required")

    await suite.call(
        "POST",
        "/consent/consents",
        headers=headers,
        json={
            "purpose": "recommendation.personalised",
            "granted": True,
            "shown": {"text": "Recommend goods from what you search, browse and buy?"},
        },
        expect=201,
    )
    # Once the gateway and orders have learnt the consent, a new search feeds them.
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        await _search(suite, headers, f"whisk {mark}")
        answer = await suite.client.get("/orders/search/recommendations", headers=headers)
        names = [g["goods_id"] for g in answer.json().get("goods", [])]
        if answer.status_code == 200 and consented_goods in names:
            break
        assert asyncio.get_running_loop().time() < deadline, answer.text
        await asyncio.sleep(0.3)
    # The search made while the consent was refused is not among their sources.
    assert names == [consented_goods]
