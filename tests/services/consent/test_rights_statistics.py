"""Rights requests on the Chinese calendar (OB-L-6) and their yearly statistics (OB-L-14):
the deadline shown on a request skips public holidays and counts make-up working days;
the privacy officer reads, per kind and year, how many requests came, the median and
longest number of working days they took and how many were late."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import col

from kit.clock import CHINA_TZ
from services.consent.rights import service
from services.consent.rights.models import RightsRequest
from tests.services.consent.conftest import Consent


def cst(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), CHINA_TZ).astimezone(UTC)


async def file(consent: Consent, headers: dict[str, str], kind: str) -> str:
    response = await consent.client.post("/rights-requests", json={"kind": kind}, headers=headers)
    assert response.status_code == 202, response.text
    request_id: str = response.json()["id"]
    return request_id


async def happened(
    consent: Consent, request_id: str, *, filed: date, completed: date | None
) -> None:
    """Move a request's history to the given days (as if filed and answered then)."""
    filed_at = cst(filed)
    values: dict[str, Any] = {
        "filed_at": filed_at,
        "deadline": service.deadline_after(filed_at, consent.settings.rights_deadline_working_days),
    }
    if completed is not None:
        values |= {"status": "completed", "completed_at": cst(completed, 16)}
    async with consent.context.database.session() as session:
        await session.execute(
            update(RightsRequest).where(col(RightsRequest.id) == request_id).values(**values)
        )


@pytest.mark.obligation("OB-L-6")
def test_a_request_filed_before_national_day_is_due_after_the_holiday_week() -> None:
    deadline = service.deadline_after(cst(date(2026, 9, 25)), 15)
    assert service.due_date(deadline) == date(2026, 10, 22)
    assert deadline == datetime(2026, 10, 23, tzinfo=CHINA_TZ)


@pytest.mark.obligation("OB-L-6")
async def test_the_officer_sees_the_due_date_of_every_open_request(consent: Consent) -> None:
    _, headers = consent.user()
    request_id = await file(consent, headers, "access")
    await happened(consent, request_id, filed=date(2026, 9, 25), completed=None)
    listed = await consent.client.get(
        "/rights-requests", params={"status": "overdue"}, headers=consent.privacy_officer()
    )
    assert listed.status_code == 200, listed.text
    [row] = [r for r in listed.json() if r["id"] == request_id]
    assert row["due_date"] == "2026-10-22"
    assert row["status"] == "overdue"


@pytest.mark.obligation("OB-L-14")
async def test_yearly_statistics_give_count_median_maximum_and_overdue_per_kind(
    consent: Consent,
) -> None:
    _, headers = consent.user()
    # access: 2 working days (across Spring Festival), 4, and 16 (late); one of 2025.
    history = [
        ("access", date(2026, 2, 13), date(2026, 2, 24)),
        ("access", date(2026, 3, 2), date(2026, 3, 6)),
        ("access", date(2026, 9, 25), date(2026, 10, 23)),
        ("access", date(2025, 12, 30), date(2026, 1, 5)),
        # deletion: one answered in 1 working day, one still open past its deadline.
        ("deletion", date(2026, 5, 11), date(2026, 5, 12)),
        ("deletion", date(2026, 6, 1), None),
    ]
    for kind, filed, completed in history:
        await happened(
            consent, await file(consent, headers, kind), filed=filed, completed=completed
        )
    response = await consent.client.get(
        "/rights-requests/statistics", params={"year": 2026}, headers=consent.privacy_officer()
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["year"] == 2026
    assert report["deadline_working_days"] == 15
    kinds = {row.pop("kind"): row for row in report["kinds"]}
    assert kinds["access"] == {
        "count": 3,
        "completed": 3,
        "median_working_days": 4,
        "max_working_days": 16,
        "overdue": 1,
    }
    assert kinds["deletion"] == {
        "count": 2,
        "completed": 1,
        "median_working_days": 1,
        "max_working_days": 1,
        "overdue": 1,
    }
    assert kinds["correction"] == {
        "count": 0,
        "completed": 0,
        "median_working_days": None,
        "max_working_days": None,
        "overdue": 0,
    }


@pytest.mark.obligation("OB-L-14")
async def test_statistics_are_for_the_privacy_officer_only(consent: Consent) -> None:
    _, headers = consent.user()
    response = await consent.client.get(
        "/rights-requests/statistics", params={"year": 2026}, headers=headers
    )
    assert response.status_code == 403
