"""National network identity authentication (网号/网证, OB-L-11): the app hands over the
credential the national service gave the user; identity keeps the result and the
pseudonymous network number only, never a name or ID number; the account's level rises
as a real-name verification's would, so users who do not use it get the same service."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from kit.testing import bearer
from services.identity.models import NetworkIdentity
from tests.services.identity.conftest import Identity
from tests.services.identity.ids import ADULT
from tests.services.identity.test_rights import _trusting, service_headers

NAME = "张三"


async def authenticate(identity: Identity, person: str) -> tuple[str, str, NetworkIdentity]:
    """A new user who authenticates through the network identity service: the account,
    its token and the row identity keeps."""
    account_id, token = await identity.user()
    answer = await identity.client.post(
        "/verifications/network-identity",
        json={"credential": f"sandbox-netid:{person}"},
        headers=bearer(token),
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["authenticated"] is True and answer.json()["level"] == "real_name"
    async with identity.context.database.session() as session:
        row = await session.get(NetworkIdentity, account_id)
    assert row is not None
    return account_id, token, row


@pytest.mark.obligation("OB-L-11")
async def test_only_the_result_and_the_network_number_are_kept(identity: Identity) -> None:
    account_id, token, _ = await authenticate(identity, "person-1")
    async with identity.context.database.session() as session:
        [row] = list(await session.scalars(select(NetworkIdentity)))
    assert row.account_id == account_id and row.network_number.startswith("wh")
    assert set(NetworkIdentity.model_fields) == {
        "account_id",
        "network_number",
        "level",
        "reference",
        "verified_at",
    }
    assert "person-1" not in repr(row)  # the credential itself is not kept
    me = await identity.client.get("/accounts/me", headers=bearer(token))
    assert me.json()["verification_level"] == "real_name"


@pytest.mark.obligation("OB-L-11")
async def test_users_who_do_not_use_it_get_the_same_level(identity: Identity) -> None:
    _, network_user, _ = await authenticate(identity, "person-2")
    _, plain_user = await identity.user()
    verified = await identity.client.post(
        "/verifications", json={"real_name": NAME, "id_number": ADULT}, headers=bearer(plain_user)
    )
    assert verified.status_code == 201, verified.text
    levels = [
        (await identity.client.get("/accounts/me", headers=bearer(token))).json()[
            "verification_level"
        ]
        for token in (network_user, plain_user)
    ]
    assert levels == ["real_name", "real_name"]


@pytest.mark.obligation("OB-L-11")
async def test_a_credential_the_service_does_not_confirm_is_refused(identity: Identity) -> None:
    _, token = await identity.user()
    refused = await identity.client.post(
        "/verifications/network-identity",
        json={"credential": "sandbox-netid:person-3:mismatch"},
        headers=bearer(token),
    )
    assert refused.status_code == 422
    assert refused.json()["type"].endswith("/network-identity-failed")
    async with identity.context.database.session() as session:
        assert list(await session.scalars(select(NetworkIdentity))) == []


@pytest.mark.obligation("OB-R-1")
async def test_the_access_export_holds_the_network_number(identity: Identity) -> None:
    account_id, _, row = await authenticate(identity, "person-2")
    await _trusting(identity)
    export = await identity.client.get(
        f"/rights/export/{account_id}", headers=service_headers(identity)
    )
    assert export.status_code == 200, export.text
    part = export.json()["network_identity"]
    assert part["network_number"] == row.network_number and part["level"] == "real_name"
    assert part["category"] == "user.government_id.network_number"
