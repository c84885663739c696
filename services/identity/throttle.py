"""Failure throttling, counted in the database (``LoginThrottle``) so every worker sees it.

- :func:`kit.throttle.guard` over ``LoginThrottle``: failed verifications per account;
  past ``max_failures`` within ``window_s`` every attempt is refused until the window ends.
- :class:`LoginGuard`: failed logins (OWASP "slow down online guessing attacks with
  device cookies"). An account is locked with backoff, for devices it never signed in on
  only; a device cookie has its own count and lock; a client address is slowed, never
  locked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from kit.models import utcnow
from kit.throttle import TooManyAttempts
from services.identity.models import LoginThrottle


@dataclass(frozen=True)
class LockRule:
    """After ``free`` failures, each further failure locks the key: ``first_s`` doubled
    per failure past ``free`` (``backoff``) or always ``first_s``, at most ``max_s``."""

    free: int
    first_s: int
    max_s: int
    backoff: bool

    def lock_s(self, failures: int) -> int:
        if failures < self.free:
            return 0
        steps = failures - self.free if self.backoff else 0
        return int(min(self.max_s, self.first_s * 2 ** min(steps, 32)))


@dataclass
class LoginGuard:
    """The counters of one login attempt, each with its rule."""

    keys: list[tuple[LoginThrottle, LockRule]]

    @classmethod
    async def load(
        cls, session: AsyncSession, rules: dict[str, LockRule], *, window_s: int
    ) -> LoginGuard:
        """The keys' counters (failures forgotten ``window_s`` after the last one, once no
        lock holds); raises :class:`TooManyAttempts` with ``Retry-After`` while any key is
        locked."""
        now = utcnow()
        keys: list[tuple[LoginThrottle, LockRule]] = []
        for key, rule in rules.items():
            counter = await session.get(LoginThrottle, key)
            if counter is None:
                counter = LoginThrottle(key=key, failures=0, window_started_at=now)
                session.add(counter)
            elif _quiet(counter, now, window_s):
                counter.failures, counter.locked_until = 0, None
            keys.append((counter, rule))
        waits = [
            (c.locked_until - now).total_seconds()
            for c, _ in keys
            if c.locked_until is not None and c.locked_until > now
        ]
        if waits:
            error = TooManyAttempts("too many failed logins; try again later")
            error.headers = {"Retry-After": str(max(1, math.ceil(max(waits))))}
            raise error
        return cls(keys)

    def fail(self) -> None:
        now = utcnow()  # after the password check, which takes its time
        for counter, rule in self.keys:
            counter.failures += 1
            counter.window_started_at = now  # the last failure
            lock = rule.lock_s(counter.failures)
            counter.locked_until = now + timedelta(seconds=lock) if lock else None

    def failures(self, key: str) -> int:
        """The failures counted against ``key`` now."""
        return next((counter.failures for counter, _ in self.keys if counter.key == key), 0)

    def succeed(self, key: str) -> None:
        """Clear the count of ``key`` (the account's or the device's, never an address's)."""
        for counter, _ in self.keys:
            if counter.key == key:
                counter.failures, counter.locked_until = 0, None


def _quiet(counter: LoginThrottle, now: datetime, window_s: int) -> bool:
    locked = counter.locked_until is not None and counter.locked_until > now
    return not locked and now - counter.window_started_at >= timedelta(seconds=window_s)
