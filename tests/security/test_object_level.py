"""Object- and function-level authorisation (OWASP API1, API5; OB-3-1, OB-3-2): a matrix
over every exposed route of ``policy/routes.yaml`` with a path parameter, through the real
gateway in front of the four real services (in-process, SQLite).

The objects are made first, through the gateway, by their rightful holders: user A's cart
item, cart share, search history entry, order, support case (its membership verified by
the agent), consent receipt, rights request and ward; partner Y's assigned order;
staff's goods, partner registration, incident, recipient, transfer and training export.
Then every principal who must not reach an object (user B, the partners not assigned, a
user on staff routes, a partner on user routes, staff on user and partner routes, a
customer service agent on the privacy officer's routes) calls each route on it. Every cell must
be 403 or 404, a problem document, and carry none of the object's data; afterwards the
objects are as their holders left them. A control call by the rightful holder proves
each readable object exists and answers, so the refusals are about the caller.

A new route with a path parameter joins the matrix by itself: its parameter must be one
:data:`OBJECTS` knows (else the test names it), and its caller class follows from its
scopes. Public routes (goods, shared carts by their secret token, policy versions) serve
anyone by design and are listed in :data:`PUBLIC_BY_DESIGN`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import yaml

from kit.auth import PARTNER_SCOPES, STAFF_ROLE_SCOPES, STAFF_SCOPES, USER_SCOPES
from kit.clock import china_today
from kit.ids import new_id
from kit.models import utcnow
from kit.payment_signature import new_ed25519_key, public_key_pem
from kit.settings import REPO_ROOT
from kit.testing import new_subject
from services.consent.consents.models import Guardianship
from services.orders.orders import service as orders_service
from tests.gateway.conftest import DETAIL, EMAIL, NAME, PHONE, SECRETS, TAX_ID
from tests.security.conftest import Suite, partner_registration, running_suite
from tests.services.consent.test_consents import LOCATION_SHOWN
from tests.services.consent.test_incidents import TITLE, incident
from tests.services.transfer.conftest import key_pair, recipient_body

pytestmark = pytest.mark.security

ROUTES_FILE = REPO_ROOT / "policy" / "routes.yaml"

#: Public routes with a path parameter, and why anyone may call them.
PUBLIC_BY_DESIGN = {
    "GET /orders/goods/{goods_id}": "the shop's goods",
    "GET /orders/shared-carts/{token}": "a share link: the unguessable token is the grant",
    "GET /consent/policy/versions/{version}": "the published privacy policy",
    "GET /consent/lists/versions/{number}": "the published lists of what is collected and shared",
    "POST /orders/payments/notifications/{provider_id}": (
        "a payment provider's notification: its signature is the grant "
        "(tests/security/test_payments.py attacks it)"
    ),
}

#: Objects every user may read: not owned by a user (a recipient's disclosure is shown
#: to every user before they consent).
SHARED_WITH_USERS = {"GET /transfer/recipients/{recipient_id}/disclosure"}

GRANT: dict[str, Any] = {"purpose": "location", "granted": True, "shown": LOCATION_SHOWN}

#: Routes whose answer needs what an in-process suite lacks: 503 (documented) to the holder.
UNAVAILABLE_IN_PROCESS = {
    "GET /consent/rights-requests/{request_id}/export": 503,  # no service clients configured
    "GET /orders/orders/{order_id}/payment": 404,  # no payment provider here to pay with
    "GET /identity/security/accounts/{account_id}": 404,  # user A's token has no account here
}

#: A valid body for each writing route, so a refusal is never a validation error.
BODIES: dict[str, dict[str, Any]] = {
    "POST /identity/partners/{client_id}/assessments": {
        "assessed_on": str(china_today()),
        "result": "failed",
        "valid_until": str(china_today() + timedelta(days=1)),
    },
    "PATCH /orders/admin/goods/{goods_id}": {"price": "0.01"},
    "PUT /orders/admin/goods/{goods_id}/city": {"city": "杭州市"},
    "PATCH /orders/cart/items/{item_id}": {"quantity": 9},
    "POST /orders/support/cases/{case_id}/messages": {"text": "attack"},
    "POST /orders/support/agent/cases/{case_id}/messages": {"text": "attack"},
    "POST /orders/support/agent/cases/{case_id}/verification": {
        "order_id": "ord_attacker",
        "phone_last4": "0000",
    },
    "PUT /orders/admin/orders/{order_id}/partners": {"logistics_partner_id": "ptn_attacker"},
    "POST /orders/orders/{order_id}/payment": {"provider_id": "ptn_attacker"},
    "POST /orders/partner/orders/{order_id}/delivery": {"status": "delivered"},
    "POST /consent/wards/{ward_id}/consents": GRANT,
    "POST /transfer/recipients/{recipient_id}/legal-bases": {
        "kind": "standard_contract",
        "reference": "SC-ATTACK",
        "decided_on": str(china_today()),
        "review_due": str(china_today() + timedelta(days=30)),
    },
    "POST /transfer/recipients/{recipient_id}/assessments": {
        "assessed_on": str(china_today()),
        "result": "failed",
    },
}

PRINCIPALS = (
    "user_a",
    "user_b",
    "partner_y",
    "partner_x",
    "partner_customs",
    "privacy_officer",
    "catalogue_manager",
    "customer_service",
)


#: The scopes each principal's token holds (as :func:`build_world` mints them).
HELD: dict[str, frozenset[str]] = {
    "user_a": frozenset(USER_SCOPES),
    "user_b": frozenset(USER_SCOPES),
    "partner_y": frozenset({"partner:logistics"}),
    "partner_x": frozenset({"partner:logistics"}),
    "partner_customs": frozenset({"partner:customs"}),
    "privacy_officer": frozenset(STAFF_ROLE_SCOPES["privacy_officer"]),
    "catalogue_manager": frozenset(STAFF_ROLE_SCOPES["catalogue_manager"]),
    "customer_service": frozenset(STAFF_ROLE_SCOPES["customer_service"]),
}


#: Routes whose object is named by the caller's relation to it: a user who is not the
#: ward's recorded guardian is told so (403 ``not-guardian``), not 404.
NOT_THE_HOLDER_403 = {
    "POST /consent/wards/{ward_id}/consents",
    "GET /consent/wards/{ward_id}/consents",
    "GET /consent/wards/{ward_id}/consents/receipts",
}


def refusal(key: str, attacker: str, scopes: list[str]) -> int:
    """The one right refusal: 403 when the token holds none of the route's scopes (the
    gateway refuses the function), 404 when it may call the route but the object is not
    its own (an object it may not reach does not exist for it), but see
    :data:`NOT_THE_HOLDER_403`."""
    if not HELD[attacker] & set(scopes) or key in NOT_THE_HOLDER_403:
        return 403
    return 404


def exposed_routes_with_ids() -> list[tuple[str, str, list[str]]]:
    """(method, template, scopes) of every exposed route with a path parameter."""
    entries = yaml.safe_load(ROUTES_FILE.read_text(encoding="utf-8"))["routes"]
    found = []
    for entry in entries:
        method, template = entry["route"].split()
        if "{" not in template or entry.get("internal"):
            continue
        scopes = list(entry.get("scopes") or entry.get("purposes") or [])
        found.append((method, template, scopes))
    return found


def rightful(key: str, scopes: list[str]) -> frozenset[str]:
    """Who may reach the object: from the route's scopes, so new routes classify themselves."""
    if key in SHARED_WITH_USERS:
        return frozenset({"user_a", "user_b"})
    if set(scopes) <= USER_SCOPES:
        return frozenset({"user_a"})
    if set(scopes) <= PARTNER_SCOPES:
        return frozenset({"partner_y"})
    if set(scopes) <= STAFF_SCOPES:
        return frozenset(
            role
            for role in ("privacy_officer", "catalogue_manager", "customer_service")
            if HELD[role] & set(scopes)
        )
    raise AssertionError(f"{key}: scopes {scopes} mix kinds of principal")


