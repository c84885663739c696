"""Internal service clients: registered only on the command line (the secret printed once,
only its hash stored), given service tokens by the client-credentials grant, only within
their registered scopes, carrying the purposes those scopes name, and none once revoked."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import pytest

from kit.auth import KeySet, Principal, verify_token
from kit.settings import REPO_ROOT
from tests.services.identity.conftest import ISSUER, Identity


def cli(identity: Identity, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IDENTITY_DATABASE_URL": identity.settings.database_url}
    return subprocess.run(
        [sys.executable, "-m", "services.identity", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )


async def create_service_client(identity: Identity, name: str, *scopes: str) -> dict[str, str]:
    args = ["create-service-client", "--name", name]
    for scope in scopes:
        args += ["--scope", scope]
    made = await asyncio.to_thread(cli, identity, *args)
    assert made.returncode == 0, made.stderr
    printed = dict(
        line.split(": ", 1) for line in made.stdout.splitlines() if line.startswith("client_")
    )
    assert printed["client_id"].startswith("svc_")
    return printed


async def token_for(identity: Identity, client: dict[str, str], scope: str | None = None) -> Any:
    form = {
        "grant_type": "client_credentials",
        "client_id": client["client_id"],
        "client_secret": client["client_secret"],
    }
    if scope:
        form["scope"] = scope
    return await identity.client.post("/oauth2/token", data=form)


@pytest.mark.obligation("OB-3-1")
async def test_the_cli_registers_a_service_client_whose_token_carries_its_purpose(
    identity: Identity,
) -> None:
    client = await create_service_client(identity, "transfer", "service:cross_border.transfer")
    assert client["client_secret"].encode() not in identity.database_path.read_bytes()

    response = await token_for(identity, client)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"] == "service:cross_border.transfer"
    assert body["expires_in"] == identity.settings.service_token_ttl_s
    keys = KeySet((await identity.client.get("/.well-known/jwks.json")).json())
    claims = verify_token(
        body["access_token"], keys=keys, issuer=ISSUER, audience=identity.settings.auth_audience
    )
    assert claims["kind"] == "service" and claims["client_type"] == "server"
    assert claims["sub"] == client["client_id"]
    assert claims["purposes"] == ["cross_border.transfer"]
    principal = Principal.from_claims(claims)
    assert principal.purposes == {"cross_border.transfer"}


@pytest.mark.obligation("OB-3-1")
async def test_scopes_beyond_the_registration_and_wrong_secrets_are_refused(
    identity: Identity,
) -> None:
    client = await create_service_client(identity, "consent", "service:rights.access")
    for beyond in (
        "service:cross_border.transfer",
        "service:rights.access service:cross_border.transfer",
        "orders:read",
        "partner:logistics",
    ):
        refused = await token_for(identity, client, scope=beyond)
        assert refused.status_code == 400, beyond
        assert refused.json()["error"] == "invalid_scope"
    narrowed = await token_for(identity, client, scope="service:rights.access")
    assert narrowed.status_code == 200
    wrong = await token_for(identity, {**client, "client_secret": "scs_guess"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    unknown = await token_for(identity, {**client, "client_id": "svc_unknownclient"})
    assert unknown.status_code == 401


@pytest.mark.obligation("OB-3-1")
async def test_only_service_scopes_of_known_purposes_and_unique_names(
    identity: Identity,
) -> None:
    user_scope = await asyncio.to_thread(
        cli, identity, "create-service-client", "--name", "greedy", "--scope", "orders:read"
    )
    assert user_scope.returncode != 0 and "not service scopes" in user_scope.stderr
    assert "client_secret" not in user_scope.stdout
    await create_service_client(identity, "transfer", "service:cross_border.transfer")
    again = await asyncio.to_thread(
        cli,
        identity,
        "create-service-client",
        "--name",
        "transfer",
        "--scope",
        "service:cross_border.transfer",
    )
    assert again.returncode != 0 and "exists already" in again.stderr


@pytest.mark.obligation("OB-4-7")
async def test_a_revoked_service_client_gets_no_token(identity: Identity) -> None:
    client = await create_service_client(identity, "transfer", "service:cross_border.transfer")
    assert (await token_for(identity, client)).status_code == 200
    revoked = await asyncio.to_thread(
        cli, identity, "revoke-service-client", "--client-id", client["client_id"]
    )
    assert revoked.returncode == 0, revoked.stderr
    assert (await token_for(identity, client)).status_code == 401
