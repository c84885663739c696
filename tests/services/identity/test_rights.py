"""Rights requests at identity (OB-R-1, OB-4-2): the privacy center's service token reads
everything identity holds about a subject, with purposes and retention, and nobody else
does; a deletion request marks the account deleted, revokes its logins, deletes the
verification and shreds the subject's key, and answers with categories only."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from kit.auth import PARTNER_SCOPES, USER_SCOPES, generate_signing_key
from kit.crypto import SubjectKeyShredded
from kit.events import Event, find_personal_data, new_event
from kit.testing import bearer, mint_token, trust_only
from services.identity.accounts.service import PHONE_CONTEXT
from services.identity.models import Account, RealNameVerification, RefreshToken
from services.identity.rights import service
from services.identity.rights.consumers import rights_handler
from services.identity.verification.service import ID_NUMBER_CONTEXT, REAL_NAME_CONTEXT
from tests.services.identity.conftest import Identity
from tests.services.identity.ids import ADULT
from tests.services.identity.test_service_clients import create_service_client, token_for

SERVICE_ID = "svc_consentprivacycenter"
NAME = "张三"
PASSWORD = "correct horse battery"


def requested(subject: str, kind: str = "deletion", participants: list[str] | None = None) -> Event:
    return new_event(
        source="/consent",
        type="com.signature.consent.rights.requested.v1",
        subject=subject,
        purpose="rights.access",
        data={
            "request_id": "rr_abcdefghijklmnopqrstuvwx",
            "kind": kind,
            "deadline": "2030-01-01T00:00:00+00:00",
            "participants": participants if participants is not None else ["identity", "orders"],
        },
    )


async def verified_user(identity: Identity) -> tuple[str, str]:
    """A registered, logged-in user with a real-name verification; (account id, phone)."""
    phone = identity.new_phone()
    account_id = await identity.register(phone, PASSWORD)
    await identity.login(phone, PASSWORD)
    context = identity.context
    async with context.database.session() as session:
        session.add(
            RealNameVerification(
                account_id=account_id,
                real_name_encrypted=await context.cipher.encrypt(
                    session, subject=account_id, value=NAME, context=REAL_NAME_CONTEXT
                ),
                id_number_encrypted=await context.cipher.encrypt(
                    session, subject=account_id, value=ADULT, context=ID_NUMBER_CONTEXT
                ),
                id_number_index=context.cipher.blind_index(ADULT, context=ID_NUMBER_CONTEXT),
                level="real_name",
            )
        )
    return account_id, phone


def minted(identity: Identity, subject: str, scopes: Any, **claims: Any) -> dict[str, str]:
    return bearer(
        mint_token(
            identity.key,  # type: ignore[attr-defined]
            issuer=identity.settings.auth_issuer,
            audience=identity.settings.auth_audience,
            subject=subject,
            scopes=scopes,
            **claims,
        )
    )


def service_headers(identity: Identity, **overrides: Any) -> dict[str, str]:
    claims: dict[str, Any] = {
        "kind": "service",
        "client_type": "server",
        "purposes": ["rights.access"],
    }
    claims |= overrides
    scopes = claims.pop("scopes", ["service:rights.access"])
    return minted(identity, SERVICE_ID, scopes, **claims)


@pytest.mark.obligation("OB-R-1")
async def test_the_export_gives_a_service_token_everything_with_purposes_and_retention(
    identity: Identity,
) -> None:
    account_id, phone = await verified_user(identity)
    await _trusting(identity)
    response = await identity.client.get(
        f"/rights/export/{account_id}", headers=service_headers(identity)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["subject"] == account_id and body["partner_links"] == []
    account = body["account"]
    assert account["status"] == "active" and account["kind"] == "user"
    phone_field = account["fields"]["phone"]
    assert phone_field["value"] == phone  # rights.access sees the number in full
    assert phone_field["category"] == "user.contact.phone_number"
    assert "rights.access" in phone_field["purposes"] and "account" in phone_field["purposes"]
    assert phone_field["retention"]["id"] == "account"
    assert phone_field["retention"]["legal_basis"]
    assert account["fields"]["password_hash"]["value"] != PASSWORD
    assert "$" not in str(account["fields"]["password_hash"]["value"])  # never the hash
    verification = body["verification"]["fields"]
    assert verification["real_name"]["value"] == NAME
    masked = verification["id_number"]["value"]
    assert masked != ADULT and masked[:1] == ADULT[:1] and "*" in masked  # OB-2A-3
    assert len(body["sessions"]) == 1 and body["sessions"][0]["revoked"] is False

    (read,) = [
        e
        for e in await identity.outbox_events()
        if e.type == "com.signature.identity.personal_data.read.v1" and e.subject == account_id
    ]
    assert read.purpose == "rights.access" and read.data["actor"] == SERVICE_ID
    assert "user.contact.phone_number" in read.categories


async def _trusting(identity: Identity) -> Identity:
    key = generate_signing_key()
    trust_only(identity.app, key)
    identity.key = key  # type: ignore[attr-defined]
    return identity


@pytest.mark.parametrize(
    "claims",
    [
        {"kind": "user", "client_type": "app", "scopes": sorted(USER_SCOPES), "purposes": []},
        {"kind": "partner", "client_type": "server", "scopes": sorted(PARTNER_SCOPES)},
        {"scopes": ["service:cross_border.transfer"], "purposes": ["cross_border.transfer"]},
    ],
    ids=["user", "partner", "another-service-purpose"],
)
@pytest.mark.obligation("OB-R-1")
async def test_the_export_refuses_anyone_but_the_rights_service(
    identity: Identity, claims: dict[str, Any]
) -> None:
    account_id, _ = await verified_user(identity)
    await _trusting(identity)
    if claims.get("kind") == "user":
        subject, rest = account_id, {k: v for k, v in claims.items() if k != "purposes"}
        headers = minted(identity, subject, rest.pop("scopes"), **rest)
    else:
        headers = service_headers(identity, **claims)
    response = await identity.client.get(f"/rights/export/{account_id}", headers=headers)
    assert response.status_code == 403, response.text
    assert NAME not in response.text
    response = await identity.client.get(f"/rights/export/{account_id}")
    assert response.status_code == 401


@pytest.mark.obligation("OB-R-1")
async def test_a_service_client_from_the_cli_reads_the_export(identity: Identity) -> None:
    """The real path: ``create-service-client --scope service:rights.access`` and the
    client-credentials grant give the token the privacy center's exporter uses."""
    account_id, phone = await verified_user(identity)
    client = await create_service_client(identity, "consent", "service:rights.access")
    granted = await token_for(identity, client, "service:rights.access")
    assert granted.status_code == 200, granted.text
    response = await identity.client.get(
        f"/rights/export/{account_id}", headers=bearer(granted.json()["access_token"])
    )
    assert response.status_code == 200, response.text
    assert response.json()["account"]["fields"]["phone"]["value"] == phone


