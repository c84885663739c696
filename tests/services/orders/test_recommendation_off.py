"""Personalised recommendation switched off in one step (OB-L-12; NDSMR art. 42, PIPL art.
24): the user's "no" at the privacy center reaches orders, which deletes their tags: the
searches that fed recommendations never feed them again, even after a later consent.
Through the gateway: tests/e2e/test_rules_2024.py."""

from __future__ import annotations

import pytest

from kit.events import new_event
from services.orders.search.consumers import CONSENT_CHANGED, recommendation_handler
from tests.services.orders.conftest import Orders

PURPOSE = "recommendation.personalised"


@pytest.mark.obligation("OB-L-12")
async def test_switching_recommendation_off_deletes_the_users_tags(orders: Orders) -> None:
    await orders.add_goods("Celadon bowl", "58.00")
    owner, headers = orders.user()
    orders.app.state.consent_granted = lambda subject, purpose: (
        (subject, purpose)
        == (
            owner,
            PURPOSE,
        )
    )
    searched = await orders.client.post("/search", json={"query": "celadon"}, headers=headers)
    assert searched.status_code == 200, searched.text
    before = await orders.client.get("/search/recommendations", headers=headers)
    assert [g["name"] for g in before.json()["goods"]] == ["Celadon bowl"]

    withdrawn = new_event(
        source="/consent",
        type=CONSENT_CHANGED,
        subject=owner,
        purpose="account",
        data={"purpose": PURPOSE, "granted": False, "receipt_id": "cr_1", "version": 2},
    )
    async with orders.context.database.session() as session:
        await recommendation_handler(orders.context)(session, withdrawn)

    after = await orders.client.get("/search/recommendations", headers=headers)
    assert after.status_code == 200 and after.json()["goods"] == []
    history = await orders.client.get("/search/history", headers=headers)
    assert [e["query"] for e in history.json()["search_history"]] == ["celadon"]
    ledger = [
        e
        for e in await orders.outbox_events()
        if e.subject == owner and e.type.endswith(".personal_data.delete.v1")
    ]
    assert [(e.purpose, e.data["resource"]) for e in ledger] == [(PURPOSE, "orders.search")]
