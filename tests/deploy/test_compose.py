"""deploy/compose.yaml, validated offline: no Docker daemon (nor the compose plugin) runs
here, so the file is checked against the Compose specification's JSON schema and read for
the properties the deployment promises."""

from __future__ import annotations

import base64
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa

from kit.payment_signature import private_key_pem, public_key_pem
from kit.settings import REPO_ROOT
from services.identity.config import Settings
from services.identity.mini_program.platform import platforms_from_settings
from services.identity.sms.sender import HttpSmsSender, sms_sender_from_settings
from services.identity.verification.authority import SandboxAuthority, authority_from_settings

COMPOSE = REPO_ROOT / "deploy" / "compose.yaml"
APPS = ("identity", "orders", "consent", "transfer", "gateway")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    checker = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert checker, "check-jsonschema comes with the dev extra"
    result = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_only_the_gateway_is_published(compose: dict[str, Any]) -> None:
    published = {name for name, service in compose["services"].items() if "ports" in service}
    assert published == {"gateway"}
    assert compose["networks"]["backend"]["internal"] is True
    assert compose["services"]["gateway"]["deploy"]["replicas"] == 2


def test_each_app_is_checked_on_readyz_and_waits_for_the_migration(
    compose: dict[str, Any],
) -> None:
    for app in APPS:
        service = compose["services"][app]
        assert service["command"] == [app]
        assert "/readyz" in " ".join(service["healthcheck"]["test"])
        condition = service["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully"
    assert compose["services"]["migrate"]["command"] == ["migrate"]
    # the gateway's readiness is on its operations port, which is not published
    gateway = compose["services"]["gateway"]
    assert "127.0.0.1:8010/readyz" in " ".join(gateway["healthcheck"]["test"])
    assert gateway["ports"] == ["8000-8001:8000"]


def test_kafka_is_three_kraft_brokers_replicating_three_times(compose: dict[str, Any]) -> None:
    brokers = [name for name in compose["services"] if name.startswith("kafka-")]
    assert brokers == ["kafka-1", "kafka-2", "kafka-3"]
    for broker in brokers:
        environment = compose["services"][broker]["environment"]
        assert environment["KAFKA_CONTROLLER_QUORUM_VOTERS"].count("@") == 3
        assert compose["services"][broker]["image"].startswith("apache/kafka:")
    apps = compose["services"]["orders"]["environment"]
    assert (
        apps["PRIVACY_KAFKA_REPLICATION_FACTOR"],
        apps["PRIVACY_KAFKA_MIN_INSYNC_REPLICAS"],
    ) == (
        "3",
        "2",
    )


def test_one_database_per_app_and_secrets_from_files(compose: dict[str, Any]) -> None:
    environment = compose["services"]["orders"]["environment"]
    databases = {re.sub(r".*/", "", environment[f"{app.upper()}_DATABASE_URL"]) for app in APPS}
    assert databases == set(APPS)
    created = (REPO_ROOT / "deploy" / "compose" / "databases.sql").read_text()
    assert all(f"CREATE DATABASE {app};" in created for app in APPS)
    assert "PRIVACY_MASTER_KEY" not in environment
    assert environment["PRIVACY_MASTER_KEY_FILE"] == "/run/secrets/master_key"


def test_the_gateway_never_gets_the_master_key(compose: dict[str, Any]) -> None:
    gateway = compose["services"]["gateway"]
    assert gateway["secrets"] == []
    assert not [name for name in gateway["environment"] if "MASTER_KEY" in name]
    for app in ("orders", "consent", "transfer", "migrate"):
        assert compose["services"][app]["secrets"] == ["master_key"], app
    assert compose["services"]["identity"]["secrets"][0] == "master_key"


def test_identity_starts_on_the_real_providers_not_the_stand_ins(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Identity's production start refuses its stand-ins (SMS file, sandbox authority,
    stand-in mini-program platforms): compose names every provider, secrets as files."""
    identity = compose["services"]["identity"]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pems = {"PRIVATE_KEY": private_key_pem(key), "PUBLIC_KEY": public_key_pem(key)}
    for name, given in identity["environment"].items():
        if not name.startswith("IDENTITY_") or name.endswith("DATABASE_URL"):
            continue
        if name.endswith("_FILE"):
            secret = given.removeprefix("/run/secrets/")
            assert secret in identity["secrets"] and secret in compose["secrets"], name
            value = next((pem for kind, pem in pems.items() if kind in name), "a-secret")
            monkeypatch.setenv(name.removesuffix("_FILE"), value)
            continue
        # ${NAME:-default} is the default, ${NAME:?...} what the operator must give
        value = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", given)
        value = re.sub(r"\$\{[A-Z_]+:\?[^}]*\}", "https://provider.example/x", value)
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PRIVACY_MASTER_KEY", base64.b64encode(secrets.token_bytes(32)).decode())
    settings = Settings(environment="production")
    assert isinstance(sms_sender_from_settings(settings), HttpSmsSender)
    assert not isinstance(authority_from_settings(settings), SandboxAuthority)
    assert set(platforms_from_settings(settings)) == {"wechat", "alipay"}
    assert "edge" in identity["networks"]  # the providers are outside
