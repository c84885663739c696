"""Working days on the Chinese calendar (``kit.workdays``, OB-L-6): public holidays do not
count, make-up working days on a weekend do, and a year the holiday arrangement does not
cover yet is counted Monday to Friday."""

from __future__ import annotations

from datetime import date

import pytest

from kit import workdays


@pytest.mark.obligation("OB-L-6")
def test_national_day_and_its_make_up_days_are_counted_as_the_state_council_set_them() -> None:
    # 2026: 1-7 October off; Sunday 20 September and Saturday 10 October worked instead.
    assert not workdays.is_working_day(date(2026, 10, 1))  # a Thursday
    assert not workdays.is_working_day(date(2026, 10, 7))  # a Wednesday
    assert workdays.is_working_day(date(2026, 9, 20))  # a Sunday
    assert workdays.is_working_day(date(2026, 10, 10))  # a Saturday


@pytest.mark.obligation("OB-L-6")
def test_fifteen_working_days_across_national_day_end_a_week_later_than_weekdays_would() -> None:
    # Filed Friday 25 September 2026: Monday to Friday would end on 16 October; the holiday
    # week is skipped and the make-up Saturday counted, so the 15th working day is 22 October.
    assert workdays.add_working_days(date(2026, 9, 25), 15) == date(2026, 10, 22)


@pytest.mark.obligation("OB-L-6")
def test_working_days_between_counts_the_days_after_filing_up_to_the_answer() -> None:
    # Spring Festival 2026: 15-23 February off, Saturday 14 and 28 February worked.
    assert workdays.working_days_between(date(2026, 2, 13), date(2026, 2, 24)) == 2
    assert workdays.working_days_between(date(2026, 2, 24), date(2026, 2, 24)) == 0
    assert workdays.working_days_between(date(2026, 2, 27), date(2026, 3, 2)) == 2


@pytest.mark.obligation("OB-L-6")
def test_a_year_the_arrangement_does_not_cover_is_counted_monday_to_friday() -> None:
    year = 2100
    assert not workdays.covered(year)
    assert workdays.is_working_day(date(year, 1, 1))  # a Friday
    assert not workdays.is_working_day(date(year, 1, 2))  # a Saturday
    assert workdays.add_working_days(date(year, 1, 1), 1) == date(year, 1, 4)
