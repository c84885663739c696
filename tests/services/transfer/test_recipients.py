"""Overseas recipients: recorded with their agreement, legal basis and assessments; keys,
categories and endpoints validated; what is due listed (OB-3-3, OB-3-4, OB-4-5, OB-4-6)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kit.clock import china_today
from kit.events import find_personal_data
from tests.services.transfer.conftest import (
    TRANSFERABLE,
    TransferApp,
    key_pair,
    recipient_body,
)


def _pem(public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@pytest.mark.obligation("OB-3-3")
async def test_a_recipient_is_recorded_with_agreement_basis_and_assessment(
    transfer: TransferApp,
) -> None:
    recipient = await transfer.register()
    assert recipient["id"].startswith("rcp_")
    assert recipient["dpa_reference"] == "DPA-2026-017"
    assert recipient["legal_basis"]["kind"] == "standard_contract"
    assert recipient["legal_basis"]["reference"] == "SC-FILING-2026-0042"
    assert recipient["latest_assessment"]["result"] == "passed"
    assert recipient["key_type"] == "x25519"
    assert recipient["data_categories"] == TRANSFERABLE
    assert recipient["may_receive"] is True
    assert recipient["blocked_because"] == [] and recipient["due"] == []

    admin = transfer.privacy_officer()
    fetched = await transfer.client.get(f"/recipients/{recipient['id']}", headers=admin)
    assert fetched.status_code == 200 and fetched.json() == recipient

    events = await transfer.outbox_events()
    registered = [e for e in events if e.type.endswith("recipient.registered.v1")]
    assert len(registered) == 1 and registered[0].subject == recipient["id"]
    assert find_personal_data(registered[0].data, personal_fields=frozenset()) == []


@pytest.mark.obligation("OB-4-5")
async def test_the_disclosure_carries_what_the_consent_screen_must_show(
    transfer: TransferApp,
) -> None:
    recipient = await transfer.register()
    _, user = transfer.user()
    response = await transfer.client.get(f"/recipients/{recipient['id']}/disclosure", headers=user)
    assert response.status_code == 200
    disclosure = response.json()
    # The members the consent service requires in shown.recipient (RECIPIENT_DISCLOSURE).
    for name in (
        "id",
        "name",
        "contact",
        "purpose",
        "processing_method",
        "data_types",
        "how_to_exercise_rights",
    ):
        assert disclosure[name], name
    assert disclosure["name"] == "Harbour Freight Pte. Ltd."
    assert "A person's name" in " ".join(disclosure["data_types"])


@pytest.mark.obligation("OB-4-6")
@pytest.mark.parametrize(
    ("kind", "reference"),
    [
        ("security_assessment", "CAC-SA-2026-0815"),
        ("certification", "PIPC-CERT-2026-3301"),
        ("standard_contract", "SC-FILING-2026-0099"),
    ],
)
async def test_every_kind_of_legal_basis_is_accepted(
    transfer: TransferApp, kind: str, reference: str
) -> None:
    today = china_today()
    basis = {
        "kind": kind,
        "reference": reference,
        "decided_on": str(today),
        "review_due": str(today + timedelta(days=400)),
    }
    recipient = await transfer.register(legal_basis=basis)
    assert recipient["legal_basis"]["kind"] == kind
    assert recipient["legal_basis"]["reference"] == reference


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"legal_basis": None}, "body.legal_basis"),
        ({"dpa_reference": ""}, "body.dpa_reference"),
        ({"delivery": "https", "endpoint_url": None}, "body"),
        ({"endpoint_url": "http://plain.example/packages"}, "body"),
        ({"endpoint_url": "https://user:pw@host.example/"}, "body"),
        ({"delivery": "kafka"}, "body"),  # kafka delivery with an endpoint
        ({"data_categories": []}, "body.data_categories"),
        ({"unexpected": "field"}, "body.unexpected"),
    ],
)
async def test_registration_refuses_incomplete_or_wrong_input(
    transfer: TransferApp, overrides: dict[str, object], field: str
) -> None:
    body = recipient_body(key_pair(), **overrides)
    response = await transfer.client.post(
        "/recipients", json=body, headers=transfer.privacy_officer()
    )
    assert response.status_code == 422, response.text
    assert any(error["field"].startswith(field) for error in response.json()["errors"])


async def test_review_due_must_follow_the_decision(transfer: TransferApp) -> None:
    today = china_today()
    body = recipient_body(
        key_pair(),
        legal_basis={
            "kind": "certification",
            "reference": "C-1",
            "decided_on": str(today),
            "review_due": str(today),
        },
    )
    response = await transfer.client.post(
        "/recipients", json=body, headers=transfer.privacy_officer()
    )
    assert response.status_code == 422


@pytest.mark.obligation("OB-4-4")
async def test_categories_must_be_catalogue_ids_the_catalogue_lets_go_abroad(
    transfer: TransferApp,
) -> None:
    admin = transfer.privacy_officer()
    unknown = recipient_body(key_pair(), data_categories=["user.shoe_size"])
    response = await transfer.client.post("/recipients", json=unknown, headers=admin)
    assert response.status_code == 422
    assert response.json()["type"].endswith("unknown-category")

    sensitive = recipient_body(
        key_pair(),
        data_categories=["user.name", "user.government_id.national_identification_number"],
    )
    response = await transfer.client.post("/recipients", json=sensitive, headers=admin)
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"].endswith("category-not-transferable")
    assert problem["refused"] == ["user.government_id.national_identification_number"]
    assert sorted(problem["transferable"]) == TRANSFERABLE


@pytest.mark.parametrize(
    "public_key_pem",
    [
        "not a key",
        _pem(ec.generate_private_key(ec.SECP256R1()).public_key()),
        _pem(rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()),
        key_pair().private_pem.decode(),  # a private key is not what is asked for
    ],
    ids=["garbage", "ec-p256", "rsa-1024", "private-key"],
)
async def test_only_x25519_or_strong_rsa_public_keys_are_accepted(
    transfer: TransferApp, public_key_pem: str
) -> None:
    body = recipient_body(key_pair(), public_key_pem=public_key_pem)
    response = await transfer.client.post(
        "/recipients", json=body, headers=transfer.privacy_officer()
    )
    assert response.status_code == 422
    assert response.json()["type"].endswith("invalid-public-key")


async def test_an_rsa_recipient_and_a_kafka_recipient(transfer: TransferApp) -> None:
    recipient = await transfer.register(key_pair("rsa"), delivery="kafka", endpoint_url=None)
    assert recipient["key_type"] == "rsa"
    assert recipient["delivery"] == "kafka" and recipient["endpoint_url"] is None


@pytest.mark.obligation("OB-4-6")
async def test_due_lists_lapsing_bases_and_assessments_and_blocks_lapsed_ones(
    transfer: TransferApp,
) -> None:
    today = china_today()
    fine = await transfer.register()
    lapsing = await transfer.register(
        legal_name="Soon Due Ltd.",
        legal_basis={
            "kind": "certification",
            "reference": "PIPC-CERT-1",
            "decided_on": str(today - timedelta(days=700)),
            "review_due": str(today + timedelta(days=5)),
        },
    )
    lapsed = await transfer.register(
        legal_name="Lapsed Ltd.",
        legal_basis={
            "kind": "security_assessment",
            "reference": "CAC-SA-1",
            "decided_on": str(today - timedelta(days=800)),
            "review_due": str(today - timedelta(days=1)),
        },
    )
    stale = await transfer.register(
        legal_name="Unassessed Ltd.",
        assessment={"assessed_on": str(today - timedelta(days=400)), "result": "passed"},
    )
    failed = await transfer.register(
        legal_name="Failed Ltd.",
        assessment={"assessed_on": str(today), "result": "failed", "notes": "no encryption"},
    )
    assert lapsing["may_receive"] and lapsing["due"] == ["legal_basis_review_due"]
    assert not lapsed["may_receive"]
    assert lapsed["blocked_because"] == ["legal_basis_past_review"]
    assert stale["blocked_because"] == ["assessment_overdue"]
    assert failed["blocked_because"] == ["assessment_failed"]

    admin = transfer.privacy_officer()
    due = await transfer.client.get("/recipients", params={"due": "true"}, headers=admin)
    assert due.status_code == 200
    assert {r["id"] for r in due.json()} == {
        lapsing["id"],
        lapsed["id"],
        stale["id"],
        failed["id"],
    }
    every = await transfer.client.get("/recipients", headers=admin)
    assert fine["id"] in {r["id"] for r in every.json()}

    # A renewed basis and a new passed assessment put them back in order.
    renewed = await transfer.client.post(
        f"/recipients/{lapsed['id']}/legal-bases",
        json={
            "kind": "standard_contract",
            "reference": "SC-FILING-2027-0001",
            "decided_on": str(today),
            "review_due": str(today + timedelta(days=730)),
        },
        headers=admin,
    )
    assert renewed.status_code == 200 and renewed.json()["may_receive"] is True
    assert renewed.json()["legal_basis"]["reference"] == "SC-FILING-2027-0001"
    reassessed = await transfer.client.post(
        f"/recipients/{failed['id']}/assessments",
        json={"assessed_on": str(today), "result": "passed", "notes": "fixed"},
        headers=admin,
    )
    assert reassessed.status_code == 200 and reassessed.json()["may_receive"] is True

    history = await transfer.client.get(f"/recipients/{lapsed['id']}/history", headers=admin)
    assert [b["reference"] for b in history.json()["legal_bases"]] == [
        "SC-FILING-2027-0001",
        "CAC-SA-1",
    ]
    kinds = [e.type for e in await transfer.outbox_events()]
    assert "com.signature.transfer.recipient.basis_recorded.v1" in kinds
    assert "com.signature.transfer.recipient.assessed.v1" in kinds


async def test_only_the_privacy_officer_manages_recipients(transfer: TransferApp) -> None:
    _, user = transfer.user()
    body = recipient_body(key_pair())
    response = await transfer.client.post("/recipients", json=body, headers=user)
    assert response.status_code == 403
    assert (await transfer.client.get("/recipients", headers=user)).status_code == 403
    assert (await transfer.client.get("/recipients")).status_code == 401
    unknown = await transfer.client.get("/recipients/rcp_nope", headers=transfer.privacy_officer())
    assert unknown.status_code == 404
