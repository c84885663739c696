"""Partners: registered with agreement and assessment by the privacy officer, given scoped
tokens only within their kind, only while assessed, and never after revocation."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from kit.auth import KeySet, verify_token
from kit.testing import bearer
from tests.services.identity.conftest import ISSUER, Identity

TODAY = date.today()


def partner_form(**overrides: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "name": "Swift Logistics Co.",
        "contact": "privacy@swift-logistics.example",
        "kind": "logistics",
        "agreement_type": "entrusted_processing",
        "agreement_reference": "DPA-2026-017",
        "assessment": {
            "assessed_on": str(TODAY - timedelta(days=10)),
            "result": "passed",
            "valid_until": str(TODAY + timedelta(days=355)),
        },
        "purposes": ["logistics.delivery"],
    }
    form.update(overrides)
    return form


async def register_partner(identity: Identity, **overrides: Any) -> dict[str, Any]:
    _, admin = await identity.staff("privacy_officer")
    response = await identity.client.post(
        "/partners", json=partner_form(**overrides), headers=bearer(admin)
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def token_for(
    identity: Identity, partner: dict[str, Any], scope: str | None = None, secret: str | None = None
) -> Any:
    form = {
        "grant_type": "client_credentials",
        "client_id": partner["client_id"],
        "client_secret": secret or partner["client_secret"],
    }
    if scope:
        form["scope"] = scope
    return await identity.client.post("/oauth2/token", data=form)


@pytest.mark.obligation("OB-3-3")
async def test_a_partner_is_recorded_with_its_agreement_and_secret_shown_once(
    identity: Identity,
) -> None:
    partner = await register_partner(identity)
    assert partner["client_secret"] and partner["agreement_reference"] == "DPA-2026-017"
    assert partner["agreement_type"] == "entrusted_processing"
    _, admin = await identity.staff("privacy_officer")
    listed = (await identity.client.get("/partners", headers=bearer(admin))).json()
    assert [p["client_id"] for p in listed] == [partner["client_id"]]
    assert "client_secret" not in listed[0]
    assert partner["client_secret"].encode() not in identity.database_path.read_bytes()


@pytest.mark.obligation("OB-3-1")
async def test_partner_tokens_carry_only_its_scope_and_purposes(identity: Identity) -> None:
    partner = await register_partner(identity)
    response = await token_for(identity, partner)
    assert response.status_code == 200, response.text
    keys = KeySet((await identity.client.get("/.well-known/jwks.json")).json())
    claims = verify_token(
        response.json()["access_token"],
        keys=keys,
        issuer=ISSUER,
        audience=identity.settings.auth_audience,
    )
    assert claims["scope"] == "partner:logistics"
    assert claims["purposes"] == ["logistics.delivery"]
    assert claims["kind"] == "partner" and claims["sub"] == partner["client_id"]

    beyond = await token_for(identity, partner, scope="partner:logistics partner:customs")
    assert beyond.status_code == 400
    assert beyond.json()["error"] == "invalid_scope"
    assert "partner:customs" in beyond.json()["error_description"]


@pytest.mark.obligation("OB-3-4")
@pytest.mark.parametrize(
    "assessment",
    [
        {"assessed_on": str(TODAY), "result": "failed", "valid_until": str(TODAY + timedelta(1))},
        {
            "assessed_on": str(TODAY - timedelta(400)),
            "result": "passed",
            "valid_until": str(TODAY - timedelta(1)),
        },
    ],
)
async def test_no_token_without_a_valid_assessment(
    identity: Identity, assessment: dict[str, str]
) -> None:
    partner = await register_partner(identity, assessment=assessment)
    response = await token_for(identity, partner)
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"
    assert "assessment" in response.json()["error_description"]

    _, admin = await identity.staff("privacy_officer")
    renewed = await identity.client.post(
        f"/partners/{partner['client_id']}/assessments",
        headers=bearer(admin),
        json={
            "assessed_on": str(TODAY),
            "result": "passed",
            "valid_until": str(TODAY + timedelta(days=365)),
        },
    )
    assert renewed.status_code == 200
    assert (await token_for(identity, partner)).status_code == 200


async def test_revoked_partners_and_wrong_secrets_get_nothing(identity: Identity) -> None:
    partner = await register_partner(identity)
    assert (await token_for(identity, partner, secret="pcs_wrong")).status_code == 401
    _, admin = await identity.staff("privacy_officer")
    revoked = await identity.client.post(
        f"/partners/{partner['client_id']}/revoke", headers=bearer(admin)
    )
    assert revoked.json()["status"] == "revoked"
    assert (await token_for(identity, partner)).status_code == 401


async def test_only_the_privacy_officer_manages_partners(identity: Identity) -> None:
    _, user = await identity.user()
    _, support = await identity.staff("customer_service")
    for token in (user, support):
        response = await identity.client.post(
            "/partners", json=partner_form(), headers=bearer(token)
        )
        assert response.status_code == 403
    _, admin = await identity.staff("privacy_officer")
    unknown = await identity.client.post(
        "/partners", json=partner_form(purposes=["telemarketing"]), headers=bearer(admin)
    )
    assert unknown.status_code == 422
