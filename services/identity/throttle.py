"""Failure throttling: failed logins per phone and per address, failed verifications per
account. Counts live in the database (``LoginThrottle``), so every worker sees them; past
``max_failures`` within ``window_s`` every attempt is refused until the window ends."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from kit.errors import DomainError
from kit.models import utcnow
from services.identity.models import LoginThrottle


class TooManyAttempts(DomainError):
    status, code, title = 429, "too-many-attempts", "Too many failed attempts"


@dataclass
class Throttle:
    counters: list[LoginThrottle]

    def fail(self) -> None:
        for counter in self.counters:
            counter.failures += 1

    def succeed(self, first_only: bool = True) -> None:
        """Clear the count of the first key (the phone, say), not of a shared address."""
        for counter in self.counters[: 1 if first_only else None]:
            counter.failures = 0


async def guard(
    session: AsyncSession, keys: Iterable[str], *, max_failures: int, window_s: int, what: str
) -> Throttle:
    """The counters of ``keys``; raises :class:`TooManyAttempts` (with ``Retry-After``)
    when any of them is spent."""
    now = utcnow()
    counters: list[LoginThrottle] = []
    for key in keys:
        counter = await session.get(LoginThrottle, key)
        if counter is None:
            counter = LoginThrottle(key=key, failures=0, window_started_at=now)
            session.add(counter)
        elif now - counter.window_started_at >= timedelta(seconds=window_s):
            counter.failures, counter.window_started_at = 0, now
        counters.append(counter)
    spent = [c for c in counters if c.failures >= max_failures]
    if spent:
        retry = max(window_s - (now - c.window_started_at).total_seconds() for c in spent)
        error = TooManyAttempts(f"too many failed {what}; try again later")
        error.headers = {"Retry-After": str(max(1, int(retry)))}
        raise error
    return Throttle(counters)
