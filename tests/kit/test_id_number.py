"""Resident ID numbers (GB 11643-1999): what is accepted, what is refused and why (the
reason is named, the number never echoed), and ages derived from the birth date (OB-2A-4).
"""

from __future__ import annotations

from datetime import date

import pytest

from kit.id_number import (
    InvalidIdNumber,
    age_on,
    birth_date,
    turns_14_on,
    validate_id_number,
)
from tests.services.identity.ids import with_check

TODAY = date(2025, 6, 1)


GOOD_X = with_check("11010519491231002")  # the textbook example, check character X
GOOD_DIGIT = with_check("44030519900307123")


def test_the_test_numbers_are_what_they_claim() -> None:
    assert GOOD_X == "11010519491231002X"
    assert GOOD_DIGIT[-1].isdigit()


@pytest.mark.obligation("OB-2A-2")
@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param(GOOD_X, GOOD_X, id="good-with-X"),
        pytest.param(GOOD_X.lower(), GOOD_X, id="lower-case-x-normalised"),
        pytest.param(f"  {GOOD_DIGIT} ", GOOD_DIGIT, id="good-numeric-stripped"),
        pytest.param(with_check("81000019800101123"), None, id="hong-kong-81"),
        pytest.param(with_check("83000019800101123"), None, id="taiwan-residence-permit-83"),
        pytest.param(with_check("11010519000101123"), None, id="born-1900-01-01"),
        pytest.param(with_check("11010520250601123"), None, id="born-today"),
    ],
)
def test_valid_numbers_are_accepted(given: str, expected: str | None) -> None:
    assert validate_id_number(given, today=TODAY) == (expected or given)


@pytest.mark.obligation("OB-2A-2")
@pytest.mark.parametrize(
    ("given", "reason"),
    [
        pytest.param(GOOD_X[:-1] + "1", "checksum", id="bad-checksum"),
        pytest.param(GOOD_DIGIT[:5] + "9" + GOOD_DIGIT[6:], "checksum", id="mistyped-digit"),
        pytest.param(with_check("11010519990230123"), "birth_date", id="19990230"),
        pytest.param(with_check("11010519991301123"), "birth_date", id="month-13"),
        pytest.param(with_check("11010520250602123"), "birth_date", id="future-date"),
        pytest.param(with_check("11010518991231123"), "birth_date", id="before-1900"),
        pytest.param(with_check("99010519800101123"), "region", id="region-99"),
        pytest.param(with_check("10010519800101123"), "region", id="region-10"),
        pytest.param(with_check("72010519800101123"), "region", id="region-72"),
        pytest.param("110105491231002", "legacy", id="15-digit-legacy"),
        pytest.param(GOOD_X[:-1], "length", id="17-characters"),
        pytest.param(GOOD_X + "0", "length", id="19-characters"),
        pytest.param("", "length", id="empty"),
        pytest.param("11010519A91231002X", "characters", id="letter-inside"),
        pytest.param("1101051949123100XX", "characters", id="X-not-last"),
        pytest.param("11010519491231002Y", "characters", id="Y-last"),
        pytest.param("1101051949123100\uff12X", "characters", id="full-width-digit"),
    ],
)
def test_invalid_numbers_are_refused_naming_the_failure(given: str, reason: str) -> None:
    with pytest.raises(InvalidIdNumber) as caught:
        validate_id_number(given, today=TODAY)
    error = caught.value
    assert error.reason == reason and error.extra == {"reason": reason}
    assert error.status == 422 and error.code == "invalid-id-number"
    if given:
        assert given.strip() not in error.detail and given[:6] not in error.detail


@pytest.mark.obligation("OB-2A-2")
def test_a_legacy_number_gets_its_own_message() -> None:
    with pytest.raises(InvalidIdNumber) as caught:
        validate_id_number("110105491231002", today=TODAY)
    assert caught.value.detail == "15-digit IDs are no longer accepted; give the 18-digit number"


@pytest.mark.obligation("OB-2A-4")
def test_birth_date_and_age() -> None:
    assert birth_date(GOOD_X) == date(1949, 12, 31)
    assert age_on(GOOD_X, date(2025, 12, 30)) == 75
    assert age_on(GOOD_X, date(2025, 12, 31)) == 76
    child = with_check("44030520150301024")
    assert age_on(child, TODAY) == 10
    assert turns_14_on(child) == date(2029, 3, 1)
    assert age_on(child, date(2029, 2, 28)) == 13
    assert age_on(child, date(2029, 3, 1)) == 14
    with pytest.raises(ValueError, match="before"):
        age_on(child, date(2015, 2, 28))
    with pytest.raises(InvalidIdNumber):
        birth_date(GOOD_X[:-1] + "1")


@pytest.mark.obligation("OB-2A-4")
def test_leap_day_birthdays_fall_on_28_february_in_other_years() -> None:
    leapling = with_check("11010520120229011")
    assert birth_date(leapling) == date(2012, 2, 29)
    assert turns_14_on(leapling) == date(2026, 2, 28)
    assert age_on(leapling, date(2026, 2, 27)) == 13
    assert age_on(leapling, date(2026, 2, 28)) == 14
    born_2000 = with_check("11010520000229011")
    assert turns_14_on(born_2000) == date(2014, 2, 28)
    assert age_on(born_2000, date(2016, 2, 28)) == 15  # 2016 is a leap year: 29 February
    assert age_on(born_2000, date(2016, 2, 29)) == 16
