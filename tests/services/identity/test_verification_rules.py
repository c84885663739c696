"""When real-name verification is asked for (OB-2A-1): only for special goods, the seller
and content-creator roles and legal duties; never for browsing, the cart or ordinary
orders. The whole table is enumerated here, so a new action needs a deliberate entry."""

from __future__ import annotations

import pytest

from services.identity.models import Account
from services.identity.verification.rules import (
    RULES,
    Action,
    VerificationRequired,
    ensure_verified,
    verification_required,
)

EXPECTED = {
    "become_seller": True,
    "become_content_creator": True,
    "buy_special_goods": True,
    "legal_duty": True,
    "legal_duty.minor_protection": True,
    "legal_duty.anti_fraud": True,
    "legal_duty.tax_withholding": True,
    "legal_duty.law_enforcement": True,
    "browse": False,
    "search": False,
    "cart": False,
    "place_order": False,
    "query_order": False,
    "manage_addresses": False,
    "customer_service": False,
    "write_review": False,
}


def account(level: str) -> Account:
    return Account(
        id="acc-rules",
        kind="user",
        phone_index="i",
        phone_encrypted="v1.x",
        password_hash="h",
        verification_level=level,
    )


@pytest.mark.obligation("OB-2A-1")
def test_the_rule_table_is_exactly_the_policy() -> None:
    assert {action.value: rule.required for action, rule in RULES.items()} == EXPECTED
    assert {action.value for action in Action} == set(EXPECTED)
    for action, required in EXPECTED.items():
        assert verification_required(action) is required
        assert verification_required(Action(action)) is required
    assert all(rule.reason for rule in RULES.values())


@pytest.mark.obligation("OB-2A-1")
def test_an_unknown_action_is_refused_not_guessed() -> None:
    with pytest.raises(ValueError, match="not a valid Action"):
        verification_required("buy_anything")


@pytest.mark.parametrize("action", [a for a, required in EXPECTED.items() if required])
@pytest.mark.obligation("OB-2A-1")
def test_required_actions_refuse_an_unverified_account(action: str) -> None:
    with pytest.raises(VerificationRequired) as caught:
        ensure_verified(account("none"), action)
    error = caught.value
    assert (error.status, error.code) == (403, "verification-required")
    assert action in error.detail and error.extra == {"action": action}
    ensure_verified(account("real_name"), action)
    ensure_verified(account("real_person"), action)


@pytest.mark.parametrize("action", [a for a, required in EXPECTED.items() if not required])
@pytest.mark.obligation("OB-2A-1")
def test_other_actions_never_ask_for_verification(action: str) -> None:
    ensure_verified(account("none"), action)
