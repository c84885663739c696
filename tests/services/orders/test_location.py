"""Location features: only with the additional consent ``location``, refusing never blocks
ordering (OB-2G-1, OB-0-1, OB-0-2); coordinates are never stored, logged or published."""

from __future__ import annotations

import logging
import struct
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from kit.catalogue import default_catalogue
from kit.consent_state import (
    CONSENT_STATE_EVENT,
    ConsentEntry,
    SubjectConsent,
    consentable_purposes,
)
from kit.events import new_event
from kit.kafka import TopicSpec, ensure_topics
from kit.testing import eventually, serve_app, trust_only
from services.orders.config import Settings
from services.orders.location.schemas import Coordinates
from services.orders.location.service import REGIONS, region_of
from tests.conftest import Broker
from tests.services.orders.conftest import ISSUER, KEY, Orders
from tests.services.orders.test_orders import order_body, place

# West Lake, Hangzhou; digits distinctive enough to find anywhere they might leak.
LATITUDE, LONGITUDE = 30.258741, 120.130963
POINT = {"latitude": LATITUDE, "longitude": LONGITUDE}


def granting(*subjects: str) -> Callable[[str, str], bool]:
    """A stand-in for the consent-state view: ``subjects`` consent to ``location``."""

    def granted(subject: str, purpose: str) -> bool:
        return purpose == "location" and subject in subjects

    return granted


@pytest.mark.obligation("OB-2G-1")
async def test_without_location_consent_the_features_are_refused_and_ordering_works(
    orders: Orders,
) -> None:
    # The app's own wiring: the consent view has no broker, so nobody has consented.
    assert orders.app.state.consent_granted("acc_someone", "location") is False
    buyer, headers = orders.user()
    autofill = await orders.client.post("/location/address-autofill", json=POINT, headers=headers)
    nearby = await orders.client.post("/location/nearby", json=POINT, headers=headers)
    for response in (autofill, nearby):
        assert response.status_code == 403
        problem = response.json()
        assert problem["type"].endswith("/consent-required")
        assert problem["purpose"] == "location"
        assert "location" in problem["detail"]

    goods = await orders.add_goods()
    order = await place(orders, headers, order_body(goods["goods_id"]))  # OB-0-2
    assert order["status"] == "placed"
    events = await orders.outbox_events()
    assert not [e for e in events if e.subject == buyer and e.purpose == "location"]


@pytest.mark.obligation("OB-2G-1")
async def test_with_location_consent_they_answer(orders: Orders) -> None:
    buyer, headers = orders.user()
    _, other = orders.user()
    orders.app.state.consent_granted = granting(buyer)

    response = await orders.client.post("/location/address-autofill", json=POINT, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "region": {"province": "浙江省", "city": "杭州市", "district": "西湖区"},
        "source": "built-in-table",
    }
    city_only = {"latitude": 30.45, "longitude": 120.40}
    response = await orders.client.post(
        "/location/address-autofill", json=city_only, headers=headers
    )
    assert response.json()["region"] == {"province": "浙江省", "city": "杭州市", "district": None}
    harbin = {"latitude": 45.75, "longitude": 126.63}
    response = await orders.client.post("/location/address-autofill", json=harbin, headers=headers)
    assert response.json()["region"] is None

    tea, wine = await orders.add_goods("Longjing tea"), await orders.add_goods("Wine")
    _, admin = orders.staff("catalogue_manager")
    tagged = await orders.client.put(
        f"/admin/goods/{tea['goods_id']}/city", json={"city": "杭州市"}, headers=admin
    )
    assert tagged.status_code == 200, tagged.text
    await orders.client.put(
        f"/admin/goods/{wine['goods_id']}/city", json={"city": "上海市"}, headers=admin
    )
    nearby = await orders.client.post("/location/nearby", json=POINT, headers=headers)
    assert nearby.status_code == 200, nearby.text
    assert nearby.json()["city"] == "杭州市"
    assert [item["goods_id"] for item in nearby.json()["goods"]] == [tea["goods_id"]]
    nowhere = await orders.client.post("/location/nearby", json=harbin, headers=headers)
    assert nowhere.json() == {"city": None, "goods": []}

    # Consent is per subject: another user is still refused.
    refused = await orders.client.post("/location/nearby", json=POINT, headers=other)
    assert refused.status_code == 403

    # Each use is on the user's ledger, without the coordinates.
    uses = [e for e in await orders.outbox_events() if e.subject == buyer]
    assert len(uses) == 5
    assert all(e.purpose == "location" and e.categories == ("user.location.precise",) for e in uses)
    assert all(
        e.data == {"actor": "orders.location", "resource": "orders.location", "action": "read"}
        for e in uses
    )


