"""Sequences the state machine found or that its invariants must always cover, kept as plain
example tests so that they never come back: each runs the machine's own steps in order, as
Hypothesis prints a failing sequence, with every invariant checked after each step and each
user's ledger settled at the end (:mod:`tests.invariants.machine`).

To keep a new sequence: paste the ``state.<rule>(...)`` lines Hypothesis printed into a new
test below, with ``step(...)`` around each, and say what it found.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import httpx
import pytest

from tests.invariants.machine import PrivacyMachine, Stack, _unique_person

T = TypeVar("T")


class Play:
    """One sequence: the machine, each step followed by the invariants."""

    def __init__(self, stack: Stack) -> None:
        self.state = PrivacyMachine(stack)

    def step(self, done: Callable[[], T]) -> T:
        result = done()
        self.state.privacy_invariants()
        return result

    def end(self) -> None:
        self.state.teardown()


def test_an_order_paid_after_a_minor_policy_change_leaves_one_entry_per_read(
    stack: Stack,
) -> None:
    """Found first: paying waited on the order's own page, whose reads the model had not
    counted (the machine now waits on the payment, which carries no personal data)."""
    play = Play(stack)
    u0 = play.step(play.state.start)
    o0 = play.step(lambda: play.state.place_order(user=u0))
    play.step(lambda: play.state.publish_policy(major=False))
    play.step(lambda: play.state.pay(order=o0))
    play.step(lambda: play.state.read_order(order=o0))
    play.end()


def test_a_retried_order_answers_the_order_placed_before(stack: Stack) -> None:
    """Found: the retry answers 200 with the first order (as documented), not 201; the
    machine expects exactly that, and no second order."""
    play = Play(stack)
    u0 = play.step(play.state.start)
    o0 = play.step(lambda: play.state.place_order(user=u0))
    play.step(lambda: play.state.replay_order(order=o0))
    play.end()


@pytest.mark.obligation("OB-R-1")
def test_a_corrected_address_is_what_the_owner_and_a_retry_see(stack: Stack) -> None:
    play = Play(stack)
    u0 = play.step(play.state.start)
    o0 = play.step(lambda: play.state.place_order(user=u0))
    play.step(lambda: play.state.correct_address(order=o0))
    play.step(lambda: play.state.read_order(order=o0))
    play.step(lambda: play.state.replay_order(order=o0))
    play.end()


def test_a_user_who_never_agreed_withdraws_everything(stack: Stack) -> None:
    """Found by a deeper run: the withdraw-all of a user who never agreed to the policy
    did not complete within 30 s."""
    play = Play(stack)
    play.step(play.state.start)
    u1 = play.step(lambda: play.state.register(agree=False))
    play.step(lambda: play.state.rights_request(user=u1, kind="withdraw_all"))
    play.end()


@pytest.mark.obligation("OB-5-3")
def test_after_a_major_change_only_closed_routes_wait_until_the_user_agrees(
    stack: Stack,
) -> None:
    play = Play(stack)
    u0 = play.step(play.state.start)
    u1 = play.step(lambda: play.state.register(agree=False))
    o0 = play.step(lambda: play.state.place_order(user=u0))
    play.step(lambda: play.state.publish_policy(major=True))
    play.step(lambda: play.state.place_order(user=u0))  # 428
    play.step(lambda: play.state.read_order(order=o0))  # 428
    play.step(lambda: play.state.rights_request(user=u0, kind="access"))
    play.step(lambda: play.state.read_account(user=u0))  # open: 200, one ledger entry
    play.step(lambda: play.state.agree(user=u0))
    play.step(lambda: play.state.agree(user=u1))
    play.step(lambda: play.state.read_order(order=o0))
    play.end()


@pytest.mark.obligation("OB-R-1")
def test_withdrawing_everything_during_a_renewal_closes_the_location_gate(stack: Stack) -> None:
    play = Play(stack)
    u0 = play.step(play.state.start)
    play.step(lambda: play.state.set_consent(user=u0, purpose="location", granted=True))
    play.step(lambda: play.state.publish_policy(major=True))
    play.step(lambda: play.state.rights_request(user=u0, kind="withdraw_all"))
    play.step(lambda: play.state.agree(user=u0))
    play.end()


@pytest.mark.obligation("OB-R-1")
def test_after_deletion_the_buyer_is_gone_and_a_courier_of_no_open_order_reads_nothing(
    stack: Stack,
) -> None:
    play = Play(stack)
    u0 = play.step(play.state.start)
    o0 = play.step(lambda: play.state.place_order(user=u0))
    c0 = play.step(play.state.new_courier)
    play.step(lambda: play.state.courier_reads(order=o0, courier=c0))  # 404: not assigned
    play.step(lambda: play.state.delete_account(user=u0))
    play.step(lambda: play.state.courier_reads(order=o0, courier=c0))  # 404
    play.step(lambda: play.state.agree(user=u0))  # 401
    play.step(lambda: play.state.list_orders(user=u0))  # 401
    play.end()


@pytest.mark.obligation("OB-R-1")
def test_after_deletion_the_courier_of_an_open_order_reads_nothing_of_the_buyer(
    stack: Stack,
) -> None:
    """Found by the machine: the courier still read the assigned order's waybill (masked
    name and phone, the street address) after the buyer's deletion completed. The deletion
    now cancels and refunds the orders not yet picked up, so the courier loses the order."""
    play = Play(stack)
    u0 = play.step(play.state.start)
    o0 = play.step(lambda: play.state.place_order(user=u0))
    play.step(lambda: play.state.pay(order=o0))
    c0 = play.step(play.state.new_courier)
    play.step(lambda: play.state.assign(order=o0, courier=c0))
    play.step(lambda: play.state.courier_reads(order=o0, courier=c0))
    play.step(lambda: play.state.delete_account(user=u0))
    courier, buyer = play.state.model.couriers[0], play.state.model.users[0]
    order_id = play.state.model.orders[0].order_id
    answer = play.state.send(
        "c0", "GET", f"/orders/partner/orders/{order_id}", headers=courier.headers
    )
    assert answer.status_code == 404, answer.text
    assert buyer.person.address_detail not in answer.text
    play.end()


@pytest.mark.obligation("OB-4-7")
def test_a_revoked_courier_reads_nothing(stack: Stack) -> None:
    play = Play(stack)
    u0 = play.step(play.state.start)
    o0 = play.step(lambda: play.state.place_order(user=u0))
    play.step(lambda: play.state.pay(order=o0))
    c0 = play.step(play.state.new_courier)
    c1 = play.step(play.state.new_courier)
    play.step(lambda: play.state.assign(order=o0, courier=c0))
    play.step(lambda: play.state.courier_reads(order=o0, courier=c1))  # 404: not its order
    play.step(lambda: play.state.revoke_courier(courier=c0))
    play.step(lambda: play.state.courier_reads(order=o0, courier=c0))  # 401
    play.step(lambda: play.state.cancel(order=o0))
    play.end()


@pytest.mark.obligation("OB-3-1")
def test_a_customs_broker_reads_the_customs_identity_until_revoked(stack: Stack) -> None:
    play = Play(stack)
    u0 = play.step(play.state.start)
    o0 = play.step(lambda: play.state.place_order(user=u0, cross_border=True))
    play.step(lambda: play.state.pay(order=o0))
    c0 = play.step(play.state.new_courier)
    b0 = play.step(play.state.new_broker)
    play.step(lambda: play.state.assign(order=o0, courier=c0))  # 422: it needs a broker
    play.step(lambda: play.state.assign_cross_border(order=o0, courier=c0, broker=b0))
    play.step(lambda: play.state.broker_reads(order=o0, broker=b0))
    play.step(lambda: play.state.courier_reads(order=o0, courier=c0))
    play.step(lambda: play.state.read_order(order=o0))  # the ID number masked for the owner
    play.step(lambda: play.state.revoke_broker(broker=b0))
    play.step(lambda: play.state.broker_reads(order=o0, broker=b0))  # 401
    play.step(lambda: play.state.courier_reads(order=o0, courier=c0))  # still its duty
    play.end()


@pytest.mark.obligation("OB-4-7")
def test_an_invoicing_partner_reads_no_order_and_is_refused_once_revoked(stack: Stack) -> None:
    play = Play(stack)
    u0 = play.step(play.state.start)
    o0 = play.step(lambda: play.state.place_order(user=u0))
    t0 = play.step(play.state.new_tax_partner)
    play.step(lambda: play.state.tax_partner_reads(order=o0, partner=t0))  # 403: no duty here
    play.step(lambda: play.state.revoke_tax_partner(partner=t0))
    play.step(lambda: play.state.tax_partner_reads(order=o0, partner=t0))  # 401
    play.end()


@pytest.mark.obligation("OB-4-2")
def test_a_delivered_order_is_kept_one_year_on_and_anonymised_four_years_on(
    stack: Stack,
) -> None:
    play = Play(stack)
    u0 = play.step(play.state.start)
    o0 = play.step(lambda: play.state.place_order(user=u0))
    play.step(lambda: play.state.pay(order=o0))
    c0 = play.step(play.state.new_courier)
    play.step(lambda: play.state.assign(order=o0, courier=c0))
    play.step(lambda: play.state.pick_up(order=o0))
    play.step(lambda: play.state.deliver(order=o0))
    play.step(lambda: play.state.courier_reads(order=o0, courier=c0))  # 404: duty over
    play.step(lambda: play.state.sweep_after(order=o0, years=1))
    play.step(lambda: play.state.read_order(order=o0))  # still the buyer's, all of it
    play.step(lambda: play.state.sweep_after(order=o0, years=4))
    play.step(lambda: play.state.read_order(order=o0))  # 404: nobody's order
    play.step(lambda: play.state.list_orders(user=u0))
    play.end()


@pytest.mark.obligation("OB-R-1")
def test_a_deleted_buyers_order_on_its_way_is_storage_only_for_its_courier(stack: Stack) -> None:
    """The one order a deletion does not cancel: picked up, it cannot be called back; what
    is left of it is kept under the legal hold, storage-only (README, "Deleting an account
    with open orders"): its courier reads nothing more (403)."""
    play = Play(stack)
    u0 = play.step(play.state.start)
    play.step(lambda: play.state.register(agree=True))
    o0 = play.step(lambda: play.state.place_order(user=u0))
    play.step(lambda: play.state.pay(order=o0))
    c0 = play.step(play.state.new_courier)
    play.step(lambda: play.state.assign(order=o0, courier=c0))
    play.step(lambda: play.state.pick_up(order=o0))
    play.step(lambda: play.state.delete_account(user=u0))
    play.step(lambda: play.state.courier_reads(order=o0, courier=c0))  # 403: storage-only
    play.end()


@pytest.mark.obligation("OB-2A-4")
def test_a_child_grants_nothing_alone_and_only_their_guardian_grants_for_them(
    stack: Stack,
) -> None:
    play = Play(stack)
    u0 = play.step(play.state.start)
    u1 = play.step(lambda: play.state.register_minor(guardian=u0, linked=False))
    play.step(lambda: play.state.set_consent(user=u1, purpose="location", granted=True))  # 403
    u2 = play.step(lambda: play.state.register_minor(guardian=u0, linked=True))
    play.step(lambda: play.state.guardian_consent(ward=u1, by=u0, purpose="location", granted=True))
    play.step(lambda: play.state.guardian_consent(ward=u2, by=u0, purpose="location", granted=True))
    play.step(lambda: play.state.set_consent(user=u2, purpose="location", granted=False))
    play.step(lambda: play.state.set_consent(user=u2, purpose="marketing.price_drop", granted=True))
    play.end()


@pytest.mark.obligation("OB-2A-4")
def test_a_child_grants_nothing_with_the_token_from_before_their_verification(
    stack: Stack,
) -> None:
    """Found by the machine (invariant 1): a child who verified their real name still
    granted a consent with the token they had signed in with before (201), for as long as
    that token lived (15 min). Consent now learns identity's verification from Kafka, as
    the machine waits for every such fact (bounded), and refuses from then on."""
    play = Play(stack)
    play.step(play.state.start)
    u1 = play.step(lambda: play.state._register(agree=True, person=_unique_person(age=8)))
    before = dict(u1.headers)
    play.step(lambda: play.state._verify(u1))

    def grant(granted: bool) -> httpx.Response:
        body = {"purpose": "marketing.price_drop", "granted": granted, "shown": {"text": "?"}}
        return play.state.send("u1", "POST", "/consent/consents", headers=before, json=body)

    refused = play.state.until(
        "the token from before refused", 1, lambda: grant(True), lambda a: a.status_code == 403
    )
    assert refused.json()["type"].endswith("/guardian-consent-required")
    assert grant(False).status_code == 201  # withdrawing only ever reduces processing
    play.end()
