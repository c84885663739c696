"""Failure throttling, counted in the database so every worker sees it: the one home of
the guard each service puts in front of a check that could be guessed (identity's ID
number verifications, orders' membership checks in customer service).

:func:`guard` loads (or creates) one counter row per key in the service's own table (a
:class:`ThrottleRow`: ``key``, ``failures``, ``window_started_at``); past ``max_failures``
within ``window_s`` every attempt is refused (:class:`TooManyAttempts`, 429 with
``Retry-After``) until the window ends. The caller counts a failure with
:meth:`Throttle.fail`; the failure must then be committed with it (a ``DomainError`` with
``keep_changes``), or nothing is counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from kit.errors import DomainError
from kit.models import utcnow

__all__ = ["Throttle", "ThrottleRow", "TooManyAttempts", "guard"]


class TooManyAttempts(DomainError):
    status, code, title = 429, "too-many-attempts", "Too many failed attempts"


class ThrottleRow(Protocol):
    """A service's throttle table row."""

    key: str
    failures: int
    window_started_at: datetime

    def __init__(self, *, key: str, failures: int, window_started_at: datetime) -> None: ...


Row = TypeVar("Row", bound=ThrottleRow)


@dataclass
class Throttle(Generic[Row]):
    counters: list[Row]

    def fail(self) -> None:
        for counter in self.counters:
            counter.failures += 1

    def succeed(self, first_only: bool = True) -> None:
        """Clear the count of the first key (the phone, say), not of a shared address."""
        for counter in self.counters[: 1 if first_only else None]:
            counter.failures = 0


async def guard(
    session: AsyncSession,
    table: type[Row],
    keys: Iterable[str],
    *,
    max_failures: int,
    window_s: int,
    what: str,
) -> Throttle[Row]:
    """The counters of ``keys`` in ``table``; raises :class:`TooManyAttempts` (with
    ``Retry-After``) when any of them is spent."""
    now = utcnow()
    counters: list[Row] = []
    for key in keys:
        counter = await session.get(table, key)
        if counter is None:
            counter = table(key=key, failures=0, window_started_at=now)
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
