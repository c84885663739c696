"""Customer service through the gateway (policy 2E): a case opened by the user; the agent
verifies the user's membership before the case's messages or order are shown; the
communication record stays with the case; the agent sees the order only as
customer_service may; each read is one ledger entry (OB-2E-1). The training export is
de-identified: none of the values planted in messages is left in it, in any encoding the
leak scans look for, and it never names the subject (OB-2E-2)."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from tests.e2e.scan import _needles
from tests.e2e.suite import Person, Suite


async def _agent(suite: Suite) -> dict[str, str]:
    agent = Person.new()
    await suite.call(
        "POST", "/identity/staff", headers=suite.admin,
        json={"phone": agent.phone, "password": agent.password, "roles": ["customer_service"]},
        expect=201,
    )  # fmt: skip
    return await suite.login(agent.phone, agent.password)


async def _customer(suite: Suite) -> tuple[Person, str, dict[str, str], str]:
    goods = await suite.call(
        "POST", "/orders/admin/goods", headers=suite.admin,
        json={"name": f"Tea tin {secrets.token_hex(3)}", "price": "35.00"}, expect=201,
    )  # fmt: skip
    person = Person.new()
    account_id, headers = await suite.register(person)
    body = person.order_body(goods["goods_id"]) | {
        "remarks": person.remarks,
        "invoice": {"title": person.name, "tax_id": person.tax_id, "email": person.email},
    }
    placed = await suite.call(
        "POST", "/orders/orders", headers={**headers, "Idempotency-Key": secrets.token_hex(8)},
        json=body, expect=201,
    )  # fmt: skip
    return person, account_id, headers, placed["order_id"]


def _reads(page: dict[str, Any], resource: str) -> list[tuple[str, str]]:
    return [
        (e["who"]["service"], e["who"]["kind"])
        for e in page["entries"]
        if e["purpose"] == "customer_service" and e["action"] == "read"
        and e["resource"] == resource
    ]  # fmt: skip


@pytest.mark.obligation("OB-2E-1")
async def test_the_agent_verifies_membership_before_the_case_is_unmasked(suite: Suite) -> None:
    agent = await _agent(suite)
    person, _, headers, order_id = await _customer(suite)
    case = await suite.call(
        "POST", "/orders/support/cases", headers=headers,
        json={"topic": "delivery", "order_id": order_id, "text": "My parcel has not arrived."},
        expect=201,
    )  # fmt: skip
    case_id = case["case_id"]
    listed = await suite.call("GET", "/orders/support/agent/cases?limit=100", headers=agent)
    assert case_id in {c["case_id"] for c in listed}

    # Before the check: nothing personal, the order refused, no answer.
    masked = await suite.call("GET", f"/orders/support/agent/cases/{case_id}", headers=agent)
    assert (masked["verified"], masked["messages"], masked["message_count"]) == (False, None, 1)
    for path, body in (
        (f"/orders/support/agent/cases/{case_id}/order", None),
        (f"/orders/support/agent/cases/{case_id}/messages", {"text": "On its way."}),
    ):
        refused = await suite.client.request(
            "GET" if body is None else "POST", path, headers=agent, json=body
        )
        assert refused.status_code == 403, refused.text
        assert refused.json()["type"].endswith("/membership-unverified")
    wrong = "0000" if not person.phone.endswith("0000") else "1111"
    failed = await suite.client.post(
        f"/orders/support/agent/cases/{case_id}/verification",
        headers=agent,
        json={"order_id": order_id, "phone_last4": wrong},
    )
    assert failed.status_code == 422, failed.text

    # The user tells the agent an order number and the phone's last four digits.
    verified = await suite.call(
        "POST", f"/orders/support/agent/cases/{case_id}/verification", headers=agent,
        json={"order_id": order_id, "phone_last4": person.phone[-4:]},
    )  # fmt: skip
    assert verified["verified"] is True
    assert [m["text"] for m in verified["messages"]] == ["My parcel has not arrived."]
    # The order as customer_service may see it: contact data masked, remarks in full.
    seen = await suite.call("GET", f"/orders/support/agent/cases/{case_id}/order", headers=agent)
    order = seen["order"]
    assert order["consignee_name"] == person.name[0] + "*" * (len(person.name) - 1)
    assert order["consignee_phone"] == person.phone[:3] + "****" + person.phone[-4:]
    assert order["address_detail"] == person.address_detail[:3] + "*" * (
        len(person.address_detail) - 3
    )
    assert order["invoice_email"].endswith("@example.com") and person.email not in str(seen)
    assert order["remarks"] == person.remarks
    await suite.call(
        "POST", f"/orders/support/agent/cases/{case_id}/messages", headers=agent,
        json={"text": "It arrives tomorrow.", "attachments": [
            {"content_type": "image/png", "size_bytes": 2048, "sha256": "ab" * 32}
        ]},
    )  # fmt: skip

    # The communication record stays with the case, both ways, for the user too.
    [mine] = await suite.call("GET", "/orders/support/cases", headers=headers)
    assert [(m["author"], m["text"]) for m in mine["messages"]] == [
        ("user", "My parcel has not arrived."),
        ("agent", "It arrives tomorrow."),
    ]
    assert mine["messages"][1]["attachments"][0]["size_bytes"] == 2048

    # The agent's one read of the order is one entry of the user's ledger.
    page = await suite.eventually(
        "GET", "/consent/ledger/me?limit=100",
        lambda page: ("gateway", "staff") in _reads(page, "orders.order"), headers=headers,
    )  # fmt: skip
    assert _reads(page, "orders.order").count(("gateway", "staff")) == 1


async def test_guessing_the_phone_digits_is_throttled_per_case(suite: Suite) -> None:
    """Four digits can be guessed: after five wrong checks on a case, even the right
    answer is refused (429 with Retry-After) until the window ends."""
    agent = await _agent(suite)
    person, _, headers, order_id = await _customer(suite)
    case = await suite.call(
        "POST", "/orders/support/cases", headers=headers,
        json={"topic": "delivery", "order_id": order_id, "text": "Where is it?"}, expect=201,
    )  # fmt: skip
    case_path = f"/orders/support/agent/cases/{case['case_id']}"
    path = f"{case_path}/verification"
    right = person.phone[-4:]
    guesses = [f"{n:04d}" for n in range(10) if f"{n:04d}" != right][:5]
    for guess in guesses:
        failed = await suite.client.post(
            path, headers=agent, json={"order_id": order_id, "phone_last4": guess}
        )
        assert failed.status_code == 422, failed.text
    refused = await suite.client.post(
        path, headers=agent, json={"order_id": order_id, "phone_last4": right}
    )
    assert refused.status_code == 429, refused.text
    assert refused.json()["type"].endswith("/too-many-attempts")
    assert 3500 <= int(refused.headers["retry-after"]) <= 3600
    masked = await suite.call(
        "GET", f"/orders/support/agent/cases/{case['case_id']}", headers=agent
    )
    assert masked["verified"] is False and masked["messages"] is None


@pytest.mark.obligation("OB-2E-2")
async def test_the_training_export_holds_no_planted_personal_value(suite: Suite) -> None:
    person, account_id, headers, order_id = await _customer(suite)
    stranger = Person.new()
    spaced = f"{person.phone[:3]} {person.phone[3:7]} {person.phone[7:]}"
    planted = {
        "name": person.name,
        "phone": person.phone,
        "spaced phone": spaced,
        "address": person.address_detail,
        "email": person.email,
        "id number": person.id_number,
        "order id": order_id,
        "account id": account_id,
        "stranger's phone": stranger.phone,
        "stranger's id number": stranger.id_number,
        "stranger's email": stranger.email,
        "stranger's address": stranger.address_detail,
    }
    texts = [
        f"我叫{person.name}, 电话{person.phone}, 订单{order_id}还没到。",
        f"Call me on +86 {spaced} or write to {person.email}; my account is {account_id}.",
        f"身份证号 {person.id_number}, 地址 浙江省杭州市西湖区{person.address_detail}。",
        f"Send it to my friend at {stranger.address_detail}, phone {stranger.phone}, "
        f"ID {stranger.id_number}, email {stranger.email}.",
    ]
    case = await suite.call(
        "POST", "/orders/support/cases", headers=headers,
        json={"topic": "order", "order_id": order_id, "text": texts[0]}, expect=201,
    )  # fmt: skip
    for text in texts[1:]:
        await suite.call(
            "POST", f"/orders/support/cases/{case['case_id']}/messages", headers=headers,
            json={"text": text},
        )  # fmt: skip

    made = await suite.client.post("/orders/support/admin/training-exports", headers=suite.admin)
    assert made.status_code == 201, made.text
    again = await suite.client.get(
        f"/orders/support/admin/training-exports/{made.json()['export_id']}", headers=suite.admin
    )
    assert again.status_code == 200
    export = again.json()
    blobs = {
        "answer": made.content + again.content,
        "records": json.dumps(export, ensure_ascii=False).encode(),
    }
    found = [
        (what, where)
        for what, needle in _needles(planted)
        for where, blob in blobs.items()
        if needle in blob
    ]
    assert found == []
    # Stable placeholders where the values were; the subject is never named.
    texts_out = [
        m["text"] for r in export["records"] for m in r["messages"] if "[NAME_" in m["text"]
    ]
    assert texts_out, "the planted name became a placeholder"
    manifest = export["manifest"]
    assert manifest["record_count"] == len(export["records"]) >= 1
    assert {"EMAIL", "ID_NUMBER", "PHONE", "ADDRESS"} <= set(manifest["placeholders"])
    assert account_id not in json.dumps(manifest) and case["case_id"] not in str(export)
