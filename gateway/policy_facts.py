"""What the privacy center decided that the gateway enforces, learnt from its events on
``consent.events`` (design principle 4: enforcement survives the consent service being
down):

- ``com.signature.consent.policy.published.v1``: the newest *major* version in effect sets
  the sequence a user must have agreed to (else the renewal signal and 428, OB-5-3);
- ``com.signature.consent.purpose.ceased.v1``: a ceased purpose is refused with 410 from
  its effective date (OB-2J-1).

What identity revoked (closed accounts, revoked partners and service clients) every app
learns alike, the gateway included: :mod:`kit.revocation` (``app.state.revocations``).

The events are recorded in the gateway's own tables (so a restart knows them at once) and
mirrored in memory in :class:`PolicyFacts`, which the request path reads without I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import CeasedPurpose, KnownPolicyVersion
from kit.consumer import Handler
from kit.db import Database
from kit.events import Event

PUBLISHED = "com.signature.consent.policy.published.v1"
CEASED = "com.signature.consent.purpose.ceased.v1"


@dataclass(frozen=True)
class MajorVersion:
    version: str
    sequence: int
    effective_date: date


@dataclass
class PolicyFacts:
    majors: list[MajorVersion] = field(default_factory=list)
    ceased: dict[str, date] = field(default_factory=dict)

    def newest_major(self, *, today: date) -> MajorVersion | None:
        """The newest major version already in effect ``today``."""
        in_effect = [m for m in self.majors if m.effective_date <= today]
        return max(in_effect, key=lambda m: m.sequence, default=None)

    def is_ceased(self, purpose: str, *, today: date) -> bool:
        since = self.ceased.get(purpose)
        return since is not None and since <= today

    def learn_version(self, row: KnownPolicyVersion) -> None:
        if row.major and all(m.version != row.version for m in self.majors):
            self.majors.append(MajorVersion(row.version, row.sequence, row.effective_date))

    def learn_cessation(self, row: CeasedPurpose) -> None:
        self.ceased[row.purpose] = row.effective_date


async def load_facts(database: Database) -> PolicyFacts:
    facts = PolicyFacts()
    async with database.session() as session:
        for version in await session.scalars(select(KnownPolicyVersion)):
            facts.learn_version(version)
        for ceased in await session.scalars(select(CeasedPurpose)):
            facts.learn_cessation(ceased)
    return facts


async def refresh_facts(database: Database, facts: PolicyFacts) -> None:
    """Reread the tables into ``facts``. The workers of one gateway share one consumer
    group, so each event reaches one of them; the others learn it from the tables."""
    fresh = await load_facts(database)
    facts.majors[:] = fresh.majors
    facts.ceased.update(fresh.ceased)


def facts_handler(facts: PolicyFacts) -> Handler:
    """The consumer's handler: records the event, then updates ``facts``."""

    async def handle(session: AsyncSession, event: Event) -> None:
        if event.type == PUBLISHED:
            row = KnownPolicyVersion(
                version=str(event.data["version"]),
                sequence=int(event.data["sequence"]),
                major=bool(event.data["major"]),
                effective_date=date.fromisoformat(str(event.data["effective_date"])),
            )
            await session.merge(row)
            facts.learn_version(row)
        elif event.type == CEASED:
            ceased = CeasedPurpose(
                purpose=str(event.data["purpose"]),
                effective_date=date.fromisoformat(str(event.data["effective_date"])),
                cessation_id=str(event.data["cessation_id"]),
            )
            await session.merge(ceased)
            facts.learn_cessation(ceased)

    return handle
