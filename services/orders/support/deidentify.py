"""De-identification of communication records before they train customer-service models
(policy 2E, OB-2E-2). No HTTP, no database.

Two passes over each text, each value replaced by a stable placeholder (``[PHONE_1]``,
the same value always the same placeholder within one export):

1. the case subject's own values: every personal field orders holds about the user, by
   its catalogue category (names, phone numbers, street addresses, emails, ID numbers,
   taxpayer ids), their order numbers and account id;
2. pattern detection for what the user may have written about anyone: email addresses,
   GB 11643 resident ID numbers (18 characters, a plausible birth date), mainland mobile
   numbers (``+86`` and separators allowed), street addresses (a road, street or lane and
   a house number, with building, unit and room), names given as "我叫..." / "姓名...",
   and the suite's own ids (``acc_...``, ``ord_...``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

#: Catalogue category -> placeholder kind. Categories not here (regions, postal codes,
#: purchase records) are shared by many people and stay.
KINDS: Final[Mapping[str, str]] = {
    "user.name": "NAME",
    "user.contact.phone_number": "PHONE",
    "user.contact.address": "ADDRESS",
    "user.contact.email": "EMAIL",
    "user.government_id.national_identification_number": "ID_NUMBER",
    "user.financial.tax_id": "TAX_ID",
}

_CJK = "\u4e00-\u9fff"
PATTERNS: Final[tuple[tuple[str, re.Pattern[str]], ...]] = (
    ("EMAIL", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")),
    (
        "ID_NUMBER",
        re.compile(
            r"(?<![0-9A-Za-z])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])"
            r"(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx](?![0-9A-Za-z])"
        ),
    ),
    ("PHONE", re.compile(r"(?<![0-9])(?:\+?86[\s-]?)?1[3-9]\d(?:[\s-]?\d){8}(?![0-9])")),
    (
        "ADDRESS",
        re.compile(
            rf"[{_CJK}]{{1,12}}(?:路|街|大道|道|巷|弄|胡同)\s*\d+\s*号"
            rf"(?:\s*\d+\s*(?:幢|栋|号楼|单元|层|楼|室))*"
        ),
    ),
    ("NAME", re.compile(rf"(?<=我叫)[{_CJK}]{{2,4}}|(?<=姓名[:\uff1a])\s*[{_CJK}]{{2,4}}")),
    ("REF", re.compile(r"\b(?:acc|ord|cas|stf|ptn|srh|flg)_[A-Za-z0-9]{6,}")),
)


def _normal(kind: str, value: str) -> str:
    if kind == "PHONE":
        digits = re.sub(r"\D", "", value)
        return digits[-11:]
    return re.sub(r"\s+", "", value).lower()


@dataclass
class Placeholders:
    """Stable placeholders for one export: the same value, the same placeholder."""

    given: dict[tuple[str, str], str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def of(self, kind: str, value: str) -> str:
        key = (kind, _normal(kind, value))
        if key not in self.given:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self.given[key] = f"[{kind}_{self.counts[kind]}]"
        return self.given[key]


@dataclass(frozen=True)
class Known:
    """The case subject's own values, each with its placeholder kind."""

    values: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, str]]) -> Known:
        kept = {(kind, value.strip()) for kind, value in pairs if len(value.strip()) >= 2}
        # longest first, so a name inside an address goes with the address
        return cls(tuple(sorted(kept, key=lambda pair: -len(pair[1]))))


def deidentify(text: str, known: Known, placeholders: Placeholders) -> str:
    """``text`` with the subject's values and every detected value replaced."""
    for kind, value in known.values:
        if value in text:
            text = text.replace(value, placeholders.of(kind, value))
    for kind, pattern in PATTERNS:
        text = pattern.sub(_replacer(kind, placeholders), text)
    return text


def _replacer(kind: str, placeholders: Placeholders) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        return placeholders.of(kind, match.group(0))

    return replace
