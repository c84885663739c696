"""Payment through the gateway (policy 2C, issue 21): the real gateway (served on loopback)
in front of the four real services, and the stand-in payment provider as its own process.

Every step is what its client does over HTTP: staff register the provider as a partner in
identity and set it up at orders; the buyer places an order and starts payment; the
provider's "pay" (the buyer confirming in the wallet) makes it send its signed notification
to the gateway's public route; staff assign the courier. Attacks send notifications of
their own: forged, replayed, out of the window, tampered, with another amount, for an
unknown order and from another provider; each is refused, recorded and changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from kit.events import Event
from kit.payment_signature import (
    SIGNATURE_HEADER,
    load_private_key,
    new_ed25519_key,
    public_key_pem,
    sign_headers,
)
from kit.payment_signature import PrivateKey as SigningKey
from kit.testing import StandInProvider, new_subject, outbox_events, standin_provider
from tests.e2e.suite import free_port
from tests.security.conftest import Suite, on_loopback, partner_registration, running_suite

pytestmark = pytest.mark.security

PERSONAL = {
    "consignee_name": "欧阳娜娜",
    "consignee_phone": "13912345678",
    "detail": "文三路 90 号 3 幢 1201 室",
    "invoice_title": "杭州某某科技有限公司",
    "invoice_tax_id": "91330106MA2B0XXX7M",
    "invoice_email": "nana@example.com",
    "remarks": "请放门口",
}


@dataclass
class World:
    suite: Suite
    gateway_url: str
    provider: StandInProvider
    provider_id: str
    provider_key: SigningKey
    admin: dict[str, str]
    goods_id: str
    scarce_goods_id: str

    @property
    def client(self) -> httpx.AsyncClient:
        return self.suite.client

    async def place(self, buyer: dict[str, str], goods_id: str | None = None) -> dict[str, Any]:
        body = {
            "items": [{"goods_id": goods_id or self.goods_id, "quantity": 2}],
            "consignee_name": PERSONAL["consignee_name"],
            "consignee_phone": PERSONAL["consignee_phone"],
            "address": {
                "province": "浙江省",
                "city": "杭州市",
                "district": "西湖区",
                "detail": PERSONAL["detail"],
                "postal_code": "310012",
            },
            "invoice": {
                "title": PERSONAL["invoice_title"],
                "tax_id": PERSONAL["invoice_tax_id"],
                "email": PERSONAL["invoice_email"],
            },
            "remarks": PERSONAL["remarks"],
        }
        response = await self.client.post("/orders/orders", headers=buyer, json=body)
        assert response.status_code == 201, response.text
        placed: dict[str, Any] = response.json()
        return placed

    async def start_payment(self, buyer: dict[str, str], order_id: str) -> dict[str, Any]:
        response = await self.client.post(
            f"/orders/orders/{order_id}/payment",
            headers=buyer,
            json={"provider_id": self.provider_id},
        )
        assert response.status_code == 201, response.text
        payment: dict[str, Any] = response.json()
        return payment

    async def order(self, buyer: dict[str, str], order_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/orders/orders/{order_id}", headers=buyer)
        assert response.status_code == 200, response.text
        order: dict[str, Any] = response.json()
        return order

    async def until_status(self, buyer: dict[str, str], order_id: str, status: str) -> None:
        """Poll the buyer's view until the order has ``status`` (the provider notifies
        asynchronously); fails with the last status after 20 s."""
        last = ""
        for _ in range(200):
            last = (await self.order(buyer, order_id))["status"]
            if last == status:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"order {order_id} stayed {last}, never {status}")

    async def notify(
        self,
        notification: dict[str, Any],
        *,
        key: SigningKey | None = None,
        provider_id: str | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> httpx.Response:
        """A notification to the gateway's public route, signed with ``key`` (the
        provider's own by default), no token."""
        raw = body if body is not None else json.dumps(notification).encode()
        signed = headers or sign_headers(key or self.provider_key, raw)
        return await self.client.post(
            f"/orders/payments/notifications/{provider_id or self.provider_id}",
            content=raw,
            headers={"Content-Type": "application/json", **signed},
        )

    async def refusals(self) -> list[dict[str, Any]]:
        security = self.suite.staff(new_subject("stf"), role="security")
        response = await self.client.get("/orders/admin/payments/refusals", headers=security)
        assert response.status_code == 200, response.text
        refusals: list[dict[str, Any]] = response.json()
        return refusals

    async def order_events(self, order_id: str, suffix: str) -> list[Event]:
        events = await outbox_events(self.suite.services["orders"].state.context.database)
        return [e for e in events if e.type.endswith(suffix) and e.data.get("order_id") == order_id]


