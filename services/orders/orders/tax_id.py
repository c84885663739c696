"""Taxpayer identification numbers on invoices (policy 2D): what is checked, and why.

A taxpayer ID is normalised (white space removed, upper-cased) and must then be one of:

- **18 characters: the unified social credit code** (GB 32100-2015), which every
  enterprise, institution and individual business has carried as its taxpayer ID since the
  2015-2017 "three certificates in one" reform. Its characters come from the code's own
  alphabet (digits and upper-case letters without I, O, S, V and Z); characters 3-8 are
  the administrative division code (digits); the 18th is the check character: with
  ``c_i`` the alphabet index of character ``i`` (0-based) and weights ``3**i mod 31``,
  ``check = alphabet[(31 - sum(c_i * w_i) mod 31) mod 31]``. The check character catches
  every single mistyped character.
- **15 characters: a legacy tax registration number**: a 6-digit administrative division
  code followed by the 9-character organisation code (upper-case letters and digits).
- **20 characters: a legacy individual tax registration number**: an 18-character resident
  ID number (17 digits, then a digit or X) followed by a 2-digit sequence.

Not checked: whether the number is registered with the tax authority (only the invoicing
partner can ask that), the checksum of the legacy formats' embedded codes, and the division
code against the GB/T 2260 table (counties are renamed every year, old codes stay valid).
Errors never echo the number.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["USCC_ALPHABET", "uscc_check_character", "validate_taxpayer_id"]

USCC_ALPHABET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS: Final = tuple(pow(3, i, 31) for i in range(17))
_USCC: Final = re.compile(r"[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}")
_LEGACY_15: Final = re.compile(r"[0-9]{6}[0-9A-Z]{9}")
_LEGACY_20: Final = re.compile(r"[0-9]{17}[0-9X][0-9]{2}")
_SPACES: Final = re.compile(r"\s+")


def uscc_check_character(first_17: str) -> str:
    """The GB 32100-2015 check character of the first 17 characters of a credit code."""
    total = sum(
        USCC_ALPHABET.index(char) * weight
        for char, weight in zip(first_17, _USCC_WEIGHTS, strict=True)
    )
    return USCC_ALPHABET[(31 - total % 31) % 31]


def validate_taxpayer_id(value: str) -> str:
    """The taxpayer ID normalised, or ``ValueError`` saying which rule failed."""
    number = _SPACES.sub("", value).upper()
    if len(number) == 18:
        if not _USCC.fullmatch(number):
            raise ValueError(
                "an 18-character taxpayer ID is a unified social credit code: digits and "
                "upper-case letters except I, O, S, V, Z, with digits in places 3-8"
            )
        if uscc_check_character(number[:17]) != number[17]:
            raise ValueError("the credit code's check character is wrong (a mistyped character?)")
        return number
    if len(number) == 15:
        if not _LEGACY_15.fullmatch(number):
            raise ValueError(
                "a 15-character taxpayer ID is 6 digits and a 9-character organisation code"
            )
        return number
    if len(number) == 20:
        if not _LEGACY_20.fullmatch(number):
            raise ValueError("a 20-character taxpayer ID is an 18-character ID number and 2 digits")
        return number
    raise ValueError("a taxpayer ID has 18 characters (15 or 20 for legacy numbers)")
