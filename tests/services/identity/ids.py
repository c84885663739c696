"""Test ID numbers, with their check character computed here, independently of the code
under test (ISO 7064 MOD 11-2, GB 11643-1999)."""

from __future__ import annotations

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def with_check(first_17: str) -> str:
    """``first_17`` followed by its check character."""
    total = sum(int(digit) * weight for digit, weight in zip(first_17, _WEIGHTS, strict=True))
    return first_17 + "10X98765432"[total % 11]


ADULT = with_check("11010519491231002")  # the textbook example; ends in X
ADULT_2 = with_check("31010419850715013")
MISMATCH = with_check("11010519800101999")  # the sandbox's "no match" sequence code
DOWN = with_check("11010519800101998")  # the sandbox's "provider unavailable"
