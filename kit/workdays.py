"""Working days on the Chinese calendar (OB-L-6): the one home of working-day arithmetic.

A working day is one the State Council's yearly holiday arrangement makes a working day:
Monday to Friday unless a public holiday (or a day of its bridge) falls on it, and the
weekend days it names as make-up working days (调休). The arrangement comes from the
``chinese-calendar`` package, which is released each year once the State Council publishes
the next year's; keep it up to date (``pip install -U chinese-calendar``).

For a year the installed package does not cover yet, days are counted Monday to Friday
(and :func:`covered` says so): a deadline reaching into such a year is never later than the
law's, only possibly earlier.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from functools import cache
from typing import Final

import chinese_calendar

logger = logging.getLogger("kit.workdays")

#: The most days a count may walk before giving up (guards against a bad argument).
_MAX_SPAN_DAYS: Final = 366 * 10


@cache
def covered(year: int) -> bool:
    """Whether the installed holiday arrangement covers ``year``."""
    try:
        chinese_calendar.is_workday(date(year, 6, 1))
    except NotImplementedError:
        logger.warning(
            "chinese-calendar has no holiday arrangement for %d yet: counting Monday to "
            "Friday for that year (update the package)",
            year,
        )
        return False
    return True


def is_working_day(day: date) -> bool:
    """Whether ``day`` is a working day in mainland China (holidays and make-up days
    counted; Monday to Friday for a year not covered yet)."""
    if covered(day.year):
        return bool(chinese_calendar.is_workday(day))
    return day.weekday() < 5


def add_working_days(start: date, days: int) -> date:
    """The ``days``-th working day after ``start`` (``start`` itself never counts)."""
    if days < 1:
        raise ValueError("days must be at least 1")
    day, counted = start, 0
    for _ in range(_MAX_SPAN_DAYS):
        day += timedelta(days=1)
        if is_working_day(day):
            counted += 1
            if counted == days:
                return day
    raise ValueError("too many working days to count")


def working_days_between(start: date, end: date) -> int:
    """How many working days come after ``start`` up to and including ``end`` (0 when
    ``end`` is not after ``start``): the working days a request filed on ``start`` and
    answered on ``end`` took."""
    if end <= start:
        return 0
    if (end - start).days > _MAX_SPAN_DAYS:
        raise ValueError("too long a span to count")
    return sum(
        1
        for offset in range(1, (end - start).days + 1)
        if is_working_day(start + timedelta(days=offset))
    )