ROUTES = exposed_routes_with_ids()
MATRIX = [
    (method, template, attacker, refusal(f"{method} {template}", attacker, scopes))
    for method, template, scopes in ROUTES
    if f"{method} {template}" not in PUBLIC_BY_DESIGN
    for attacker in PRINCIPALS
    if attacker not in rightful(f"{method} {template}", scopes)
]


#: Routes that answer only for one kind of object: the parameter takes that object.
OBJECT_OF_ROUTE: dict[str, dict[str, str]] = {
    "GET /consent/rights-requests/{request_id}/explanation": {
        "request_id": "explanation_request_id"
    },
    "POST /consent/rights-requests/{request_id}/delivery": {"request_id": "portability_request_id"},
}


@dataclass
class World:
    """The objects and who holds them."""

    suite: Suite
    headers: dict[str, dict[str, str]]
    objects: dict[str, str] = field(default_factory=dict)
    #: Data of the objects, none of which an attacker's answer may carry.
    secrets: set[str] = field(default_factory=set)

    def path(self, template: str, method: str = "GET") -> str:
        path = template
        for name, key in OBJECT_OF_ROUTE.get(f"{method} {template}", {}).items():
            path = path.replace("{" + name + "}", self.objects[key])
        for name, value in self.objects.items():
            path = path.replace("{" + name + "}", value)
        assert "{" not in path, f"{template}: no object for its parameter; add it to World"
        return path


