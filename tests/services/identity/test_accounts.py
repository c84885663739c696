"""Accounts: strict registration, the phone only as ciphertext, the owner's view, events
without personal data, roles behind verification, staff created by CLI and by admins."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kit.settings import REPO_ROOT
from kit.testing import bearer
from tests.services.identity.conftest import Identity


@pytest.mark.obligation("OB-0-3")
async def test_registration_names_bad_and_unexpected_fields(identity: Identity) -> None:
    response = await identity.client.post(
        "/accounts", json={"phone": "12345", "password": "short", "nickname": "x"}
    )
    assert response.status_code == 422
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"body.phone", "body.password", "body.nickname"}
    not_mobile = await identity.client.post(
        "/accounts", json={"phone": "12012345678", "password": "long enough pass"}
    )
    assert not_mobile.status_code == 422
    assert not_mobile.json()["errors"][0]["field"] == "body.phone"


@pytest.mark.obligation("OB-4-7")
async def test_the_phone_is_stored_encrypted_and_shown_to_its_owner(identity: Identity) -> None:
    phone = "13812345678"
    account_id = await identity.register("+86 138-1234-5678")
    token = (await identity.login(phone))["access_token"]
    me = (await identity.client.get("/accounts/me", headers=bearer(token))).json()
    assert me["account_id"] == account_id and me["phone"] == phone
    assert me["verification_level"] == "none" and me["roles"] == []
    duplicate = await identity.client.post(
        "/accounts", json={"phone": phone, "password": "another pass"}
    )
    assert duplicate.status_code == 409

    raw = identity.database_path.read_bytes()
    wal = identity.database_path.with_name(identity.database_path.name + "-wal")
    raw += wal.read_bytes() if wal.exists() else b""
    assert phone.encode() not in raw
    events = await identity.outbox_events()
    assert [e.type for e in events if e.subject == account_id][:1] == [
        "com.signature.identity.account.created.v1"
    ]
    assert all(phone not in e.model_dump_json() for e in events)
    # The read of /accounts/me is the gateway's to record, not identity's (README,
    # "Recording each read once"); identity records the account's creation.
    mine = [e.type for e in events if e.subject == account_id and ".personal_data." in e.type]
    assert mine == ["com.signature.identity.personal_data.write.v1"]


@pytest.mark.obligation("OB-2A-1")
async def test_becoming_a_seller_needs_real_name_verification(identity: Identity) -> None:
    _, token = await identity.user()
    response = await identity.client.post(
        "/accounts/me/roles", json={"role": "seller"}, headers=bearer(token)
    )
    assert response.status_code == 403
    assert response.json()["type"].endswith("/verification-required")


async def test_admins_create_staff_and_users_cannot(identity: Identity) -> None:
    _, admin = await identity.staff("privacy_officer")
    created = await identity.client.post(
        "/staff",
        headers=bearer(admin),
        json={
            "phone": identity.new_phone(),
            "password": "support pass 1",
            "roles": ["customer_service"],
        },
    )
    assert created.status_code == 201 and created.json()["roles"] == ["customer_service"]
    _, user = await identity.user()
    refused = await identity.client.post(
        "/staff",
        headers=bearer(user),
        json={"phone": identity.new_phone(), "password": "support pass 1", "roles": ["security"]},
    )
    assert refused.status_code == 403
    assert "admin:staff" in refused.json()["detail"]


def test_the_first_admin_comes_from_the_cli_with_no_default_password(tmp_path: Path) -> None:
    env = {**os.environ, "IDENTITY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/i.db"}
    env.pop("IDENTITY_ADMIN_PASSWORD", None)
    subprocess.run(
        [sys.executable, "-m", "kit.migrations", "upgrade", "services.identity"],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    command = [sys.executable, "-m", "services.identity", "create-admin", "--phone", "13700000001"]
    no_password = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert no_password.returncode != 0
    assert "IDENTITY_ADMIN_PASSWORD" in no_password.stderr
    made = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env={**env, "IDENTITY_ADMIN_PASSWORD": "first admin pass"},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    assert "privacy_officer" in made.stdout
