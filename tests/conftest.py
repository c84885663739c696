"""Shared fixtures: the real broker and database, started once per run.

- ``kafka``: the test broker (``deploy/kafka/kafka.sh`` on 127.0.0.1:29092, data in
  ``.run/kafka-test``; ``make test-services`` starts it too), reused when it already runs and
  otherwise started from empty storage; or the one named by ``TEST_KAFKA_BOOTSTRAP_SERVERS``.
- ``outage_kafka``: a second broker of our own on other ports, which tests stop and start
  to prove that nothing is lost while Kafka is down.
- ``postgres`` / ``pg_url``: the cluster of ``deploy/postgres/pg.sh`` (or the server of
  ``TEST_POSTGRES_ADMIN_URL``), and a fresh database per test.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from kit.settings import REPO_ROOT
from kit.testing import LocalKafka, LocalPostgres

pytest_plugins = ["tests.compliance"]

# Every gateway a test starts serves its operations routes on a free port of its own, never
# on the default one a running `make run` (or another test run) holds.
os.environ.setdefault("GATEWAY_OPS_PORT", "0")

# The consent views' SQLite files (kit.consent_store) of the apps the tests start: in a
# temporary directory of this run, never in the repository's .run/.
if "PRIVACY_CONSENT_STATE_DIR" not in os.environ:
    _consent_state_dir = tempfile.mkdtemp(prefix="consent-state-")
    os.environ["PRIVACY_CONSENT_STATE_DIR"] = _consent_state_dir
    atexit.register(shutil.rmtree, _consent_state_dir, ignore_errors=True)

# Fixtures that start or need the real broker or PostgreSQL.
_REAL_SERVICES = frozenset({"kafka", "outage_kafka", "postgres", "pg_url"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that uses the real broker or database is an integration test, marked or not:
    ``-m 'not integration'`` then runs with neither."""
    for item in items:
        if _REAL_SERVICES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@dataclass(frozen=True)
class Broker:
    bootstrap_servers: str


@pytest.fixture(scope="session")
def kafka() -> Broker:
    if servers := os.environ.get("TEST_KAFKA_BOOTSTRAP_SERVERS"):
        return Broker(servers)
    broker = isolated_test_broker()
    broker.start()
    return Broker(broker.bootstrap_servers)


def isolated_test_broker() -> LocalKafka:
    """Not the development broker of ``make run``: tests make many topics of their own."""
    return LocalKafka(
        port=29092, controller_port=29093, data_dir=REPO_ROOT / ".run" / "kafka-test", fresh=True
    )


@pytest.fixture(scope="session")
def outage_kafka() -> Iterator[LocalKafka]:
    # TEST_OUTAGE_KAFKA_PORT moves it (controller on the next port) when 19092 is taken.
    port = int(os.environ.get("TEST_OUTAGE_KAFKA_PORT", "19092"))
    broker = LocalKafka(
        port=port,
        controller_port=port + 1,
        data_dir=REPO_ROOT / ".run" / "kafka-outage",
        fresh=True,
    )
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def postgres() -> LocalPostgres:
    cluster = LocalPostgres(admin_url=os.environ.get("TEST_POSTGRES_ADMIN_URL", ""))
    if not cluster.admin_url:
        cluster.start()
    return cluster


@pytest.fixture
async def pg_url(postgres: LocalPostgres) -> AsyncIterator[str]:
    async with postgres.database() as url:
        yield url
