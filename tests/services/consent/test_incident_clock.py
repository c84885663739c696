"""The regulator report's clock (OB-L-10, National Cybersecurity Incident Reporting
Measures): a reportable incident's report is due 4 hours after discovery (1 hour for a
critical information infrastructure operator); the incident and its regulator report show
discovery, deadline and filing, and an incident not reported in time is flagged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kit.models import utcnow
from kit.testing import UNREACHABLE_KAFKA, serve_app, trust_only
from services.consent.config import Settings
from tests.services.consent.conftest import ISSUER, KEY, Consent
from tests.services.consent.test_incidents import incident


async def record(consent: Consent, **changes: Any) -> dict[str, Any]:
    response = await consent.client.post(
        "/incidents", json=incident(**changes), headers=consent.privacy_officer()
    )
    assert response.status_code == 201, response.text
    recorded: dict[str, Any] = response.json()
    return recorded


async def file(consent: Consent, incident_id: str, reference: str = "CAC-RX-1") -> Any:
    return await consent.client.post(
        f"/incidents/{incident_id}/regulator-filing",
        json={"reference": reference},
        headers=consent.privacy_officer(),
    )


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.obligation("OB-L-10")
async def test_a_major_incident_is_due_four_hours_after_discovery_and_shows_it(
    consent: Consent,
) -> None:
    discovered = utcnow() - timedelta(minutes=30)
    recorded = await record(consent, level="major", detected_at=discovered.isoformat())
    clock = recorded["regulator"]
    assert instant(clock["discovered_at"]) == discovered
    assert instant(clock["deadline"]) == discovered + timedelta(hours=4)
    assert clock["status"] == "due" and clock["overdue"] is False

    filed = await file(consent, recorded["id"])
    assert filed.status_code == 200, filed.text
    report = await consent.client.get(
        f"/incidents/{recorded['id']}/regulator-report", headers=consent.privacy_officer()
    )
    regulator = report.json()["regulator"]
    assert regulator["status"] == "filed" and regulator["reference"] == "CAC-RX-1"
    assert instant(regulator["filed_at"]) <= discovered + timedelta(hours=4)
    events = [item["event"] for item in report.json()["timeline"]]
    assert "regulator report due" in events and "regulator report filed" in events


@pytest.mark.obligation("OB-L-10")
async def test_an_incident_not_reported_within_four_hours_is_flagged_overdue(
    consent: Consent,
) -> None:
    discovered = utcnow() - timedelta(hours=4, minutes=1)
    recorded = await record(consent, level="relatively_major", detected_at=discovered.isoformat())
    assert recorded["regulator"]["status"] == "overdue" and recorded["regulator"]["overdue"]
    listed = await consent.client.get("/incidents", headers=consent.privacy_officer())
    [row] = [item for item in listed.json() if item["id"] == recorded["id"]]
    assert row["regulator"]["overdue"] is True

    late = await file(consent, recorded["id"])
    assert late.json()["regulator"]["status"] == "filed_late"
    assert late.json()["regulator"]["overdue"] is True


@pytest.mark.obligation("OB-L-10")
async def test_a_general_incident_has_no_regulator_clock(consent: Consent) -> None:
    recorded = await record(consent)
    assert recorded["regulator"]["status"] == "not_required"
    assert recorded["regulator"]["deadline"] is None
    refused = await file(consent, recorded["id"])
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("/report-not-required")


@pytest.fixture
async def cii_consent(tmp_path: Path) -> AsyncIterator[Consent]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'consent.db'}",
        kafka_bootstrap_servers=UNREACHABLE_KAFKA,
        auth_issuer=ISSUER,
        log_json=False,
        first_policy_path=None,
        critical_infrastructure_operator=True,
    )
    async with serve_app("services.consent", settings) as (app, client):
        trust_only(app, KEY)
        yield Consent(app=app, client=client, settings=settings, key=KEY)


@pytest.mark.obligation("OB-L-10")
async def test_a_critical_infrastructure_operator_has_one_hour(cii_consent: Consent) -> None:
    discovered = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    recorded = await record(
        cii_consent, level="particularly_major", detected_at=discovered.isoformat()
    )
    assert instant(recorded["regulator"]["deadline"]) == discovered + timedelta(hours=1)
