"""A user's data from registration to deletion, through the gateway of the running suite
(real processes, PostgreSQL and Kafka; see :mod:`tests.e2e.suite`).

1. The journey: register, verify (real name, then face after its separate consent), consent
   to location and to one overseas recipient, order
   ordinary and cross-border goods, a courier delivers; then an access request gathers one
   export from every service, holding this user's data and nobody else's.
2. The same user asks for deletion: every service answers; then the account cannot log in,
   identity's data is gone, kept orders hold the transaction record only, consents are
   withdrawn, no transfer can start, and no value of any personal field of the catalogue
   (phone, name, address, ID number, taxpayer id, email, remarks, face bytes, coordinates,
   ...; ``tests.e2e.scan.CATALOGUE_VALUES``) is left in plaintext in any database, topic
   (dead-letter topics included) or log.
3. Retention: an order whose periods ended is anonymised by the sweep, and the events say so.
4. A service is down during a deletion: the request shows it overdue, then completes once it
   is back, each service having answered once.
5. A purpose ceases: collection for it is refused at once, at the gateway and at the service,
   the service says what it did with the purpose's data, and its users are told.

The tests of this module share the suite and run in order (the second continues the
first's user).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from kit.clock import china_today
from kit.events import Event
from kit.testing import eventually, read_records, topic_events
from tests.e2e.scan import scan_suite, topics_under
from tests.e2e.suite import Person, Suite
from tests.kit.support import parsed_by_cloudevents_sdk

SAMPLE_PER_TOPIC = 50


@dataclass
class World:
    """What staff set up once: goods, partners and an overseas recipient."""

    tea: str
    wine: str
    courier: str
    courier_headers: dict[str, str]
    broker: str
    recipient: dict[str, Any]


@dataclass
class Shopper:
    person: Person
    account_id: str
    headers: dict[str, str]
    orders: list[str] = field(default_factory=list)


def _recipient_body() -> dict[str, Any]:
    today = china_today()
    return {
        "legal_name": "Harbour Freight Pte. Ltd.",
        "contact": "Data Protection Officer, 1 Harbour Road, Singapore 099999",
        "country_region": "Singapore",
        "purpose": "Deliver the goods of cross-border orders to the buyer",
        "processing_method": "Stored encrypted in Singapore, deleted 90 days after delivery",
        "data_categories": ["user.contact.address", "user.contact.address.region", "user.name"],
        "how_to_exercise_rights": "Ask the privacy center, quoting the waybill id",
        "dpa_reference": "DPA-2026-017",
        "public_key_pem": _public_key_pem(),
        "delivery": "kafka",
        "cross_border_logistics": True,
        "legal_basis": {
            "kind": "standard_contract",
            "reference": "SC-FILING-2026-0042",
            "decided_on": str(today - timedelta(days=30)),
            "review_due": str(today + timedelta(days=365)),
        },
        "assessment": {"assessed_on": str(today - timedelta(days=10)), "result": "passed"},
    }


def _public_key_pem() -> str:
    return (
        x25519.X25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
async def world(suite: Suite) -> World:
    admin = suite.admin
    tea = await suite.call(
        "POST",
        "/orders/admin/goods",
        headers=admin,
        json={"name": "Tea", "price": "99.90"},
        expect=201,
    )
    wine = await suite.call(
        "POST",
        "/orders/admin/goods",
        headers=admin,
        json={"name": "Wine", "price": "120.00", "cross_border": True},
        expect=201,
    )
    courier, courier_headers = await suite.partner("logistics", "logistics.delivery")
    broker, _ = await suite.partner("customs_broker", "customs.clearance")
    recipient = await suite.call(
        "POST", "/transfer/recipients", headers=admin, json=_recipient_body(), expect=201
    )
    return World(
        tea=tea["goods_id"],
        wine=wine["goods_id"],
        courier=courier,
        courier_headers=courier_headers,
        broker=broker,
        recipient=recipient,
    )


def _order_body(person: Person, goods_id: str, *, customs: bool = False) -> dict[str, Any]:
    body = person.order_body(goods_id) | {
        "invoice": {"title": person.name, "tax_id": person.tax_id, "email": person.email},
        "extra_phones": [person.extra_phone],
        "remarks": person.remarks,
    }
    if customs:
        body["customs"] = {"name": person.name, "id_number": person.id_number}
    return body


async def _consent(
    suite: Suite, shopper: Shopper, purpose: str, shown: dict[str, Any] | None = None
) -> None:
    await suite.call(
        "POST",
        "/consent/consents",
        headers=shopper.headers,
        json={"purpose": purpose, "granted": True, "shown": shown or {"text": f"Allow {purpose}?"}},
        expect=201,
    )


async def _place_and_deliver(
    suite: Suite, world: World, shopper: Shopper, goods_id: str, *, customs: bool = False
) -> str:
    placed = await suite.call(
        "POST",
        "/orders/orders",
        headers={**shopper.headers, "Idempotency-Key": secrets.token_hex(8)},
        json=_order_body(shopper.person, goods_id, customs=customs),
        expect=201,
    )
    order_id: str = placed["order_id"]
    shopper.orders.append(order_id)
    await suite.pay(shopper.headers, order_id)
    assignment: dict[str, Any] = {"logistics_partner_id": world.courier}
    if customs:
        assignment["customs_broker_id"] = world.broker
    await suite.call(
        "PUT", f"/orders/admin/orders/{order_id}/partners", headers=suite.admin, json=assignment
    )
    waybill = await suite.call(
        "GET", f"/orders/partner/orders/{order_id}", headers=world.courier_headers
    )
    assert shopper.person.phone not in str(waybill)  # the privacy waybill
    for status in ("picked_up", "in_transit", "delivered"):
        await suite.call(
            "POST",
            f"/orders/partner/orders/{order_id}/delivery",
            headers=world.courier_headers,
            json={"status": status},
        )
    return order_id


async def _new_shopper(suite: Suite) -> Shopper:
    person = Person.new()
    account_id, headers = await suite.register(person)
    return Shopper(person=person, account_id=account_id, headers=headers)


async def _file(suite: Suite, shopper: Shopper, kind: str) -> str:
    filed = await suite.call(
        "POST",
        "/consent/rights-requests",
        headers=shopper.headers,
        json={"kind": kind},
        expect=202,
    )
    request_id: str = filed["id"]
    return request_id


async def _officer_view(suite: Suite, request_id: str) -> dict[str, Any]:
    """The request as the privacy officer's list shows it (unfinished or completed)."""
    for query in ("?limit=1000", "?status=completed&limit=1000"):
        for request in await suite.call(
            "GET", f"/consent/rights-requests{query}", headers=suite.admin
        ):
            if request["id"] == request_id:
                found: dict[str, Any] = request
                return found
    raise AssertionError(f"the privacy officer does not see {request_id}")