def paid_notification(
    order: dict[str, Any], payment: dict[str, Any], **changes: Any
) -> dict[str, Any]:
    return {
        "id": "ntf" + secrets.token_hex(8),
        "event_type": "payment.succeeded",
        "order_id": order["order_id"],
        "provider_reference": payment["provider_reference"],
        "amount": {"total": order["amount_payable"], "currency": order["currency"]},
        "occurred_at": datetime.now(UTC).isoformat(),
        **changes,
    }


async def set_up_provider(
    suite: Suite, admin: dict[str, str], *, api_url: str, public_key: str, name: str
) -> str:
    """What staff do: the partner in identity (kind payment_provider, purpose
    order.payment), then its set-up at orders; the provider's id is its client id."""
    registration = partner_registration(name) | {
        "kind": "payment_provider",
        "purposes": ["order.payment"],
    }
    partner = await suite.client.post("/identity/partners", headers=admin, json=registration)
    assert partner.status_code == 201, partner.text
    provider_id: str = partner.json()["client_id"]
    created = await suite.client.post(
        "/orders/admin/payment-providers",
        headers=admin,
        json={
            "provider_id": provider_id,
            "name": name,
            "api_url": api_url,
            "notification_public_key": public_key,
        },
    )
    assert created.status_code == 201, created.text
    return provider_id


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    directory = tmp_path_factory.mktemp("payments")
    async with (
        running_suite(directory, rate_limit_per_s=0) as suite,
        on_loopback(suite) as gateway_url,
        standin_provider(directory / "provider", port=free_port()) as provider,
        httpx.AsyncClient(base_url=provider.url, trust_env=False) as provider_client,
    ):
        # Orders tells providers to notify the gateway's public origin.
        suite.services["orders"].state.context.settings.payment_notify_base_url = gateway_url
        admin = suite.staff(new_subject("stf"))
        public_key = (await provider_client.get("/public-key")).json()["public_key"]
        provider_id = await set_up_provider(
            suite, admin, api_url=provider.url, public_key=public_key, name="Stand-in Pay"
        )
        listed = await suite.client.get("/orders/admin/payment-providers", headers=admin)
        [shop_key] = [
            p["shop_public_key"] for p in listed.json() if p["provider_id"] == provider_id
        ]
        # The merchant uploads the shop's public key in the provider's console.
        uploaded = await provider_client.put("/merchant", json={"shop_public_key": shop_key})
        assert uploaded.status_code == 204, uploaded.text
        goods = {}
        for label, extra in (("tea", {}), ("scarce", {"payment_window": "scarce"})):
            added = await suite.client.post(
                "/orders/admin/goods",
                headers=suite.staff(new_subject("stf"), "catalogue_manager"),
                json={"name": f"Longjing {label}", "price": "88.00", **extra},
            )
            assert added.status_code == 201, added.text
            goods[label] = added.json()["goods_id"]
        yield World(
            suite=suite,
            gateway_url=gateway_url,
            provider=provider,
            provider_id=provider_id,
            provider_key=load_private_key(provider.key_pem()),
            admin=admin,
            goods_id=goods["tea"],
            scarce_goods_id=goods["scarce"],
        )


@pytest.fixture
async def provider_api(world: World) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=world.provider.url, trust_env=False) as client:
        yield client


def buyer(world: World) -> dict[str, str]:
    return world.suite.user(new_subject())


# --------------------------------------------------------------------------- the flow


@pytest.mark.obligation("OB-2C-1")
async def test_the_provider_receives_only_what_payment_needs(
    world: World, provider_api: httpx.AsyncClient
) -> None:
    headers = buyer(world)
    order = await world.place(headers)
    payment = await world.start_payment(headers, order["order_id"])
    received = (await provider_api.get("/received")).json()
    [request] = [r for r in received if r["body"].get("order_id") == order["order_id"]]
    assert set(request["body"]) == {
        "order_id",
        "amount_payable",
        "currency",
        "description",
        "expires_at",
        "notify_url",
    }
    assert request["body"]["amount_payable"] == "176.00"
    assert request["body"]["description"] == "Longjing tea"
    assert request["body"]["notify_url"] == (
        f"{world.gateway_url}/orders/payments/notifications/{world.provider_id}"
    )
    sent = json.dumps(request, ensure_ascii=False)
    for value in PERSONAL.values():
        assert value not in sent
    assert payment["provider_reference"] and payment["status"] == "pending"


