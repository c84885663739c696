"""What the privacy center decided that the gateway enforces, learnt from its events on
``consent.events`` (design principle 4: enforcement survives the consent service being
down):

- ``com.signature.consent.policy.published.v1``: the newest *major* version in effect sets
  the sequence a user must have agreed to (else the renewal signal and 428, OB-5-3);
- ``com.signature.consent.purpose.ceased.v1``: a ceased purpose is refused with 410 from
  its effective date (OB-2J-1).

and what identity revoked, on ``identity.events``: an account closed by a deletion request
(``identity.account.closed``), a partner or a service client revoked
(``identity.partner.revoked``, ``identity.service_client.revoked``). Their access tokens
stay valid until they expire (15 minutes by default), so the gateway refuses them with 401
from the moment it learns of the revocation (OB-4-2, OB-3-1).

The events are recorded in the gateway's own tables (so a restart knows them at once) and
mirrored in memory in :class:`PolicyFacts`, which the request path reads without I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import CeasedPurpose, KnownPolicyVersion, RevokedSubject
from kit.consumer import Handler
from kit.db import Database
from kit.events import Event

IDENTITY_SOURCE = "/identity"
PUBLISHED = "com.signature.consent.policy.published.v1"
CEASED = "com.signature.consent.purpose.ceased.v1"
#: identity's events that end every token of their subject, and the reason recorded.
REVOKING: dict[str, str] = {
    "com.signature.identity.account.closed.v1": "account_closed",
    "com.signature.identity.partner.revoked.v1": "partner_revoked",
    "com.signature.identity.service_client.revoked.v1": "service_client_revoked",
}


@dataclass(frozen=True)
class MajorVersion:
    version: str
    sequence: int
    effective_date: date


@dataclass
class PolicyFacts:
    majors: list[MajorVersion] = field(default_factory=list)
    ceased: dict[str, date] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)

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

    def is_revoked(self, subject: str) -> bool:
        return subject in self.revoked


async def load_facts(database: Database) -> PolicyFacts:
    facts = PolicyFacts()
    async with database.session() as session:
        for version in await session.scalars(select(KnownPolicyVersion)):
            facts.learn_version(version)
        for ceased in await session.scalars(select(CeasedPurpose)):
            facts.learn_cessation(ceased)
        facts.revoked.update(row.subject for row in await session.scalars(select(RevokedSubject)))
    return facts


async def refresh_facts(database: Database, facts: PolicyFacts) -> None:
    """Reread the tables into ``facts``. The workers of one gateway share one consumer
    group, so each event reaches one of them; the others learn it from the tables."""
    fresh = await load_facts(database)
    facts.majors[:] = fresh.majors
    facts.ceased.update(fresh.ceased)
    facts.revoked.update(fresh.revoked)


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
        elif event.type in REVOKING and event.source == IDENTITY_SOURCE:
            await session.merge(
                RevokedSubject(
                    subject=event.subject, reason=REVOKING[event.type], revoked_at=event.time
                )
            )
            facts.revoked.add(event.subject)

    return handle
