"""The event envelope: CloudEvents 1.0 fields, and no personal data in any event."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from kit.events import Event, PersonalDataInEvent, new_event


def order_event(**overrides: object) -> Event:
    fields: dict[str, object] = {
        "source": "/orders",
        "type": "com.signature.orders.order.created.v1",
        "subject": "acc_7f3a9c",
        "purpose": "order.fulfilment",
        "data": {"order_id": "ord_01", "amount": "128.00", "items": 2},
        "categories": ["user.contact.address", "user.name"],
    }
    fields.update(overrides)
    return new_event(**fields)  # type: ignore[arg-type]


def test_an_event_is_a_cloudevent_with_purpose_and_categories() -> None:
    event = order_event()
    raw = event.to_json_bytes()
    envelope = json.loads(raw)
    assert envelope["specversion"] == "1.0"
    for attribute in ("id", "source", "type", "subject", "time"):
        assert envelope[attribute]
    assert envelope["purpose"] == "order.fulfilment"
    assert envelope["datacategories"] == "user.contact.address user.name"
    assert Event.from_json_bytes(raw) == event


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"note": "call me on 13812345678"}, "mobile phone number"),
        ({"customs": {"id": "11010519491231002X"}}, "national ID number"),
        ({"contacts": ["li.lei@example.com"]}, "email address"),
        ({"card": "6222021234567890123"}, "bank card number"),
    ],
)
@pytest.mark.obligation("OB-4-7")
def test_values_that_look_personal_are_refused(data: dict[str, object], reason: str) -> None:
    with pytest.raises(PersonalDataInEvent, match=reason):
        order_event(data=data)


@pytest.mark.obligation("OB-4-7")
def test_fields_the_catalogue_calls_personal_are_refused_by_name() -> None:
    with pytest.raises(PersonalDataInEvent, match=r"data\.consignee_name"):
        new_event(
            source="/orders",
            type="com.signature.orders.order.created.v1",
            subject="acc_1x",
            purpose="order.fulfilment",
            data={"consignee_name": "张三"},
            personal_fields=frozenset({"consignee_name"}),
        )


def test_a_digest_whose_digits_look_like_a_card_number_is_carried() -> None:
    # Found by tests/invariants: a policy text's SHA-256 with a run of 16 digits made
    # publishing that policy version fail with 500.
    digest = "ab" + "6222021234567890" + "cd" * 23
    assert len(digest) == 64
    event = order_event(data={"text_sha256": digest})
    assert event.data["text_sha256"] == digest
    with pytest.raises(PersonalDataInEvent, match="bank card number"):
        order_event(data={"note": "ab6222021234567890cd"})


@pytest.mark.parametrize("subject", ["13812345678", "li.lei@example.com", "", "a"])
@pytest.mark.obligation("OB-4-7")
def test_the_subject_must_be_a_pseudonymous_id(subject: str) -> None:
    with pytest.raises(ValidationError, match="subject"):
        order_event(subject=subject)


def test_event_types_are_namespaced_and_versioned() -> None:
    with pytest.raises(ValidationError, match="event type"):
        order_event(type="OrderCreated")
