"""When real-name verification is required (OB-2A-1, policy 2A): one explicit table.

Verification is asked for only where it is needed: buying special goods or services,
becoming a seller or content creator, and legal duties (protecting minors, fighting
telecom and network fraud, withholding personal income tax, identifying parties in
administrative or judicial proceedings). Every other action (browsing, searching, the
cart, ordinary orders, ...) never asks for it.

:data:`RULES` maps every :class:`Action` to its :class:`Rule`; a test enumerates it, and an
action missing from it fails at import. :func:`verification_required` reads the table;
:func:`ensure_verified` refuses an unverified account with :class:`VerificationRequired`
(403). An unknown action name is a ``ValueError``: the table is closed, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from kit.errors import DomainError
from services.identity.models import Account

__all__ = [
    "RULES",
    "Action",
    "Rule",
    "VerificationRequired",
    "ensure_verified",
    "verification_required",
]


class Action(StrEnum):
    # Verification required
    BECOME_SELLER = "become_seller"
    BECOME_CONTENT_CREATOR = "become_content_creator"
    BUY_SPECIAL_GOODS = "buy_special_goods"
    LEGAL_DUTY = "legal_duty"  # a legal duty not named below
    LEGAL_DUTY_MINOR_PROTECTION = "legal_duty.minor_protection"
    LEGAL_DUTY_ANTI_FRAUD = "legal_duty.anti_fraud"
    LEGAL_DUTY_TAX_WITHHOLDING = "legal_duty.tax_withholding"
    LEGAL_DUTY_LAW_ENFORCEMENT = "legal_duty.law_enforcement"
    # Never required
    BROWSE = "browse"
    SEARCH = "search"
    CART = "cart"
    PLACE_ORDER = "place_order"
    QUERY_ORDER = "query_order"
    MANAGE_ADDRESSES = "manage_addresses"
    CUSTOMER_SERVICE = "customer_service"
    WRITE_REVIEW = "write_review"


@dataclass(frozen=True)
class Rule:
    required: bool
    reason: str


_REQUIRED = "policy 2A: "
_NOT_REQUIRED = "a basic function; verification would collect more than it needs"

RULES: Final = MappingProxyType(
    {
        Action.BECOME_SELLER: Rule(True, _REQUIRED + "a membership role needing identity"),
        Action.BECOME_CONTENT_CREATOR: Rule(True, _REQUIRED + "a membership role needing identity"),
        Action.BUY_SPECIAL_GOODS: Rule(True, _REQUIRED + "special types of goods or services"),
        Action.LEGAL_DUTY: Rule(True, _REQUIRED + "a duty imposed by laws and regulations"),
        Action.LEGAL_DUTY_MINOR_PROTECTION: Rule(
            True, _REQUIRED + "protecting the rights and interests of minors"
        ),
        Action.LEGAL_DUTY_ANTI_FRAUD: Rule(
            True, _REQUIRED + "combating telecommunications and network fraud"
        ),
        Action.LEGAL_DUTY_TAX_WITHHOLDING: Rule(
            True, _REQUIRED + "withholding and paying personal income tax"
        ),
        Action.LEGAL_DUTY_LAW_ENFORCEMENT: Rule(
            True, _REQUIRED + "administrative law enforcement or judicial proceedings"
        ),
        Action.BROWSE: Rule(False, _NOT_REQUIRED),
        Action.SEARCH: Rule(False, _NOT_REQUIRED),
        Action.CART: Rule(False, _NOT_REQUIRED),
        Action.PLACE_ORDER: Rule(False, _NOT_REQUIRED + " (ordinary goods)"),
        Action.QUERY_ORDER: Rule(False, _NOT_REQUIRED),
        Action.MANAGE_ADDRESSES: Rule(False, _NOT_REQUIRED),
        Action.CUSTOMER_SERVICE: Rule(False, _NOT_REQUIRED),
        Action.WRITE_REVIEW: Rule(False, _NOT_REQUIRED),
    }
)

if set(RULES) != set(Action):  # pragma: no cover - a programming error, caught at import
    raise RuntimeError(f"actions without a rule: {sorted(set(Action) - set(RULES))}")


class VerificationRequired(DomainError):
    """The action needs a verified identity and the account has none."""

    status, code, title = 403, "verification-required", "Verification required"


def verification_required(action: Action | str) -> bool:
    """Whether ``action`` needs real-name verification; ``ValueError`` if unknown."""
    return RULES[Action(action)].required


def ensure_verified(account: Account, action: Action | str) -> None:
    """Refuse ``action`` with :class:`VerificationRequired` if it needs verification and
    ``account`` has none."""
    known = Action(action)
    if RULES[known].required and not account.verified:
        raise VerificationRequired(
            f"'{known.value}' requires real-name verification; verify at POST /verifications",
            extra={"action": known.value},
        )