async def _ok(answer: Any, status: int = 200) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def _support_objects(world: World, order_id: str) -> None:
    """User A's case about the order, verified by the agent; a training export."""
    client, headers = world.suite.client, world.headers
    user_a, officer = headers["user_a"], headers["privacy_officer"]
    case = await _ok(
        await client.post(
            "/orders/support/cases",
            json={"topic": "order", "order_id": order_id, "text": "Where is my parcel?"},
            headers=user_a,
        ),
        201,
    )
    world.objects["case_id"] = case["case_id"]
    await _ok(
        await client.post(
            f"/orders/support/agent/cases/{case['case_id']}/verification",
            json={"order_id": order_id, "phone_last4": PHONE[-4:]},
            headers=headers["customer_service"],
        )
    )
    training = await _ok(
        await client.post("/orders/support/admin/training-exports", headers=officer), 201
    )
    world.objects["export_id"] = training["export_id"]


async def build_world(suite: Suite) -> World:
    client = suite.client
    a, b = new_subject(), new_subject()
    officer = suite.staff(new_subject("stf"))
    identity = suite.clients["identity"]
    y = await _ok(
        await client.post(
            "/identity/partners", json=partner_registration("Courier Y Ltd"), headers=officer
        ),
        201,
    )
    x = await _ok(
        await client.post(
            "/identity/partners", json=partner_registration("Courier X Ltd"), headers=officer
        ),
        201,
    )
    assert identity is not None
    headers = {
        "user_a": suite.user(a),
        "user_b": suite.user(b),
        "partner_y": suite.partner(y["client_id"], "partner:logistics", ["logistics.delivery"]),
        "partner_x": suite.partner(x["client_id"], "partner:logistics", ["logistics.delivery"]),
        "partner_customs": suite.partner(
            new_subject("ptn"), "partner:customs", ["customs.clearance"]
        ),
        "privacy_officer": officer,
        "catalogue_manager": suite.staff(new_subject("stf"), "catalogue_manager"),
        "customer_service": suite.staff(new_subject("stf"), "customer_service"),
    }
    world = World(suite=suite, headers=headers)
    world.objects["account_id"] = a
    world.objects["client_id"] = y["client_id"]
    provider = await _ok(
        await client.post(
            "/orders/admin/payment-providers",
            json={
                "provider_id": y["client_id"],
                "name": "Wallet Y",
                "api_url": "http://127.0.0.1:9/",
                "notification_public_key": public_key_pem(new_ed25519_key()),
            },
            headers=officer,
        ),
        201,
    )
    world.objects["provider_id"] = provider["provider_id"]
    world.secrets |= {y["client_secret"], "ops@partner.example", *SECRETS, TITLE}

    goods = await _ok(
        await client.post(
            "/orders/admin/goods",
            json={"name": "Tea set", "price": "99.90"},
            headers=headers["catalogue_manager"],
        ),
        201,
    )
    world.objects["goods_id"] = goods["goods_id"]
    user_a = headers["user_a"]
    item = await _ok(
        await client.post(
            "/orders/cart/items", json={"goods_id": goods["goods_id"]}, headers=user_a
        ),
        201,
    )
    world.objects["item_id"] = item["item_id"]
    searched = await _ok(
        await client.post("/orders/search", json={"query": "Tea set"}, headers=user_a)
    )
    world.objects["entry_id"] = searched["entry_id"]
    share = await _ok(await client.post("/orders/cart/shares", headers=user_a), 201)
    world.objects["share_id"] = share["share_id"]
    world.secrets.add(share["token"])
    order = await _ok(
        await client.post(
            "/orders/orders",
            json={
                "items": [{"goods_id": goods["goods_id"], "quantity": 1}],
                "consignee_name": NAME,
                "consignee_phone": PHONE,
                "address": {
                    "province": "浙江省",
                    "city": "杭州市",
                    "district": "西湖区",
                    "detail": DETAIL,
                },
                "invoice": {"title": "Signature Ltd", "tax_id": TAX_ID, "email": EMAIL},
            },
            headers={**user_a, "Idempotency-Key": new_id("idem")},
        ),
        201,
    )
    order_id = order["order_id"]
    world.objects["order_id"] = order_id
    orders_app = suite.services["orders"]
    async with orders_app.state.context.database.session() as session:
        await orders_service.change_status(
            session, events=orders_app.state.context.events, order_id=order_id,
            status="paid", actor="test",
        )  # fmt: skip
    await _ok(
        await client.put(
            f"/orders/admin/orders/{order_id}/partners",
            json={"logistics_partner_id": y["client_id"]},
            headers=officer,
        )
    )
    await _support_objects(world, order_id)
    consent = await _ok(
        await client.post("/consent/consents", json=GRANT, headers=user_a),
        201,
    )
    world.objects["receipt_id"] = consent["id"]
    ward = new_subject()
    async with suite.services["consent"].state.context.database.session() as session:
        session.add(
            Guardianship(
                ward_account_id=ward,
                guardian_account_id=a,
                linked_at=utcnow(),
                event_id=new_id("evt"),
            )
        )
    world.objects["ward_id"] = ward
    await _ok(
        await client.post(
            f"/consent/wards/{ward}/consents",
            json=GRANT,
            headers=user_a,
        ),
        201,
    )
    rights = await _ok(
        await client.post("/consent/rights-requests", json={"kind": "access"}, headers=user_a),
        202,
    )
    world.objects["request_id"] = rights["id"]
    for kind, extra in (
        ("explanation", {}),
        ("portability", {"destination": {"name": "Other Shop", "url": "https://other.example/in"}}),
    ):
        filed = await _ok(
            await client.post(
                "/consent/rights-requests", json={"kind": kind, **extra}, headers=user_a
            ),
            202,
        )
        world.objects[f"{kind}_request_id"] = filed["id"]
    created = await _ok(
        await client.post("/consent/incidents", json=incident(), headers=officer), 201
    )
    world.objects["incident_id"] = created["id"]
    recipient = await _ok(
        await client.post("/transfer/recipients", json=recipient_body(key_pair()), headers=officer),
        201,
    )
    world.objects["recipient_id"] = recipient["id"]
    transfer = await client.post(
        "/transfer/transfers",
        json={
            "subject": a,
            "order_id": order_id,
            "recipient_id": recipient["id"],
            "categories": ["user.name"],
        },
        headers=officer,
    )
    world.objects["transfer_id"] = (await _ok(transfer, 202))["id"]
    return world


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with running_suite(tmp_path_factory.mktemp("matrix"), rate_limit_per_s=0) as suite:
        yield await build_world(suite)