@pytest.mark.obligation("OB-2G-1")
async def test_coordinates_are_never_stored_logged_or_published(
    orders: Orders, caplog: pytest.LogCaptureFixture
) -> None:
    buyer, headers = orders.user()
    orders.app.state.consent_granted = granting(buyer)
    goods = await orders.add_goods()
    _, admin = orders.staff("catalogue_manager")
    await orders.client.put(
        f"/admin/goods/{goods['goods_id']}/city", json={"city": "杭州市"}, headers=admin
    )
    with caplog.at_level(logging.DEBUG):
        for _ in range(3):
            autofill = await orders.client.post(
                "/location/address-autofill", json=POINT, headers=headers
            )
            assert autofill.status_code == 200
            nearby = await orders.client.post("/location/nearby", json=POINT, headers=headers)
            assert nearby.status_code == 200
        invalid = await orders.client.post(
            "/location/nearby",
            json={"latitude": 91.123457, "longitude": LONGITUDE},
            headers=headers,
        )
        assert invalid.status_code == 422
        assert "91.123457" not in invalid.text  # never echoed

    raw = orders.raw_database()
    for value in (LATITUDE, LONGITUDE):
        assert str(value).encode() not in raw
        assert struct.pack(">d", value) not in raw  # nor as an SQLite REAL
    events = " ".join(e.model_dump_json() for e in await orders.outbox_events())
    # The app's logs (the test's own HTTP client logs its request URLs; it is not the app).
    logs = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records if r.name != "httpx")
    for text in ("30.2587", "120.1309", "latitude", "longitude"):
        assert text not in events
        assert text not in logs


async def test_only_staff_tag_goods_with_a_city_from_the_table(orders: Orders) -> None:
    goods = await orders.add_goods()
    url = f"/admin/goods/{goods['goods_id']}/city"
    _, buyer = orders.user()
    assert (await orders.client.put(url, json={"city": "杭州市"}, headers=buyer)).status_code == 403
    _, admin = orders.staff("catalogue_manager")
    unknown = await orders.client.put(url, json={"city": "拉萨市"}, headers=admin)
    assert unknown.status_code == 422 and unknown.json()["type"].endswith("/unknown-city")
    missing = await orders.client.put(
        "/admin/goods/gds_nosuchgoods/city", json={"city": "杭州市"}, headers=admin
    )
    assert missing.status_code == 404
    moved = await orders.client.put(url, json={"city": "上海市"}, headers=admin)
    assert moved.json() == {"goods_id": goods["goods_id"], "city": "上海市"}


def test_the_region_table_answers_districts_before_their_city() -> None:
    assert {box.city for box in REGIONS} >= {"北京市", "上海市", "杭州市", "深圳市", "广州市"}
    for box in REGIONS:
        middle = Coordinates(
            latitude=(box.south + box.north) / 2, longitude=(box.west + box.east) / 2
        )
        found = region_of(middle)
        assert found is not None and found.city == box.city
        if box.district is not None:
            assert found == box


@pytest.mark.integration
@pytest.mark.obligation("OB-2G-1")
async def test_the_app_follows_the_published_consent_state(kafka: Broker, tmp_path: Path) -> None:
    """The real wiring: the consent-state view over the compacted topic opens the location
    features when a grant is published, and closes them again on withdrawal."""
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'orders.db'}",
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        kafka_topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        auth_issuer=ISSUER,
        log_json=False,
        retention_sweep_enabled=False,
    )
    topic = settings.topic("consent.state")
    await ensure_topics(kafka.bootstrap_servers, [TopicSpec(topic, partitions=1, compacted=True)])
    consentable = consentable_purposes(default_catalogue())
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    await producer.start()

    async def publish(subject: str, version: int, *, granted: bool) -> None:
        entry = ConsentEntry(granted=granted, changed_at=datetime.now(UTC))
        state = SubjectConsent(
            subject=subject, consentable=consentable, version=version, entries={"location": entry}
        )
        event = new_event(
            source="/consent",
            type=CONSENT_STATE_EVENT,
            subject=subject,
            purpose="account",
            data=state.to_data(),
        )
        await producer.send_and_wait(topic, event.to_json_bytes(), key=subject.encode())

    try:
        async with serve_app("services.orders", settings) as (app, client):
            trust_only(app, KEY)
            orders = Orders(
                app=app,
                client=client,
                settings=settings,
                key=KEY,
                database_path=tmp_path / "orders.db",
            )
            buyer, headers = orders.user()

            async def status() -> int:
                response = await client.post(
                    "/location/address-autofill", json=POINT, headers=headers
                )
                return response.status_code

            assert await status() == 403
            await publish(buyer, 1, granted=True)

            async def opened() -> bool:
                return await status() == 200

            await eventually(opened, timeout_s=60, what="the grant to reach the view")
            await publish(buyer, 2, granted=False)

            async def closed() -> bool:
                return await status() == 403

            await eventually(closed, timeout_s=30, what="the withdrawal to reach the view")
    finally:
        await producer.stop()
