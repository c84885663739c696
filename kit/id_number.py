"""Mainland resident ID numbers (GB 11643-1999): validation, birth date and age.

An ID number has 18 characters: a 6-digit administrative division code (GB/T 2260), an
8-digit birth date ``YYYYMMDD``, a 3-digit sequence code (odd for men, even for women) and
a check character computed with ISO 7064 MOD 11-2 (``0``-``9`` or ``X`` for 10).

:func:`validate_id_number` checks, in this order, and raises :class:`InvalidIdNumber`
naming the first failure (``reason``: legacy, length, characters, region, birth_date,
checksum) without ever echoing the number:

- a 15-digit number is the pre-1999 legacy format: refused with its own message;
- the length (18) and the characters (17 digits, then a digit or ``X``; a lower-case ``x``
  is accepted and normalised to upper case; surrounding white space is ignored);
- the province-level region (the first two digits): 11-15, 21-23, 31-37, 41-46, 50-54,
  61-65, and 71 (Taiwan), 81 (Hong Kong), 82 (Macao), 83 (residence permits of Taiwan
  residents, which use 830000). The full 6-digit county table is *not* checked: GB/T 2260
  changes every year as counties merge, split and are renamed, while ID numbers issued
  under retired codes stay valid for life, so a county table would have to be a growing
  historical union that we cannot keep exact; a wrong county is also caught, with high
  probability, by the checksum and in the end by the authoritative provider;
- the birth date: a real calendar date, not before 1900-01-01 and not after ``today``;
- the ISO 7064 MOD 11-2 checksum.

The helpers (:func:`birth_date`, :func:`age_on`, :func:`turns_14_on`) validate first. A
birthday on 29 February falls on 28 February in non-leap years (as
:meth:`kit.catalogue.Duration.after` does). Displays are masked by the catalogue
(``kit.masking``), never here.
"""

from __future__ import annotations

from calendar import monthrange
from datetime import date
from typing import Final

from kit.clock import china_today
from kit.errors import DomainError

__all__ = [
    "InvalidIdNumber",
    "age_on",
    "birth_date",
    "turns_14_on",
    "validate_id_number",
]

LENGTH: Final = 18
LEGACY_LENGTH: Final = 15
EARLIEST_BIRTH: Final = date(1900, 1, 1)
AGE_OF_CONSENT: Final = 14  # PIPL art. 28/31: under 14, a guardian consents

# China keeps one offset all year (no daylight saving): a fixed offset is exact.

_PROVINCE_CODES: Final = frozenset(
    (
        *range(11, 16),  # north: Beijing, Tianjin, Hebei, Shanxi, Inner Mongolia
        *range(21, 24),  # north-east
        *range(31, 38),  # east
        *range(41, 47),  # centre and south
        *range(50, 55),  # south-west
        *range(61, 66),  # north-west
        71,  # Taiwan
        81,  # Hong Kong
        82,  # Macao
        83,  # residence permits of Taiwan residents
    )
)
# ISO 7064 MOD 11-2: weight of position i (0-based, left to right) is 2**(17 - i) mod 11.
_WEIGHTS: Final = tuple(pow(2, LENGTH - 1 - i, 11) for i in range(LENGTH - 1))
_CHECK_CHARACTERS: Final = "10X98765432"  # indexed by (sum of weighted digits) mod 11
_DIGITS: Final = frozenset("0123456789")


class InvalidIdNumber(DomainError):
    """The ID number is not a valid GB 11643-1999 number. ``extra["reason"]`` names the
    failed check; the number itself is never part of the message."""

    status, code, title = 422, "invalid-id-number", "Invalid ID number"

    def __init__(self, detail: str, *, reason: str) -> None:
        super().__init__(detail, extra={"reason": reason})
        self.reason = reason


def check_character(first_17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of the first 17 digits."""
    total = sum(int(digit) * weight for digit, weight in zip(first_17, _WEIGHTS, strict=True))
    return _CHECK_CHARACTERS[total % 11]


def validate_id_number(value: str, *, today: date | None = None) -> str:
    """The ID number normalised (stripped, ``x`` upper-cased) if valid on ``today``
    (default: today in China); :class:`InvalidIdNumber` naming the failure otherwise."""
    number = value.strip().upper()
    if len(number) == LEGACY_LENGTH and set(number) <= _DIGITS:
        raise InvalidIdNumber(
            "15-digit IDs are no longer accepted; give the 18-digit number", reason="legacy"
        )
    if len(number) != LENGTH:
        raise InvalidIdNumber(
            f"an ID number has {LENGTH} characters; this one has {len(number)}",
            reason="length",
        )
    if not set(number[:-1]) <= _DIGITS or number[-1] not in _DIGITS | {"X"}:
        raise InvalidIdNumber(
            "an ID number is 17 digits followed by a digit or X", reason="characters"
        )
    if int(number[:2]) not in _PROVINCE_CODES:
        raise InvalidIdNumber(
            "the ID number does not start with a known province-level region code",
            reason="region",
        )
    born = _birth_date_of(number)
    if born is None or born < EARLIEST_BIRTH or born > (today or china_today()):
        raise InvalidIdNumber(
            "the birth date in the ID number is not a real past date", reason="birth_date"
        )
    if check_character(number[:-1]) != number[-1]:
        raise InvalidIdNumber(
            "the ID number's check character is wrong (a mistyped digit?)", reason="checksum"
        )
    return number


def _birth_date_of(number: str) -> date | None:
    try:
        return date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return None


def _anniversary(born: date, years: int) -> date:
    """The ``years``-th birthday; 29 February falls on 28 February in non-leap years."""
    year = born.year + years
    return date(year, born.month, min(born.day, monthrange(year, born.month)[1]))


def birth_date(id_number: str) -> date:
    """The holder's birth date (the number is validated first)."""
    born = _birth_date_of(validate_id_number(id_number))
    assert born is not None  # validated
    return born


def age_on(id_number: str, day: date) -> int:
    """The holder's age in whole years on ``day``; ``ValueError`` if ``day`` is before
    the birth date."""
    born = birth_date(id_number)
    if day < born:
        raise ValueError("the day is before the holder's birth date")
    years = day.year - born.year
    return years if day >= _anniversary(born, years) else years - 1


def turns_14_on(id_number: str) -> date:
    """The day the holder turns 14: from then on they consent for themselves."""
    return _anniversary(birth_date(id_number), AGE_OF_CONSENT)