def test_the_matrix_covers_every_route_with_an_id() -> None:
    """Each exposed route with a path parameter is either public by design or attacked."""
    attacked = {f"{method} {template}" for method, template, _, _ in MATRIX}
    every = {f"{method} {template}" for method, template, _ in ROUTES}
    assert every == attacked | set(PUBLIC_BY_DESIGN)
    assert set(PUBLIC_BY_DESIGN) <= every, "a public-by-design route left the table"
    assert len(attacked) >= 25


async def test_rightful_holders_reach_their_objects(world: World) -> None:
    """The control: every readable object answers its holder, so refusals are about the
    caller and not a missing object."""
    for method, template, scopes in ROUTES:
        key = f"{method} {template}"
        if method != "GET" or key in PUBLIC_BY_DESIGN:
            continue
        holder = sorted(rightful(key, scopes))[0]
        answer = await world.suite.client.get(
            world.path(template, method), headers=world.headers[holder]
        )
        expected = UNAVAILABLE_IN_PROCESS.get(key, 200)
        assert answer.status_code == expected, f"{key} as {holder}: {answer.text}"


@pytest.mark.obligation("OB-4-7")
@pytest.mark.parametrize(
    ("method", "template", "attacker", "status"),
    MATRIX,
    ids=[f"{method} {template} as {attacker}" for method, template, attacker, _ in MATRIX],
)
async def test_a_caller_without_the_right_gets_403_or_404_and_no_data(
    world: World, method: str, template: str, attacker: str, status: int
) -> None:
    body = BODIES.get(f"{method} {template}")
    answer = await world.suite.client.request(
        method, world.path(template, method), json=body, headers=world.headers[attacker]
    )
    assert answer.status_code == status, f"{answer.status_code}: {answer.text}"
    assert answer.headers["content-type"].startswith("application/problem+json")
    for secret in world.secrets:
        assert secret not in answer.text


@pytest.mark.obligation("OB-4-7")
async def test_the_objects_are_as_their_holders_left_them(world: World) -> None:
    """After the whole matrix: nothing an attacker sent changed anything."""
    client, headers = world.suite.client, world.headers
    cart = await _ok(await client.get("/orders/cart", headers=headers["user_a"]))
    assert [item["quantity"] for item in cart["cart_items"]] == [1]
    shares = (await client.get("/orders/cart/shares", headers=headers["user_a"])).json()
    assert [(s["share_id"], s["revoked_at"]) for s in shares] == [(world.objects["share_id"], None)]
    waybill = await _ok(
        await client.get(
            f"/orders/partner/orders/{world.objects['order_id']}", headers=headers["partner_y"]
        )
    )
    assert waybill["status"] != "completed"
    goods = await _ok(await client.get(f"/orders/goods/{world.objects['goods_id']}"))
    assert goods["price"] == "99.90"
    partner = await _ok(
        await client.get(
            f"/identity/partners/{world.objects['client_id']}", headers=headers["privacy_officer"]
        )
    )
    assert partner["status"] == "active" and partner["assessment_result"] == "passed"
