"""Cross-border volume tiers (OB-L-7). No HTTP here.

The CAC Provisions on Promoting and Regulating Cross-Border Data Flows (2024) decide the
legal basis a (non-CII) operator needs from how many persons' personal information it
provided abroad since 1 January of the year:

- fewer than 100,000 persons' non-sensitive personal information and none sensitive: no
  basis beyond the person's consent (``consent_only``);
- 100,000 to 999,999 persons' non-sensitive, or fewer than 10,000 persons' sensitive
  personal information: a standard contract or a certification;
- 1,000,000 persons' non-sensitive or 10,000 persons' sensitive personal information or
  more: a security assessment by the CAC.

Transfers necessary to perform a contract the person is party to (cross-border shopping,
delivery, payment: every order-event transfer; an administrator marks their own) are exempt
and not counted. Every other transfer counts its person once per year in each counter its
categories touch (sensitive if any category is sensitive, non-sensitive if any is not), when
it becomes ready. Before that, :func:`blocker` asks whether the counts *after* this person
would need a basis the recipient's basis does not cover; then the transfer waits
(``awaiting_basis``) with a reason naming the basis needed, until a stronger one is recorded.

A ``com.signature.transfer.volume.alert.v1`` event is published when a counter reaches 80 %
of a threshold and when it reaches the threshold; :func:`volume_view` shows the counters and
alerts to administrators.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit import contracts
from kit.consent_state import CROSS_BORDER_PURPOSE
from kit.models import utcnow
from kit.outbox import EventWriter
from services.transfer.models import Transfer, VolumeCounter, VolumePerson
from services.transfer.volume.schemas import Counter, Requirement, VolumeAlert, VolumeView

ALERT_EVENT: Final = "com.signature.transfer.volume.alert.v1"
ALERT_SHARE: Final = 0.8
NON_SENSITIVE_STANDARD: Final = 100_000
NON_SENSITIVE_ASSESSMENT: Final = 1_000_000
SENSITIVE_ASSESSMENT: Final = 10_000

RANK: Final[dict[Requirement, int]] = {
    "consent_only": 0,
    "standard_contract_or_certification": 1,
    "security_assessment": 2,
}
#: What each kind of legal basis covers.
COVERS: Final[dict[str, Requirement]] = {
    "consent_only": "consent_only",
    "standard_contract": "standard_contract_or_certification",
    "certification": "standard_contract_or_certification",
    "security_assessment": "security_assessment",
}


@dataclass(frozen=True)
class Threshold:
    counter: Counter
    persons: int
    requires: Requirement


THRESHOLDS: Final = (
    Threshold("non_sensitive", NON_SENSITIVE_STANDARD, "standard_contract_or_certification"),
    Threshold("non_sensitive", NON_SENSITIVE_ASSESSMENT, "security_assessment"),
    Threshold("sensitive", 1, "standard_contract_or_certification"),
    Threshold("sensitive", SENSITIVE_ASSESSMENT, "security_assessment"),
)


def required_basis(non_sensitive: int, sensitive: int) -> Requirement:
    """The basis a year with these counts needs."""
    if non_sensitive >= NON_SENSITIVE_ASSESSMENT or sensitive >= SENSITIVE_ASSESSMENT:
        return "security_assessment"
    if non_sensitive >= NON_SENSITIVE_STANDARD or sensitive > 0:
        return "standard_contract_or_certification"
    return "consent_only"


def covers(basis_kind: str, requirement: Requirement) -> bool:
    return RANK[COVERS.get(basis_kind, "consent_only")] >= RANK[requirement]


def counters_of(categories: Iterable[str], sensitive_categories: frozenset[str]) -> set[Counter]:
    """The counters a transfer of these categories counts its person in."""
    found: set[Counter] = set()
    for category in categories:
        found.add("sensitive" if category in sensitive_categories else "non_sensitive")
    return found


async def counts(session: AsyncSession, year: int) -> dict[Counter, int]:
    rows = await session.scalars(select(VolumeCounter).where(col(VolumeCounter.year) == year))
    found: dict[Counter, int] = {"non_sensitive": 0, "sensitive": 0}
    for row in rows:
        found["sensitive" if row.sensitive else "non_sensitive"] = row.persons
    return found


async def _new_counters(
    session: AsyncSession, *, year: int, subject: str, counters: set[Counter]
) -> set[Counter]:
    """Of ``counters``, those that have not counted ``subject`` this year yet."""
    new: set[Counter] = set()
    for counter in counters:
        key = (year, counter == "sensitive", subject)
        if await session.get(VolumePerson, key) is None:
            new.add(counter)
    return new


async def blocker(
    session: AsyncSession,
    transfer: Transfer,
    *,
    basis_kind: str,
    year: int,
    sensitive_categories: frozenset[str],
) -> str | None:
    """The reason the transfer must wait for a stronger legal basis, or None; exempt
    (contract-necessary) transfers never wait."""
    if transfer.contract_necessary:
        return None
    counters = counters_of(transfer.categories, sensitive_categories)
    new = await _new_counters(session, year=year, subject=transfer.subject, counters=counters)
    after = await counts(session, year)
    for counter in new:
        after[counter] += 1
    needed = required_basis(after["non_sensitive"], after["sensitive"])
    if covers(basis_kind, needed):
        return None
    return f"volume_needs_{needed}"


async def count(
    session: AsyncSession,
    transfer: Transfer,
    *,
    events: EventWriter,
    year: int,
    sensitive_categories: frozenset[str],
) -> None:
    """Count the transfer's person in this year's counters (once per year and counter);
    exempt transfers are not counted. Publishes an alert on reaching 80 % of a threshold
    and on reaching it."""
    if transfer.contract_necessary:
        return
    counters = counters_of(transfer.categories, sensitive_categories)
    for counter in await _new_counters(
        session, year=year, subject=transfer.subject, counters=counters
    ):
        sensitive = counter == "sensitive"
        session.add(
            VolumePerson(
                year=year, sensitive=sensitive, subject=transfer.subject, transfer_id=transfer.id
            )
        )
        row = await session.get(VolumeCounter, (year, sensitive), with_for_update=True)
        if row is None:
            row = VolumeCounter(year=year, sensitive=sensitive)
            session.add(row)
        row.persons += 1
        row.updated_at = utcnow()
        for threshold in THRESHOLDS:
            if threshold.counter != counter:
                continue
            alert_at = max(1, int(threshold.persons * ALERT_SHARE))
            if row.persons in {alert_at, threshold.persons}:
                events.add(
                    session,
                    type=ALERT_EVENT,
                    subject=f"volume-{year}",
                    purpose=CROSS_BORDER_PURPOSE,
                    data=contracts.VolumeAlert(
                        year=year,
                        counter=counter,
                        persons=row.persons,
                        threshold=threshold.persons,
                        reached=row.persons >= threshold.persons,
                        requires=threshold.requires,
                    ),
                )
    await session.flush()


def alerts(found: dict[Counter, int]) -> list[VolumeAlert]:
    """The thresholds within 80 % of being reached, or reached."""
    return [
        VolumeAlert(
            counter=threshold.counter,
            threshold=threshold.persons,
            persons=found[threshold.counter],
            share=round(found[threshold.counter] / threshold.persons, 4),
            reached=found[threshold.counter] >= threshold.persons,
            requires=threshold.requires,
        )
        for threshold in THRESHOLDS
        if threshold.persons > 1 and found[threshold.counter] >= threshold.persons * ALERT_SHARE
    ]


async def volume_view(session: AsyncSession, *, year: int, now: datetime) -> VolumeView:
    found = await counts(session, year)
    return VolumeView(
        year=year,
        non_sensitive_persons=found["non_sensitive"],
        sensitive_persons=found["sensitive"],
        requires=required_basis(found["non_sensitive"], found["sensitive"]),
        alerts=alerts(found),
        generated_at=now,
    )