async def test_a_paid_order_gets_its_courier_and_one_paid_event(
    world: World, provider_api: httpx.AsyncClient
) -> None:
    headers = buyer(world)
    order = await world.place(headers)
    payment = await world.start_payment(headers, order["order_id"])
    paid = await provider_api.post(f"/v3/payments/{payment['provider_reference']}/pay")
    assert paid.status_code == 202, paid.text
    await world.until_status(headers, order["order_id"], "paid")

    courier = new_subject("ptn")
    assigned = await world.client.put(
        f"/orders/admin/orders/{order['order_id']}/partners",
        headers=world.admin,
        json={"logistics_partner_id": courier},
    )
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["status"] == "assigned"
    events = await world.order_events(order["order_id"], ".paid.v1")
    assert len(events) == 1
    assert set(events[0].data) == {"order_id", "payment_id", "provider_id"}
    shown = await world.client.get(f"/orders/orders/{order['order_id']}/payment", headers=headers)
    assert shown.json()["status"] == "paid"


async def test_another_users_order_cannot_be_paid_or_cancelled(world: World) -> None:
    owner, stranger = buyer(world), buyer(world)
    order = await world.place(owner)
    for path in ("payment", "cancellation"):
        body = {"provider_id": world.provider_id} if path == "payment" else None
        answer = await world.client.post(
            f"/orders/orders/{order['order_id']}/{path}", headers=stranger, json=body
        )
        assert answer.status_code == 404, answer.text
    assert (await world.order(owner, order["order_id"]))["status"] == "placed"


async def test_the_same_notification_twice_and_at_once_makes_one_transition(
    world: World,
) -> None:
    headers = buyer(world)
    order = await world.place(headers)
    payment = await world.start_payment(headers, order["order_id"])
    notification = paid_notification(order, payment)
    together = await asyncio.gather(*(world.notify(notification) for _ in range(3)))
    again = await world.notify(notification)
    outcomes = sorted(r.json()["outcome"] for r in [*together, again])
    assert [r.status_code for r in [*together, again]] == [200] * 4
    assert outcomes == ["duplicate", "duplicate", "duplicate", "paid"]
    history = (await world.order(headers, order["order_id"]))["status_history"]
    assert [step["status"] for step in history] == ["placed", "paid"]
    assert len(await world.order_events(order["order_id"], ".paid.v1")) == 1


