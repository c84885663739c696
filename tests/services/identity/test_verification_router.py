"""Verification over HTTP, in the running identity app with real tokens: who may call,
problem+json answers (a 503 that says when to retry), masked bodies, guardianships."""

from __future__ import annotations

import base64
from datetime import date

import pytest
from sqlalchemy import func, select

from kit.clock import china_today
from kit.testing import bearer
from services.identity.models import RealNameVerification
from tests.services.identity.conftest import Identity
from tests.services.identity.ids import ADULT, ADULT_2, DOWN, MISMATCH, with_check


def born(years_ago: int, sequence: str, region: str = "440305") -> str:
    today = china_today()
    return with_check(f"{region}{date(today.year - years_ago, 1, 2):%Y%m%d}{sequence}")


NAME = "张三"


async def verification_rows(identity: Identity) -> int:
    async with identity.context.database.session() as session:
        count = await session.scalar(select(func.count()).select_from(RealNameVerification))
    return int(count or 0)


@pytest.mark.obligation("OB-2A-2")
async def test_verify_and_read_back_over_http(identity: Identity) -> None:
    client = identity.client
    anonymous = await client.post("/verifications", json={"real_name": NAME, "id_number": ADULT})
    assert anonymous.status_code == 401
    _, token = await identity.user()
    invalid = await client.post(
        "/verifications",
        json={"real_name": NAME, "id_number": ADULT[:-1] + "1"},
        headers=bearer(token),
    )
    assert invalid.status_code == 422 and invalid.json()["reason"] == "checksum"
    assert invalid.json()["type"].endswith("/invalid-id-number")
    assert ADULT[:-1] not in invalid.text
    assert (await client.get("/verifications/me", headers=bearer(token))).status_code == 404

    created = await client.post(
        "/verifications", json={"real_name": NAME, "id_number": ADULT}, headers=bearer(token)
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["level"] == "real_name" and body["minor"] is False
    assert (body["real_name"], body["id_number"]) == ("张*", "1****************X")
    assert NAME not in created.text and ADULT not in created.text
    me = await client.get("/verifications/me", headers=bearer(token))
    assert me.status_code == 200
    assert (me.json()["real_name"], me.json()["id_number"]) == ("张*", "1****************X")

    _, other = await identity.user()
    taken = await client.post(
        "/verifications", json={"real_name": NAME, "id_number": ADULT}, headers=bearer(other)
    )
    assert taken.status_code == 409


@pytest.mark.obligation("OB-2A-2")
async def test_provider_down_is_a_503_with_retry_after(identity: Identity) -> None:
    _, token = await identity.user()
    before = len(await identity.outbox_events())
    response = await identity.client.post(
        "/verifications", json={"real_name": NAME, "id_number": DOWN}, headers=bearer(token)
    )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/provider-unavailable")
    assert await verification_rows(identity) == 0
    assert len(await identity.outbox_events()) == before


@pytest.mark.obligation("OB-2A-2")
async def test_a_mismatch_is_a_422_and_only_its_outcome_is_kept(identity: Identity) -> None:
    account_id, token = await identity.user()
    response = await identity.client.post(
        "/verifications", json={"real_name": NAME, "id_number": MISMATCH}, headers=bearer(token)
    )
    assert response.status_code == 422
    assert response.json()["type"].endswith("/verification-failed")
    assert await verification_rows(identity) == 0
    outcomes = [
        event
        for event in await identity.outbox_events()
        if event.type.endswith("verification.completed.v1")
    ]
    assert [(e.subject, e.data) for e in outcomes] == [
        (account_id, {"result": "mismatch", "level": "real_name"})
    ]


@pytest.mark.obligation("OB-2A-3")
async def test_bad_face_images_are_refused_without_echo(identity: Identity) -> None:
    _, token = await identity.user()
    too_big = base64.b64encode(b"\xff" * (2 * 1024 * 1024 + 1)).decode()
    for image in ("not base64!", too_big):
        response = await identity.client.post(
            "/verifications",
            json={"real_name": NAME, "id_number": ADULT, "face_image": image},
            headers=bearer(token),
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "body.face_image"
        assert image[:20] not in response.text and ADULT not in response.text


@pytest.mark.obligation("OB-2A-4")
async def test_a_guardianship_over_http(identity: Identity) -> None:
    child = born(10, "024")
    child_id, child_token = await identity.user()
    created = await identity.client.post(
        "/verifications",
        json={"real_name": "李小明", "id_number": child},
        headers=bearer(child_token),
    )
    assert created.status_code == 201 and created.json()["minor"] is True
    guardian_id, guardian_token = await identity.user()
    refused = await identity.client.post(
        "/guardianships",
        json={"real_name": "李小明", "id_number": child},
        headers=bearer(guardian_token),
    )
    assert refused.status_code == 403
    assert refused.json()["type"].endswith("/verification-required")
    await identity.client.post(
        "/verifications",
        json={"real_name": NAME, "id_number": ADULT_2},
        headers=bearer(guardian_token),
    )
    wrong = await identity.client.post(
        "/guardianships",
        json={"real_name": "李大明", "id_number": child},
        headers=bearer(guardian_token),
    )
    assert wrong.status_code == 404 and "李" not in wrong.text
    linked = await identity.client.post(
        "/guardianships",
        json={"real_name": "李小明", "id_number": child},
        headers=bearer(guardian_token),
    )
    assert linked.status_code == 201, linked.text
    assert linked.json()["ward_account_id"] == child_id
    assert linked.json()["guardian_account_id"] == guardian_id


@pytest.mark.obligation("OB-2A-2")
async def test_repeated_mismatches_are_throttled(identity: Identity) -> None:
    _, token = await identity.user()
    limit = identity.settings.verification_max_failures
    for _ in range(limit):
        failed = await identity.client.post(
            "/verifications", json={"real_name": NAME, "id_number": MISMATCH}, headers=bearer(token)
        )
        assert failed.status_code == 422
    blocked = await identity.client.post(
        "/verifications", json={"real_name": NAME, "id_number": ADULT}, headers=bearer(token)
    )
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0


@pytest.mark.obligation("OB-2A-2")
async def test_real_person_level_from_a_face_image_and_the_verified_name(
    identity: Identity,
) -> None:
    client = identity.client
    _, token = await identity.user()
    face = base64.b64encode(b"a face photo, unique bytes 7c41").decode()
    first = await client.post(
        "/verifications/real-person", json={"face_image": face}, headers=bearer(token)
    )
    assert first.status_code == 409 and first.json()["type"].endswith("/not-verified")
    verified = await client.post(
        "/verifications", json={"real_name": NAME, "id_number": ADULT}, headers=bearer(token)
    )
    assert verified.status_code == 201
    no_face = base64.b64encode(b"NOFACE in this picture").decode()
    refused = await client.post(
        "/verifications/real-person", json={"face_image": no_face}, headers=bearer(token)
    )
    assert refused.status_code == 422
    extra = await client.post(
        "/verifications/real-person",
        json={"face_image": face, "real_name": "李四"},
        headers=bearer(token),
    )
    assert extra.status_code == 422  # the name is the verified one, never sent again
    raised = await client.post(
        "/verifications/real-person", json={"face_image": face}, headers=bearer(token)
    )
    assert raised.status_code == 201, raised.text
    assert raised.json()["level"] == "real_person"
    assert face not in raised.text and NAME not in raised.text
    me = (await client.get("/verifications/me", headers=bearer(token))).json()
    assert me["level"] == "real_person" and me["real_name"] == "张*"
