"""Search and search history (policy 2B, OB-2B-1): goods found by text, each search kept
in the user's history (the words encrypted), shown to the user only, deletable one entry
at a time or all at once, and gone when the catalogue's search_history period ends.
Through the gateway: tests/e2e/test_search.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from kit.models import utcnow
from services.orders.models import SearchEntry
from services.orders.retention.schemas import SweepReport
from services.orders.retention.service import run_sweep
from tests.services.orders.conftest import Orders


async def search(orders: Orders, headers: dict[str, str], query: str) -> dict[str, Any]:
    answer = await orders.client.post("/search", json={"query": query}, headers=headers)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def history(orders: Orders, headers: dict[str, str]) -> list[str]:
    answer = await orders.client.get("/search/history", headers=headers)
    assert answer.status_code == 200, answer.text
    return [entry["query"] for entry in answer.json()["search_history"]]


@pytest.mark.obligation("OB-2B-1")
async def test_a_search_finds_goods_by_name_and_joins_the_owners_history(orders: Orders) -> None:
    await orders.add_goods("Longjing green tea", "99.90")
    await orders.add_goods("龙井茶 礼盒", "199.00")
    await orders.add_goods("Porcelain cups", "12.50")
    owner, headers = orders.user()
    _, other = orders.user()

    found = await search(orders, headers, "longjing")
    assert [g["name"] for g in found["goods"]] == ["Longjing green tea"]
    chinese = await search(orders, headers, "龙井")
    assert [g["name"] for g in chinese["goods"]] == ["龙井茶 礼盒"]
    none = await search(orders, headers, "100%_tea")  # LIKE wildcards are plain characters
    assert none["goods"] == []

    assert await history(orders, headers) == ["100%_tea", "龙井", "longjing"]
    assert await history(orders, other) == []
    # The words are stored only as ciphertext.
    assert b"longjing" not in orders.raw_database()
    events = [e for e in await orders.outbox_events() if e.subject == owner]
    searched = [e for e in events if e.type == "com.signature.orders.search.searched.v1"]
    assert [e.data["result_count"] for e in searched] == [1, 1, 0]
    assert all("longjing" not in str(e.data) for e in events)
    ledger = [e for e in events if ".personal_data." in e.type]
    assert {(e.data["action"], e.purpose, e.data["resource"]) for e in ledger} == {
        ("write", "search.basic", "orders.search")
    }


@pytest.mark.obligation("OB-2B-1")
async def test_the_owner_deletes_one_entry_or_the_whole_history(orders: Orders) -> None:
    _, headers = orders.user()
    _, other = orders.user()
    first = await search(orders, headers, "tea")
    await search(orders, headers, "cups")
    await search(orders, headers, "pot")

    refused = await orders.client.delete(f"/search/history/{first['entry_id']}", headers=other)
    assert refused.status_code == 404
    gone = await orders.client.delete(f"/search/history/{first['entry_id']}", headers=headers)
    assert gone.status_code == 204
    assert await history(orders, headers) == ["pot", "cups"]
    cleared = await orders.client.delete("/search/history", headers=headers)
    assert cleared.status_code == 200 and cleared.json() == {"deleted": 2}
    assert await history(orders, headers) == []


@pytest.mark.obligation("OB-2B-1")
async def test_entries_go_when_the_catalogues_search_history_period_ends(orders: Orders) -> None:
    _, headers = orders.user()
    await search(orders, headers, "old words")
    await search(orders, headers, "new words")
    async with orders.context.database.session() as session:
        old = await session.scalar(select(SearchEntry).order_by(col(SearchEntry.searched_at)))
        assert old is not None
        old.searched_at = utcnow() - timedelta(days=60)
    context = orders.context
    period = context.catalogue.retention_for("orders.search", "search_history")
    assert period.duration == "P90D"

    async def sweep_at(days: int) -> SweepReport:
        return await run_sweep(
            context.database,
            events=context.events,
            catalogue=context.catalogue,
            now=utcnow() + timedelta(days=days),
        )

    assert (await sweep_at(29)).search_entries_deleted == 0
    assert await history(orders, headers) == ["new words", "old words"]
    assert (await sweep_at(31)).search_entries_deleted == 1
    assert await history(orders, headers) == ["new words"]