async def test_a_paid_order_cancelled_before_pickup_is_refunded(
    world: World, provider_api: httpx.AsyncClient
) -> None:
    headers = buyer(world)
    order = await world.place(headers)
    payment = await world.start_payment(headers, order["order_id"])
    await provider_api.post(f"/v3/payments/{payment['provider_reference']}/pay")
    await world.until_status(headers, order["order_id"], "paid")

    cancelled = await world.client.post(
        f"/orders/orders/{order['order_id']}/cancellation", headers=headers
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelling"
    refund_request = [
        r["body"]
        for r in (await provider_api.get("/received")).json()
        if r["path"] == "/v3/refunds"
    ]
    assert {"refund_id": cancelled.json()["refund_id"], "amount": "176.00"}.items() <= (
        refund_request[-1].items()
    )
    await world.until_status(headers, order["order_id"], "cancelled")
    shown = await world.client.get(f"/orders/orders/{order['order_id']}/payment", headers=headers)
    assert shown.json()["status"] == "refunded" and shown.json()["refunded_at"]
    assert len(await world.order_events(order["order_id"], ".refunded.v1")) == 1


async def test_an_unpaid_order_is_cancelled_when_its_payment_window_ends(world: World) -> None:
    headers = buyer(world)
    scarce = await world.place(headers, world.scarce_goods_id)
    standard = await world.place(headers)
    placed_at = datetime.fromisoformat(scarce["created_at"])
    assert datetime.fromisoformat(scarce["pay_by"]) - placed_at == timedelta(minutes=30)
    assert datetime.fromisoformat(standard["pay_by"]) - placed_at >= timedelta(hours=23)
    orders_app = world.suite.services["orders"]
    orders_app.state.retention_clock = lambda: datetime.now(UTC) + timedelta(hours=1)
    policy = world.suite.staff(new_subject("stf"))
    try:
        swept = await world.client.post("/orders/admin/payments/unpaid-sweep", headers=policy)
    finally:
        orders_app.state.retention_clock = lambda: datetime.now(UTC)
    assert swept.status_code == 200, swept.text
    assert (await world.order(headers, scarce["order_id"]))["status"] == "cancelled"
    assert (await world.order(headers, standard["order_id"]))["status"] == "placed"
    late = await world.client.post(
        f"/orders/orders/{scarce['order_id']}/payment",
        headers=headers,
        json={"provider_id": world.provider_id},
    )
    assert late.status_code == 409, late.text


# --------------------------------------------------------------------------- attacks


Attack = Callable[[World, dict[str, Any], dict[str, Any]], Awaitable[httpx.Response]]


async def _forged(world: World, order: dict[str, Any], payment: dict[str, Any]) -> httpx.Response:
    """Signed by a key of the attacker's, claiming the provider's key serial."""
    notification = paid_notification(order, payment)
    raw = json.dumps(notification).encode()
    honest = sign_headers(world.provider_key, raw)
    forged = sign_headers(new_ed25519_key(), raw)
    forged_headers = {**honest, SIGNATURE_HEADER: forged[SIGNATURE_HEADER]}
    return await world.notify(notification, headers=forged_headers, body=raw)


async def _replayed(world: World, order: dict[str, Any], payment: dict[str, Any]) -> httpx.Response:
    """A signed message captured in flight and sent again (same nonce): the first copy was
    refused for its amount, so only the replay is under test."""
    notification = paid_notification(order, payment, amount={"total": "0.01", "currency": "CNY"})
    raw = json.dumps(notification).encode()
    headers = sign_headers(world.provider_key, raw)
    first = await world.notify(notification, headers=headers, body=raw)
    assert first.status_code == 422
    return await world.notify(notification, headers=headers, body=raw)


async def _out_of_window(
    world: World, order: dict[str, Any], payment: dict[str, Any]
) -> httpx.Response:
    raw = json.dumps(paid_notification(order, payment)).encode()
    stale = int((datetime.now(UTC) - timedelta(minutes=10)).timestamp())
    headers = sign_headers(world.provider_key, raw, timestamp=stale)
    return await world.notify({}, headers=headers, body=raw)


async def _tampered_amount(
    world: World, order: dict[str, Any], payment: dict[str, Any]
) -> httpx.Response:
    """The provider's signed message with its amount changed in flight."""
    notification = paid_notification(order, payment, amount={"total": "0.01", "currency": "CNY"})
    honest = paid_notification(order, payment, id=notification["id"])
    headers = sign_headers(world.provider_key, json.dumps(honest).encode())
    return await world.notify(notification, headers=headers)


async def _wrong_amount(
    world: World, order: dict[str, Any], payment: dict[str, Any]
) -> httpx.Response:
    """Signed by the provider itself, but not the amount payable."""
    notification = paid_notification(order, payment, amount={"total": "1.00", "currency": "CNY"})
    return await world.notify(notification)


async def _unknown_order(
    world: World, order: dict[str, Any], payment: dict[str, Any]
) -> httpx.Response:
    return await world.notify(paid_notification(order, payment, order_id="ord_nosuchorder"))


async def _other_provider(
    world: World, order: dict[str, Any], payment: dict[str, Any]
) -> httpx.Response:
    """Another registered provider, with its own valid key, claims this provider's payment."""
    other_key = new_ed25519_key()
    other_id = await set_up_provider(
        world.suite,
        world.admin,
        api_url="http://127.0.0.1:9/",
        public_key=public_key_pem(other_key),
        name=f"Other Pay {secrets.token_hex(3)}",
    )
    return await world.notify(
        paid_notification(order, payment), key=other_key, provider_id=other_id
    )


async def _unsigned(world: World, order: dict[str, Any], payment: dict[str, Any]) -> httpx.Response:
    return await world.client.post(
        f"/orders/payments/notifications/{world.provider_id}",
        json=paid_notification(order, payment),
    )


ATTACKS: dict[str, tuple[Attack, int, str]] = {
    "forged": (_forged, 401, "bad_signature"),
    "replayed": (_replayed, 401, "replayed"),
    "out_of_window": (_out_of_window, 401, "out_of_window"),
    "tampered_amount": (_tampered_amount, 401, "bad_signature"),
    "wrong_amount": (_wrong_amount, 422, "amount_mismatch"),
    "unknown_order": (_unknown_order, 404, "unknown_order"),
    "other_provider": (_other_provider, 404, "unknown_order"),
    "unsigned": (_unsigned, 401, "signature_missing"),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
async def test_a_hostile_notification_is_refused_recorded_and_changes_nothing(
    world: World, attack: str
) -> None:
    send, status, reason = ATTACKS[attack]
    headers = buyer(world)
    order = await world.place(headers)
    payment = await world.start_payment(headers, order["order_id"])

    answer = await send(world, order, payment)

    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["reason"] == reason
    assert (await world.order(headers, order["order_id"]))["status"] == "placed"
    assert await world.order_events(order["order_id"], ".paid.v1") == []
    latest = (await world.refusals())[0]
    assert latest["reason"] == reason
    # the genuine notification still goes through afterwards
    genuine = await world.notify(paid_notification(order, payment))
    assert genuine.status_code == 200 and genuine.json()["outcome"] == "paid"
