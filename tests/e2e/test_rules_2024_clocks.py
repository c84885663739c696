"""The rules in force since 2024 (issue 16, OB-L-6 ... OB-L-14), through the gateway of
the running suite as apps and administrators drive them (see :mod:`tests.e2e.suite`):
deadlines on the Chinese calendar and the yearly statistics, cross-border volume tiers
and the security assessment's renewal, the regulator report's clock, the national network
identity, personalised recommendation off in one call, refusals not asked again."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from kit import workdays
from kit.clock import china_today
from kit.models import utcnow
from tests.e2e.suite import Person, Suite


def recipient_body(basis: dict[str, str]) -> dict[str, Any]:
    today = china_today()
    return {
        "legal_name": f"Harbour Freight {secrets.token_hex(3)} Pte. Ltd.",
        "contact": "Data Protection Officer, 1 Harbour Road, Singapore 099999",
        "country_region": "Singapore",
        "purpose": "Deliver the goods of cross-border orders to the buyer",
        "processing_method": "Stored encrypted in Singapore, deleted 90 days after delivery",
        "data_categories": ["user.contact.address"],
        "how_to_exercise_rights": "Ask the privacy center, quoting the waybill id",
        "dpa_reference": "DPA-2026-018",
        "public_key_pem": x25519.X25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
        "delivery": "kafka",
        "legal_basis": basis,
        "assessment": {"assessed_on": str(today - timedelta(days=10)), "result": "passed"},
    }


# ---------------------------------------------------------------------- rights deadlines


@pytest.mark.obligation("OB-L-6")
async def test_a_request_shows_its_due_date_on_the_chinese_calendar(suite: Suite) -> None:
    _, headers = await suite.register(Person.new())
    filed_on = china_today()
    filed = await suite.call(
        "POST", "/consent/rights-requests", headers=headers, json={"kind": "access"}, expect=202
    )
    expected = str(workdays.add_working_days(filed_on, 15))
    shown = await suite.call("GET", f"/consent/rights-requests/{filed['id']}", headers=headers)
    assert shown["due_date"] == expected


@pytest.mark.obligation("OB-L-14")
async def test_the_officer_reads_the_years_statistics_per_kind(suite: Suite) -> None:
    year = china_today().year

    async def access_row() -> dict[str, Any]:
        report = await suite.call(
            "GET", f"/consent/rights-requests/statistics?year={year}", headers=suite.admin
        )
        [row] = [item for item in report["kinds"] if item["kind"] == "access"]
        assert isinstance(row, dict)
        return row

    before = await access_row()
    _, headers = await suite.register(Person.new())
    filed = await suite.call(
        "POST", "/consent/rights-requests", headers=headers, json={"kind": "access"}, expect=202
    )
    await suite.eventually(
        "GET",
        f"/consent/rights-requests/{filed['id']}",
        lambda request: request["status"] == "completed",
        headers=headers,
    )
    after = await access_row()
    assert after["count"] == before["count"] + 1
    completed = await suite.call(
        "GET", "/consent/rights-requests?status=completed&limit=1000", headers=suite.admin
    )
    access = [r for r in completed if r["kind"] == "access" and r["filed_at"][:4] == str(year)]
    assert filed["id"] in [r["id"] for r in access]
    assert after["completed"] == len(access)
    assert after["overdue"] == before["overdue"] == 0
    assert after["max_working_days"] == 0  # answered the day they were filed
    refused = await suite.client.get(
        f"/consent/rights-requests/statistics?year={year}", headers=headers
    )
    assert refused.status_code == 403


# ---------------------------------------------------------------------- cross-border volume


@pytest.mark.obligation("OB-L-7")
async def test_a_transfer_that_would_cross_100000_persons_waits_and_admins_see_it(
    suite: Suite,
) -> None:
    today = china_today()
    recipient = await suite.call(
        "POST",
        "/transfer/recipients",
        headers=suite.admin,
        json=recipient_body(
            {
                "kind": "consent_only",
                "reference": "VOLUME-RECORD-2026-1",
                "decided_on": str(today - timedelta(days=30)),
                "review_due": str(today + timedelta(days=300)),
            }
        ),
        expect=201,
    )
    # As if 99,999 persons had been provided abroad this year already.
    await suite.sql(
        "transfer",
        "INSERT INTO volume_counter (year, sensitive, persons, updated_at) "
        "VALUES ($1, false, 99999, now()) "
        "ON CONFLICT (year, sensitive) DO UPDATE SET persons = 99999",
        today.year,
    )
    try:
        account_id, _ = await suite.register(Person.new())
        transfer = await suite.call(
            "POST",
            "/transfer/transfers",
            headers=suite.admin,
            json={
                "subject": account_id,
                "order_id": "ord_volume_1",
                "recipient_id": recipient["id"],
                "categories": ["user.contact.address"],
            },
            expect=202,
        )
        assert transfer["status"] == "awaiting_basis"
        assert transfer["reason"] == "volume_needs_standard_contract_or_certification"
        volume = await suite.call("GET", "/transfer/volume", headers=suite.admin)
        assert volume["year"] == today.year and volume["non_sensitive_persons"] == 99_999
        assert [(a["threshold"], a["reached"]) for a in volume["alerts"]] == [(100_000, False)]
    finally:
        await suite.sql(
            "transfer", "DELETE FROM volume_counter WHERE year = $1 AND NOT sensitive", today.year
        )


@pytest.mark.obligation("OB-L-8")
async def test_a_security_assessment_near_its_third_year_is_flagged_for_renewal(
    suite: Suite,
) -> None:
    decided = china_today() - timedelta(days=3 * 365 - 40)
    recipient = await suite.call(
        "POST",
        "/transfer/recipients",
        headers=suite.admin,
        json=recipient_body(
            {
                "kind": "security_assessment",
                "reference": "CAC-SA-2023-77",
                "decided_on": str(decided),
                "review_due": str(decided + timedelta(days=3 * 365 - 5)),
            }
        ),
        expect=201,
    )
    shown = await suite.call("GET", f"/transfer/recipients/{recipient['id']}", headers=suite.admin)
    assert "security_assessment_renewal_due" in shown["due"]
    assert shown["security_assessment_expires_on"] is not None and shown["may_receive"]


# ---------------------------------------------------------------------- incidents


@pytest.mark.obligation("OB-L-10")
async def test_a_major_incidents_report_shows_discovery_deadline_and_filing(
    suite: Suite,
) -> None:
    discovered = utcnow() - timedelta(minutes=20)
    recorded = await suite.call(
        "POST",
        "/consent/incidents",
        headers=suite.admin,
        json={
            "title": "Label printer exposed",
            "what_happened": "A label printer's queue was readable from the office network.",
            "impact": "Names and addresses on labels may have been seen.",
            "window_start": (discovered - timedelta(hours=2)).isoformat(),
            "window_end": discovered.isoformat(),
            "detected_at": discovered.isoformat(),
            "level": "major",
            "categories": ["user.contact"],
            "measures": "The queue was closed.",
            "advice": "Be wary of calls about parcels.",
            "remedies": "Ask customer service for compensation.",
            "contact": "privacy@signature.example",
        },
        expect=201,
    )
    assert recorded["regulator"]["status"] == "due"
    await suite.call(
        "POST",
        f"/consent/incidents/{recorded['id']}/regulator-filing",
        headers=suite.admin,
        json={"reference": "CAC-RX-2026-9"},
    )
    report = await suite.call(
        "GET", f"/consent/incidents/{recorded['id']}/regulator-report", headers=suite.admin
    )
    regulator = report["regulator"]
    assert regulator["status"] == "filed" and regulator["overdue"] is False
    assert regulator["discovered_at"] and regulator["deadline"] and regulator["filed_at"]


# ---------------------------------------------------------------------- network identity


@pytest.mark.obligation("OB-L-11")
async def test_a_user_authenticates_with_the_national_network_identity(suite: Suite) -> None:
    account_id, headers = await suite.register(Person.new())
    answer = await suite.call(
        "POST",
        "/identity/verifications/network-identity",
        headers=headers,
        json={"credential": f"sandbox-netid:{secrets.token_hex(8)}"},
        expect=201,
    )
    assert answer["kept"] == ["result", "level", "network_number", "verified_at"]
    me = await suite.call("GET", "/identity/accounts/me", headers=headers)
    assert me["verification_level"] == "real_name"
    [row] = await suite.sql(
        "identity", "SELECT * FROM network_identity WHERE account_id = $1", account_id
    )
    assert set(row.keys()) == {"account_id", "network_number", "level", "reference", "verified_at"}


# ---------------------------------------------------------------------- recommendation


async def _recommendation(suite: Suite, headers: dict[str, str], granted: bool) -> None:
    await suite.call(
        "POST",
        "/consent/consents",
        headers=headers,
        json={
            "purpose": "recommendation.personalised",
            "granted": granted,
            "shown": {"text": "Recommend goods from what you search, browse and buy?"},
        },
        expect=201,
    )


@pytest.mark.obligation("OB-L-12")
async def test_recommendation_off_in_one_call_deletes_the_users_tags(suite: Suite) -> None:
    mark = secrets.token_hex(4)
    goods = await suite.call(
        "POST",
        "/orders/admin/goods",
        headers=suite.admin,
        json={"name": f"Jade teapot {mark}", "price": "88.00"},
        expect=201,
    )
    _, headers = await suite.register(Person.new())
    await _recommendation(suite, headers, granted=True)
    deadline = asyncio.get_running_loop().time() + 30
    while True:  # once orders knows the consent, a search is tagged and feeds them
        await suite.call("POST", "/orders/search", headers=headers, json={"query": f"jade {mark}"})
        answer = await suite.client.get("/orders/search/recommendations", headers=headers)
        if answer.status_code == 200 and [g["goods_id"] for g in answer.json()["goods"]] == [
            goods["goods_id"]
        ]:
            break
        assert asyncio.get_running_loop().time() < deadline, answer.text
        await asyncio.sleep(0.3)

    await _recommendation(suite, headers, granted=False)  # the one call
    await _recommendation(suite, headers, granted=True)  # and consenting again later
    await suite.eventually(
        "GET",
        "/orders/search/recommendations",
        lambda body: body["goods"] == [],
        headers=headers,
    )


# ---------------------------------------------------------------------- refusals


@pytest.mark.obligation("OB-L-13")
async def test_a_refused_purpose_is_not_asked_again(suite: Suite) -> None:
    _, headers = await suite.register(Person.new())
    await suite.call(
        "POST",
        "/consent/consents",
        headers=headers,
        json={"purpose": "marketing.price_drop", "granted": False, "shown": {"text": "Remind?"}},
        expect=201,
    )
    prompts = await suite.call("GET", "/consent/consents/me/prompts", headers=headers)
    [price_drop] = [p for p in prompts if p["purpose"] == "marketing.price_drop"]
    assert price_drop["ask"] is False and price_drop["reason"] == "refused"
    [location] = [p for p in prompts if p["purpose"] == "location"]
    assert location["ask"] is True and location["reason"] == "never_decided"
