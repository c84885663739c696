"""Security and anti-fraud through the gateway (policy 2F, OB-2F-1): the rules flag
accounts from counters and blind indexes; the security team sees the flagged account's
case and reads its account, log and order data under security.anti_fraud only, with the
fields the catalogue gives that purpose; each read is in the user's ledger under that
purpose; the flag events carry no personal data."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest

from kit.events import Event
from kit.testing import topic_events
from tests.e2e.suite import Person, Suite

DISTRICTS = ("西湖区", "上城区", "拱墅区")


async def _security_staff(suite: Suite) -> dict[str, str]:
    staff = Person.new()
    await suite.call(
        "POST",
        "/identity/staff",
        headers=suite.admin,
        json={"phone": staff.phone, "password": staff.password, "roles": ["security"]},
        expect=201,
    )
    return await suite.login(staff.phone, staff.password)


async def _goods(suite: Suite) -> str:
    created = await suite.call(
        "POST", "/orders/admin/goods", headers=suite.admin,
        json={"name": f"Gift card {secrets.token_hex(3)}", "price": "500.00"}, expect=201,
    )  # fmt: skip
    goods_id: str = created["goods_id"]
    return goods_id


async def _order(
    suite: Suite, person: Person, headers: dict[str, str], goods_id: str, **changes: Any
) -> str:
    body = person.order_body(goods_id) | {"remarks": person.remarks}
    body["address"] = body["address"] | changes
    placed = await suite.call(
        "POST", "/orders/orders", headers={**headers, "Idempotency-Key": secrets.token_hex(8)},
        json=body, expect=201,
    )  # fmt: skip
    order_id: str = placed["order_id"]
    return order_id


async def _flagged(suite: Suite, upstream: str, headers: dict[str, str], account_id: str) -> Any:
    return await suite.eventually(
        "GET",
        f"/{upstream}/security/flags?limit=100",
        lambda flags: any(f["account_id"] == account_id for f in flags),
        headers=headers,
    )


async def _events(suite: Suite, service: str, subject: str, type_: str) -> list[Event]:
    topic = f"{suite.topic_prefix}{service}.events"
    deadline = asyncio.get_running_loop().time() + 30
    while not (
        found := [
            e
            for e in await topic_events(suite.bootstrap_servers, topic)
            if e.subject == subject and e.type == type_
        ]
    ):
        assert asyncio.get_running_loop().time() < deadline, f"no {type_} on {topic}"
        await asyncio.sleep(0.5)
    return found


@pytest.mark.obligation("OB-2F-1")
async def test_many_orders_to_many_addresses_flag_the_account_for_the_security_team(
    suite: Suite,
) -> None:
    security = await _security_staff(suite)
    goods_id = await _goods(suite)
    person = Person.new()
    account_id, headers = await suite.register(person)
    for number in range(5):
        await _order(suite, person, headers, goods_id, district=DISTRICTS[number % 3])

    flags = await _flagged(suite, "orders", security, account_id)
    [flag] = [f for f in flags if f["account_id"] == account_id]
    assert (flag["rule"], flag["service"]) == ("orders_to_many_addresses", "orders")
    assert flag["evidence"] == {"orders": 5, "addresses": 3, "window_s": 3600}
    # The case: the account with its log data, and its orders, under security.anti_fraud.
    account = await suite.call("GET", f"/identity/security/accounts/{account_id}", headers=security)
    assert account["phone"] == person.phone  # matching against fraud lists needs the number
    assert account["failed_logins"] == 0
    case = await suite.call(
        "GET", f"/orders/security/accounts/{account_id}/orders", headers=security
    )
    assert [f["rule"] for f in case["flags"]] == ["orders_to_many_addresses"]
    assert len(case["orders"]) == 5
    seen = case["orders"][0]
    # The catalogue's fields for security.anti_fraud: the name masked, the phone and the
    # address in full, the purchase record; nothing it is not given (remarks, invoice).
    assert seen["consignee_name"] == person.name[0] + "*" * (len(person.name) - 1)
    assert seen["consignee_phone"] == person.phone
    assert seen["address_detail"] == person.address_detail
    assert seen["amount_payable"] == "500.00"
    assert person.remarks not in str(case) and "remarks" not in seen

    # The user sees both reads in their ledger, by the security team, under that purpose.
    def both(page: dict[str, Any]) -> bool:
        return len(_security_reads(page)) >= 2

    page = await suite.eventually("GET", "/consent/ledger/me?limit=100", both, headers=headers)
    assert sorted(_security_reads(page)) == [
        ("gateway", "staff", "identity.account"),
        ("gateway", "staff", "orders.order"),
    ]
    # The flag's event names the account and counts, never a value.
    [event] = await _events(suite, "orders", account_id, "com.signature.orders.security.flagged.v1")
    assert event.purpose == "security.anti_fraud"
    for value in person.values().values():
        assert value not in str(event.data)


def _security_reads(page: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (e["who"]["service"], e["who"]["kind"], e["resource"])
        for e in page["entries"]
        if e["purpose"] == "security.anti_fraud" and e["action"] == "read"
    ]


@pytest.mark.obligation("OB-2F-1")
async def test_failed_logins_and_a_phone_shared_by_many_accounts_flag_accounts(
    suite: Suite,
) -> None:
    security = await _security_staff(suite)
    goods_id = await _goods(suite)
    # Failed logins against one account's phone.
    target = Person.new()
    target_id, _ = await suite.register(target)
    for _ in range(5):
        refused = await suite.client.post(
            "/identity/login", json={"phone": target.phone, "password": "not-the-password"}
        )
        assert refused.status_code == 401, refused.text
    flags = await _flagged(suite, "identity", security, target_id)
    [flag] = [f for f in flags if f["account_id"] == target_id]
    assert (flag["rule"], flag["evidence"]) == ("failed_logins", {"failed_logins": 5})
    account = await suite.call("GET", f"/identity/security/accounts/{target_id}", headers=security)
    assert account["failed_logins"] == 5 and account["locked_until"] is not None
    [event] = await _events(
        suite, "identity", target_id, "com.signature.identity.security.flagged.v1"
    )
    assert target.phone not in str(event.data)

    # Three accounts sending orders to one consignee phone.
    shared = Person.new()
    accounts: list[str] = []
    for _ in range(3):
        buyer = Person.new()
        buyer_id, headers = await suite.register(buyer)
        accounts.append(buyer_id)
        await _order(suite, shared, headers, goods_id)
    flags = await _flagged(suite, "orders", security, accounts[0])
    shared_flags = {f["account_id"]: f for f in flags if f["rule"] == "shared_phone"}
    assert set(accounts) <= set(shared_flags)
    assert all(shared_flags[a]["evidence"] == {"accounts": 3} for a in accounts)
    assert shared.phone not in str(flags)