@pytest.mark.obligation("OB-R-1")
async def test_an_unknown_subject_has_an_empty_export(identity: Identity) -> None:
    await _trusting(identity)
    response = await identity.client.get(
        "/rights/export/acc_nobody", headers=service_headers(identity)
    )
    assert response.status_code == 200
    assert response.json()["account"] is None and response.json()["verification"] is None


@pytest.mark.obligation("OB-4-2")
async def test_a_deletion_request_deletes_shreds_and_answers_without_personal_data(
    identity: Identity,
) -> None:
    account_id, phone = await verified_user(identity)
    context = identity.context
    async with context.database.session() as session:
        account = await session.get(Account, account_id)
        assert account is not None
        phone_token = account.phone_encrypted
        verification = await session.get(RealNameVerification, account_id)
        assert verification is not None
        name_token = verification.real_name_encrypted

    async with context.database.session() as session:
        await rights_handler(context)(session, requested(account_id))

    async with context.database.session() as session:
        account = await session.get(Account, account_id)
        assert account is not None and account.status == "deleted"
        assert await session.get(RealNameVerification, account_id) is None
        tokens = list(
            await session.scalars(
                select(RefreshToken).where(col(RefreshToken.account_id) == account_id)
            )
        )
        assert tokens and all(token.revoked_at is not None for token in tokens)
        for token, where in ((phone_token, PHONE_CONTEXT), (name_token, REAL_NAME_CONTEXT)):
            with pytest.raises(SubjectKeyShredded):
                await context.cipher.decrypt(
                    session, subject=account_id, token=token, context=where
                )

    login = await identity.client.post(
        "/login", json={"phone": phone, "password": PASSWORD, "client_type": "app"}
    )
    assert login.status_code == 401, login.text

    (answer,) = [
        e
        for e in await identity.outbox_events()
        if e.type == "com.signature.identity.rights.completed.v1"
    ]
    assert answer.subject == account_id and answer.source == "/identity"
    assert answer.purpose == "rights.access"
    assert answer.data["request_id"] == "rr_abcdefghijklmnopqrstuvwx"
    assert answer.data["outcome"] == "done"
    assert set(answer.data["deleted"]) >= {
        "user.contact.phone_number",
        "user.account.credentials",
        "user.name",
        "user.government_id.national_identification_number",
    }
    assert answer.data["kept"] == []
    raw = answer.model_dump_json()
    assert phone not in raw and NAME not in raw and ADULT not in raw
    personal = context.catalogue.personal_field_names()
    assert find_personal_data(answer.data, personal_fields=personal) == []

    # The same number may register again: nothing links it to the deleted account.
    again = await identity.client.post("/accounts", json={"phone": phone, "password": PASSWORD})
    assert again.status_code == 201, again.text


@pytest.mark.obligation("OB-R-1")
async def test_other_kinds_and_other_services_requests(identity: Identity) -> None:
    account_id, _ = await verified_user(identity)
    context = identity.context
    handler = rights_handler(context)
    async with context.database.session() as session:
        await handler(session, requested(account_id, participants=["orders"]))  # not ours
        await handler(session, requested(account_id, "access"))
        await handler(session, requested(account_id, "correction"))
        await handler(session, requested(account_id, "withdraw_all"))
    answers = [
        e
        for e in await identity.outbox_events()
        if e.type == "com.signature.identity.rights.completed.v1"
    ]
    assert [a.data["outcome"] for a in answers] == ["done", "refused", "done"]
    # A correction is refused with the reason: the phone is the login, real-name data are
    # the authority's; withdrawing consents stops nothing here (no face image is kept).
    assert answers[1].data["reason"] == service.NOT_CORRECTED
    assert "login" in answers[1].data["reason"] and "verify again" in answers[1].data["reason"]
    assert answers[2].data["reason"] == service.WITHDRAWN
    async with context.database.session() as session:
        account = await session.get(Account, account_id)
        assert account is not None and account.status == "active"
