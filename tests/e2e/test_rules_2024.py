"""The rules in force since 2024 (issue 16, OB-L-1 ... OB-L-5), through the gateway of the
running suite as apps, partners and administrators drive them (see :mod:`tests.e2e.suite`).

1. The two lists (NDSMR art. 21): generated from the catalogue and the registries,
   versioned with the policy, served as JSON and as a page, diffable.
"""

from __future__ import annotations

from typing import Any

import pytest

from kit.catalogue import default_catalogue
from tests.e2e.suite import Suite


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
