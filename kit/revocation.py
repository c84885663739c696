"""Revoked subjects, learnt from identity's events by every app (issue 23 item 5).

An access token stays valid until it expires (at most ``MAX_TOKEN_LIFETIME_S``: identity
issues none longer). When identity closes an account (``identity.account.closed``) or
revokes a partner or a service client (``identity.partner.revoked``,
``identity.service_client.revoked``), every app refuses that subject's tokens still in
date with 401 from the moment it reads the event: the gateway and each service alike, so a
caller that reaches a service directly gets no further than through the gateway.

- :class:`Revocations`: the set the request path reads without I/O
  (``app.state.revocations``; :func:`kit.auth.current_principal` and the gateway consult
  it). An entry leaves once every token it could cover has expired: ``expires_at`` is the
  revocation time plus ``revocation_keep_s`` (the longest token lifetime and the clock
  leeway), when no token issued before the revocation can still be valid.
- :func:`revocation_loops`: the consumer of ``identity.events`` (only identity's own
  events of those types count; anyone else's are ignored) that records each revocation in
  the app's ``revocation`` table, and a periodic task that rereads the table (the workers
  of one app share one consumer group, so each event reaches one of them) and deletes the
  entries past their time. A restart loads the table before serving.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit.background import BackgroundLoop, PeriodicTask
from kit.consumer import EventConsumer, Handler
from kit.db import Database
from kit.events import Event
from kit.models import Revocation

IDENTITY_SOURCE: Final = "/identity"
#: identity's events that end every token of their subject, and the reason recorded.
REVOKING: Final[dict[str, str]] = {
    "com.signature.identity.account.closed.v1": "account_closed",
    "com.signature.identity.partner.revoked.v1": "partner_revoked",
    "com.signature.identity.service_client.revoked.v1": "service_client_revoked",
}
#: The longest lifetime identity gives an access token (``*_TOKEN_TTL_S`` are capped there).
MAX_TOKEN_LIFETIME_S: Final = 3600


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Revocations:
    """Subjects whose tokens are refused, each until its ``expires_at``."""

    def __init__(self, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._until: dict[str, datetime] = {}
        self.clock = clock

    def __len__(self) -> int:
        return len(self._until)

    def __contains__(self, subject: object) -> bool:
        return subject in self._until

    def is_revoked(self, subject: str) -> bool:
        until = self._until.get(subject)
        return until is not None and self.clock() < until

    def learn(self, subject: str, expires_at: datetime) -> None:
        self._until[subject] = max(expires_at, self._until.get(subject, expires_at))

    def prune(self) -> int:
        """Forget the entries whose tokens have all expired; how many went."""
        now = self.clock()
        gone = [subject for subject, until in self._until.items() if until <= now]
        for subject in gone:
            del self._until[subject]
        return len(gone)


def wants_revocations(event: Event) -> bool:
    return event.type in REVOKING and event.source == IDENTITY_SOURCE


def revocation_handler(revocations: Revocations, *, keep_s: float) -> Handler:
    """The consumer's handler: records identity's revocation, then updates the set."""

    async def handle(session: AsyncSession, event: Event) -> None:
        if not wants_revocations(event):
            return  # another type, or another source claiming identity's event types
        revoked_at = event.time or revocations.clock()
        expires_at = revoked_at + timedelta(seconds=keep_s)
        await session.merge(
            Revocation(
                subject=event.subject,
                reason=REVOKING[event.type],
                revoked_at=revoked_at,
                expires_at=expires_at,
            )
        )
        revocations.learn(event.subject, expires_at)

    return handle


async def load_revocations(database: Database, revocations: Revocations) -> None:
    """Add the table's entries not yet expired to ``revocations``. Never a replacement: an
    entry the consumer has just learnt may not be committed yet, and an entry leaves the set
    only by :meth:`Revocations.prune`, when its time has come."""
    async with database.session(reads_only=True) as session:
        rows = await session.scalars(
            select(Revocation).where(col(Revocation.expires_at) > revocations.clock())
        )
        for row in rows:
            revocations.learn(row.subject, row.expires_at)


async def prune_revocations(database: Database, revocations: Revocations) -> None:
    """Delete the expired entries from the table and the set; reread what siblings
    learnt."""
    async with database.session() as session:
        await session.execute(
            delete(Revocation).where(col(Revocation.expires_at) <= revocations.clock())
        )
    revocations.prune()
    await load_revocations(database, revocations)


def revocation_loops(
    *,
    name: str,
    topic: str,
    database: Database,
    bootstrap_servers: str,
    revocations: Revocations,
    keep_s: float,
    refresh_s: float,
) -> list[BackgroundLoop]:
    """The consumer of identity's events and the periodic reread-and-prune."""
    return [
        EventConsumer(
            name=name,
            topics=[topic],
            database=database,
            bootstrap_servers=bootstrap_servers,
            handler=revocation_handler(revocations, keep_s=keep_s),
            wants=wants_revocations,
        ),
        PeriodicTask(
            f"{name}-prune",
            interval_s=refresh_s,
            job=lambda: prune_revocations(database, revocations),
        ),
    ]


__all__ = [
    "MAX_TOKEN_LIFETIME_S",
    "REVOKING",
    "Revocations",
    "load_revocations",
    "prune_revocations",
    "revocation_handler",
    "revocation_loops",
]