async def _until(
    suite: Suite, request_id: str, check: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + 60
    while not check(request := await _officer_view(suite, request_id)):
        assert asyncio.get_running_loop().time() < deadline, f"request stuck: {request}"
        await asyncio.sleep(0.3)
    return request


async def _completed(suite: Suite, request_id: str) -> dict[str, Any]:
    """The request once every service answered."""
    return await _until(suite, request_id, lambda request: request["status"] == "completed")


async def _published(suite: Suite, service: str, wanted: Callable[[Event], bool]) -> list[Event]:
    """The events of ``service``'s topic ``wanted`` picks, once there is one (the relay
    publishes shortly after the commit)."""
    topic = f"{suite.topic_prefix}{service}.events"
    deadline = asyncio.get_running_loop().time() + 30
    while not (
        found := [e for e in await topic_events(suite.bootstrap_servers, topic) if wanted(e)]
    ):
        assert asyncio.get_running_loop().time() < deadline, f"nothing of the kind on {topic}"
        await asyncio.sleep(0.5)
    return found


@pytest.fixture(scope="module")
async def shopper(suite: Suite, world: World) -> Shopper:
    """Scenario 1's user, after the whole journey."""
    shopper = await _new_shopper(suite)
    verified = await suite.call(
        "POST",
        "/identity/verifications",
        headers=shopper.headers,
        json={
            "real_name": shopper.person.name,
            "id_number": shopper.person.id_number,
        },
        expect=201,
    )
    assert verified["level"] == "real_name"
    # Real-person verification is a separate purpose: refused until its own consent.
    face = {"face_image": shopper.person.face_image}
    without = await suite.client.post(
        "/identity/verifications/real-person", headers=shopper.headers, json=face
    )
    assert without.status_code == 403 and without.json()["type"].endswith("/consent-required")
    await _consent(suite, shopper, "sensitive.face_verification")
    deadline = asyncio.get_running_loop().time() + 30
    while (
        raised := await suite.client.post(
            "/identity/verifications/real-person", headers=shopper.headers, json=face
        )
    ).status_code == 403:
        assert asyncio.get_running_loop().time() < deadline, raised.text
        await asyncio.sleep(0.3)
    assert raised.status_code == 201 and raised.json()["level"] == "real_person", raised.text
    await _consent(suite, shopper, "location")
    disclosure = await suite.call(
        "GET",
        f"/transfer/recipients/{world.recipient['id']}/disclosure",
        headers=shopper.headers,
    )
    await _consent(
        suite,
        shopper,
        "cross_border.transfer",
        {"text": "Your order goes to Harbour Freight in Singapore.", "recipient": disclosure},
    )
    # The gateway acts on the consent once the consent state reaches it. The app sends the
    # device's coordinates in a body, never in a URL (the scans look for them everywhere).
    await suite.eventually(
        "POST",
        "/orders/location/nearby",
        lambda body: True,
        headers=shopper.headers,
        payload=shopper.person.point,
    )
    await suite.call(
        "POST",
        "/orders/location/address-autofill",
        headers=shopper.headers,
        json=shopper.person.point,
    )
    await suite.call(
        "POST",
        "/orders/search",
        headers=shopper.headers,
        json={"query": shopper.person.search_words},
    )
    await _place_and_deliver(suite, world, shopper, world.tea)
    await _place_and_deliver(suite, world, shopper, world.wine, customs=True)
    await suite.call(
        "POST",
        "/orders/support/cases",
        headers=shopper.headers,
        json={
            "topic": "after_sales",
            "order_id": shopper.orders[0],
            "text": f"The tin was dented. {shopper.person.remarks}",
        },
        expect=201,
    )
    await suite.eventually(
        "GET",
        "/transfer/transfers/me",
        lambda transfers: any(t["status"] == "delivered" for t in transfers),
        headers=shopper.headers,
    )
    return shopper


@pytest.mark.obligation("OB-R-1")
async def test_an_access_request_gathers_everything_from_every_service(
    suite: Suite, world: World, shopper: Shopper
) -> None:
    neighbour = await _new_shopper(suite)
    await _place_and_deliver(suite, world, neighbour, world.tea)

    request_id = await _file(suite, shopper, "access")
    request = await _completed(suite, request_id)
    assert {p["service"]: p["status"] for p in request["participants"]} == {
        "identity": "done",
        "orders": "done",
        "consent": "done",
        "transfer": "done",
    }
    export = await suite.call(
        "GET", f"/consent/rights-requests/{request_id}/export", headers=shopper.headers
    )
    text = str(export)
    assert export["subject"] == shopper.account_id
    # Every participant answered with its part about this user; none is an error.
    parts = export["services"]
    assert {name: part["status"] for name, part in parts.items()} == dict.fromkeys(
        ("identity", "orders", "transfer", "consent"), "ok"
    ), parts
    for name, part in parts.items():
        assert part["data"]["subject"] == shopper.account_id, name
    assert parts["identity"]["data"]["account"] is not None
    assert {o["order_id"] for o in parts["orders"]["data"]["orders"]} >= set(shopper.orders)
    [case] = parts["orders"]["data"]["support_cases"]
    assert case["messages"][0]["text"] == f"The tin was dented. {shopper.person.remarks}"
    assert {t["recipient"]["recipient_id"] for t in parts["transfer"]["data"]["transfers"]} == {
        world.recipient["id"]
    }
    # The privacy center's own part: agreements, consents with their history, the transfer
    # consent per recipient, rights requests (this one included), notices.
    center = parts["consent"]["data"]
    current = (await suite.call("GET", "/consent/policy"))["version"]
    assert current in {a["version"] for a in center["policy"]["agreements"]}
    granted = {c["purpose"] for c in center["consents"] if c["granted"]}
    assert {"location", "sensitive.face_verification", "cross_border.transfer"} <= granted
    assert {r["purpose"] for r in center["consent_history"]} >= granted
    assert [(c["recipient_id"], c["granted"]) for c in center["transfer_consents"]] == [
        (world.recipient["id"], True)
    ]
    assert request_id in {r["id"] for r in center["rights_requests"]}
    assert center["notices"] == []  # nothing happened to tell this user about
    assert center["retention"]["consent_receipt"]["duration"] == "P5Y"
    person = shopper.person
    for what, value in {
        "phone": person.phone,
        "name": person.name,
        "address": person.address_detail,
        "taxpayer id": person.tax_id,
        "search words": person.search_words,
    }.items():
        assert value in text, f"the export lacks the {what}"
    # Every display of an ID number is masked, the owner's export included (OB-2A-3).
    id_number = person.id_number
    assert id_number not in text and f"{id_number[0]}{'*' * 16}{id_number[-1]}" in text
    for order_id in shopper.orders:
        assert order_id in text
    assert world.recipient["id"] in text  # to whom it went abroad
    assert "retention" in text and "purposes" in text  # why and how long, per item
    for what, value in neighbour.person.values().items():
        assert value not in text, f"another user's {what} is in the export"
    assert neighbour.orders[0] not in text and neighbour.account_id not in text


async def _ledger(suite: Suite, shopper: Shopper) -> list[dict[str, Any]]:
    """Every entry of the user's ledger, page by page, as the privacy center shows them."""
    entries: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        page = await suite.call(
            "GET", f"/consent/ledger/me?limit=100&offset={offset}", headers=shopper.headers
        )
        assert page["chain_valid"]
        entries.extend(page["entries"])
        offset = page["next_offset"]
    return entries


@pytest.mark.obligation("OB-R-1")
async def test_the_ledger_names_every_actor_by_its_registered_name(
    suite: Suite, world: World, shopper: Shopper
) -> None:
    courier = await suite.call("GET", f"/identity/partners/{world.courier}", headers=suite.admin)
    entries: list[dict[str, Any]] = []

    async def export_reads_recorded() -> bool:
        # The ledger consumes the services' events as they come: the access export (the
        # test before) reached every service a moment ago.
        nonlocal entries
        entries = await _ledger(suite, shopper)
        return any(
            e["purpose"] == "rights.access" and e["who"]["kind"] == "service" for e in entries
        )

    await eventually(export_reads_recorded, timeout_s=30, what="the export's reads in the ledger")
    names = {(e["who"]["kind"], e["who"]["id"]): e["who"]["name"] for e in entries}
    # The courier read the waybill: shown by the name it was registered with.
    assert names[("partner", world.courier)] == courier["name"]
    # The overseas recipient received the cross-border order.
    assert names[("recipient", world.recipient["id"])] == "Harbour Freight Pte. Ltd."
    # The access export read every service under the privacy center's service client.
    assert "consent" in {name for (kind, _), name in names.items() if kind == "service"}
    unnamed = [
        e for e in entries if e["who"]["kind"] not in ("self", "user") and not e["who"]["name"]
    ]
    assert unnamed == []


@pytest.mark.obligation("OB-R-1")
async def test_deletion_leaves_only_the_kept_record_and_no_plaintext_anywhere(
    suite: Suite, world: World, shopper: Shopper
) -> None:
    request_id = await _file(suite, shopper, "deletion")
    request = await _completed(suite, request_id)
    answers = {p["service"]: p for p in request["participants"]}
    assert set(answers) == {"identity", "orders", "consent", "transfer"}
    assert answers["identity"]["status"] == "done"
    kept = {k["category"]: k for k in answers["orders"]["kept"]}
    assert kept, "orders within their period are kept under a legal hold"
    for hold in kept.values():
        assert hold["legal_basis"] and hold["until"] > str(china_today())
    assert answers["orders"]["deleted"], "what the record does not need goes now"

    # The account cannot log in, and its tokens still in date open nothing.
    refused = await suite.client.post(
        "/identity/login", json={"phone": shopper.person.phone, "password": shopper.person.password}
    )
    assert refused.status_code == 401
    # Identity's data is gone.
    assert (
        await suite.sql(
            "identity",
            "SELECT 1 FROM real_name_verification WHERE account_id = $1",
            shopper.account_id,
        )
        == []
    )
    # Kept orders: the transaction record only, unreadable for the owner.
    for order_id in shopper.orders:
        row = (await suite.sql("orders", "SELECT * FROM orders WHERE id = $1", order_id))[0]
        # fulfilment contacts go; remarks are part of the transaction record (kept)
        assert row["extra_phones_encrypted"] is None and row["invoice_email_encrypted"] is None
        assert row["consignee_name_encrypted"], "the transaction record is kept"
        owner_read = await suite.client.get(f"/orders/orders/{order_id}", headers=shopper.headers)
        assert owner_read.status_code == 401, "a closed account's token still in date"
    # Orders itself refuses the token too, for a caller behind the gateway's back: it learnt
    # the closure from identity's events as the gateway did.
    deadline = asyncio.get_running_loop().time() + 30
    async with suite.direct("orders") as orders:
        path = f"/orders/{shopper.orders[0]}"
        while (direct := await orders.get(path, headers=shopper.headers)).status_code != 401:
            assert asyncio.get_running_loop().time() < deadline, direct.text
            await asyncio.sleep(0.3)
    # Consents are withdrawn, and nothing can go abroad any more.
    consents = await suite.sql(
        "consent", "SELECT key, granted FROM consent_state WHERE subject = $1", shopper.account_id
    )
    keys = {row["key"] for row in consents}
    assert "location" in keys and any(k.startswith("cross_border.transfer:") for k in keys)
    assert not any(row["granted"] for row in consents), "a consent survived the deletion"
    # What deletion leaves is only stored (OB-L-5): a transfer of it is refused at once,
    # and none is recorded to fetch, pack or send later.
    before = await suite.sql("transfer", "SELECT count(*) AS n FROM transfer")
    refused = await suite.call(
        "POST",
        "/transfer/transfers",
        headers=suite.admin,
        json={
            "subject": shopper.account_id,
            "order_id": shopper.orders[-1],
            "recipient_id": world.recipient["id"],
            "categories": ["user.contact.address"],
        },
        expect=403,
    )
    assert refused["type"].endswith("/problems/storage-only"), refused
    assert refused["purpose"] == "cross_border.transfer", refused
    after = await suite.sql("transfer", "SELECT count(*) AS n FROM transfer")
    assert after[0]["n"] == before[0]["n"]

    values = shopper.person.values()
    report = await scan_suite(
        database_urls=suite.database_urls,
        bootstrap_servers=suite.bootstrap_servers,
        prefix=suite.topic_prefix,
        log_dir=suite.log_dir,
        values=values,
    )
    # every app's log, the stand-in payment provider's and the stand-in mini-program platform's
    logs = len(suite.processes) + 2
    assert report.rows and report.records and report.logs == logs, report.summary()
    print(f"leak scan of {len(values)} values: {report.summary()}")  # shown by pytest -rA
    assert report.findings == [], "\n".join(map(str, report.findings))


@pytest.mark.obligation("OB-R-1")
async def test_a_correction_changes_an_order_not_yet_shipped_and_says_why_not_others(
    suite: Suite, world: World
) -> None:
    buyer = await _new_shopper(suite)
    delivered = await _place_and_deliver(suite, world, buyer, world.tea)
    pending = await suite.call(
        "POST",
        "/orders/orders",
        headers={**buyer.headers, "Idempotency-Key": secrets.token_hex(8)},
        json=_order_body(buyer.person, world.tea),
        expect=201,
    )
    new_address = Person.new()
    suite.people.append(new_address)  # its values are personal data too, for the scans
    filed = await suite.call(
        "POST",
        "/consent/rights-requests",
        headers=buyer.headers,
        json={
            "kind": "correction",
            "corrections": {
                "orders": {
                    "orders": [
                        {
                            "order_id": pending["order_id"],
                            "address_detail": new_address.address_detail,
                        },
                        {"order_id": delivered, "address_detail": new_address.address_detail},
                    ]
                }
            },
        },
        expect=202,
    )
    request = await _completed(suite, filed["id"])
    answers = {p["service"]: p for p in request["participants"]}
    assert answers["orders"]["status"] == "partial"
    reason = answers["orders"]["reason"]
    assert f"{pending['order_id']}.address_detail" in reason
    assert f"{delivered}.address_detail" in reason and "completed" in reason
    assert new_address.address_detail not in reason  # reasons name fields, never values
    corrected = await suite.call(
        "GET", f"/orders/orders/{pending['order_id']}", headers=buyer.headers
    )
    assert corrected["address_detail"] == new_address.address_detail
    unchanged = await suite.call("GET", f"/orders/orders/{delivered}", headers=buyer.headers)
    assert unchanged["address_detail"] == buyer.person.address_detail


@pytest.mark.obligation("OB-4-2")
async def test_retention_sweep_anonymises_orders_past_their_period(
    suite: Suite, world: World
) -> None:
    buyer = await _new_shopper(suite)
    order_id = await _place_and_deliver(suite, world, buyer, world.tea)
    # The order completed ten years and a day ago: every period of its fields has ended.
    past = datetime.now(UTC) - timedelta(days=3653 + 1)
    await suite.sql(
        "orders",
        "UPDATE orders SET completed_at = $2, retention_starts_at = $2 WHERE id = $1",
        order_id,
        past,
    )
    report = await suite.call("POST", "/orders/admin/retention/sweep", headers=suite.admin)
    assert report["orders_anonymised"] >= 1
    row = (await suite.sql("orders", "SELECT * FROM orders WHERE id = $1", order_id))[0]
    assert row["anonymised_at"] is not None and row["buyer_id"] != buyer.account_id
    assert not row["consignee_name_encrypted"] and not row["consignee_phone_encrypted"]
    await _published(
        suite,
        "orders",
        lambda event: (
            event.type.endswith("order.anonymised.v1") and event.data.get("order_id") == order_id
        ),
    )  # the sweep says what it anonymised
    gone = await suite.client.get(f"/orders/orders/{order_id}", headers=buyer.headers)
    # Anonymised: no longer the buyer's, so it is not there for them.
    assert gone.status_code == 404, gone.text


@pytest.mark.obligation("OB-R-1")
async def test_a_service_down_during_a_deletion_is_shown_overdue_then_answers_once(
    suite: Suite, world: World
) -> None:
    buyer = await _new_shopper(suite)
    await _place_and_deliver(suite, world, buyer, world.tea)
    suite.stop("transfer")
    try:
        request_id = await _file(suite, buyer, "deletion")
        await _until(
            suite,
            request_id,
            lambda request: (
                {p["service"] for p in request["participants"] if p["status"] == "pending"}
                == {"transfer"}
            ),
        )
        # The deadline passes while transfer is down.
        await suite.sql(
            "consent",
            "UPDATE rights_request SET deadline = $2 WHERE id = $1",
            request_id,
            datetime.now(UTC) - timedelta(hours=1),
        )
        late = await _officer_view(suite, request_id)
        assert late["status"] == "overdue" and late["overdue_services"] == ["transfer"]
    finally:
        await suite.start("transfer")
    done = await _completed(suite, request_id)
    assert {p["service"] for p in done["participants"]} == {
        "identity",
        "orders",
        "consent",
        "transfer",
    }
    answers = await suite.sql(
        "consent", "SELECT service FROM rights_answer WHERE request_id = $1", request_id
    )
    assert sorted(a["service"] for a in answers) == ["consent", "identity", "orders", "transfer"]
    for service in ("identity", "orders", "transfer"):
        events = await topic_events(
            suite.bootstrap_servers, f"{suite.topic_prefix}{service}.events"
        )
        completions = {
            event.id
            for event in events
            if event.type.endswith("rights.completed.v1")
            and event.data.get("request_id") == request_id
        }
        assert len(completions) == 1, f"{service} answered {len(completions)} times"


@pytest.mark.obligation("OB-2J-1")
async def test_a_ceased_purpose_is_refused_at_once_and_its_users_are_told(suite: Suite) -> None:
    """Last in this module: ``location`` stays ceased for the rest of the suite."""
    user = await _new_shopper(suite)
    await _consent(suite, user, "location")
    nearby = "/orders/location/nearby"
    point = user.person.point
    await suite.eventually("POST", nearby, lambda body: True, headers=user.headers, payload=point)
    await suite.eventually(
        "GET",
        "/consent/ledger/me",
        lambda page: any(entry["purpose"] == "location" for entry in page["entries"]),
        headers=user.headers,
    )

    today = str(china_today())
    ceased = await suite.call(
        "POST",
        "/consent/cessations",
        headers=suite.admin,
        json={
            "kind": "purpose_ceased",
            "purpose": "location",
            "effective_date": today,
            "reason": "the nearby-goods feature is discontinued",
        },
        expect=201,
    )
    # Collection stops at once: at the gateway, and at orders for a caller that reaches it
    # directly with a valid token.
    deadline = asyncio.get_running_loop().time() + 30
    async with suite.direct("orders") as orders:
        while True:
            through_gateway = await suite.client.post(nearby, headers=user.headers, json=point)
            direct = await orders.post(
                nearby.removeprefix("/orders"), headers=user.headers, json=point
            )
            if through_gateway.status_code == 410 and direct.status_code == 410:
                break
            assert asyncio.get_running_loop().time() < deadline, (through_gateway, direct.text)
            await asyncio.sleep(0.3)
    assert direct.json()["type"].endswith("/purpose-ceased")
    # Orders says what it did with its data for the purpose (coordinates were never kept).
    applied = await _published(
        suite, "orders", lambda event: event.type.endswith("purpose.cessation.applied.v1")
    )
    assert [e.data["cessation_id"] for e in applied] == [ceased["id"]]
    # The user who was processed under it is told, with the date their data goes.
    notices = await suite.eventually(
        "GET",
        "/consent/notices/me",
        lambda body: any(n["kind"] == "purpose_ceased" for n in body),
        headers=user.headers,
    )
    notice = next(n for n in notices if n["kind"] == "purpose_ceased")
    assert notice["purpose"] == "location" and notice["deletion_due"] == today


@pytest.mark.obligation("OB-4-7")
async def test_no_personal_value_of_anyone_is_stored_or_sent_in_plaintext(suite: Suite) -> None:
    """After everything above: no value of any user of the run, deleted or not, in plaintext
    in any database, topic, partition file or process log; they exist only as ciphertext
    and in their owners' own API responses."""
    assert len(suite.people) >= 6
    values = {
        f"user {number}'s {what}": value
        for number, person in enumerate(suite.people)
        for what, value in person.values().items()
    }
    report = await scan_suite(
        database_urls=suite.database_urls,
        bootstrap_servers=suite.bootstrap_servers,
        prefix=suite.topic_prefix,
        log_dir=suite.log_dir,
        values=values,
    )
    assert report.rows and report.records and report.logs == len(suite.processes) + 2
    print(f"leak scan of {len(values)} values: {report.summary()}")  # shown by pytest -rA
    assert report.findings == [], "\n".join(map(str, report.findings))


async def test_the_cloudevents_sdk_reads_a_sample_of_every_topic(suite: Suite) -> None:
    """After everything above: every topic the suite wrote to, read by the CloudEvents SDK's
    own Kafka readers (structured mode, issue 24 item 9), as a consumer outside the suite."""
    topics = await topics_under(suite.bootstrap_servers, suite.topic_prefix)
    names = {topic.removeprefix(suite.topic_prefix) for topic in topics}
    wanted = {f"{name}.events" for name in ("identity", "orders", "consent", "transfer")}
    assert wanted | {"consent.state", "notifications"} <= names, names
    sampled = 0
    for topic in topics:
        records = [r for r in await read_records(suite.bootstrap_servers, topic) if r.value]
        if topic.removeprefix(suite.topic_prefix) in wanted:
            assert records, f"{topic} holds no event"
        for record in records[:SAMPLE_PER_TOPIC]:
            attributes = parsed_by_cloudevents_sdk(record)
            assert attributes["type"].startswith("com.signature."), topic
            assert Event.from_json_bytes(record.value).id == attributes["id"]
            sampled += 1
    print(f"CloudEvents SDK read {sampled} records of {len(topics)} topics")
