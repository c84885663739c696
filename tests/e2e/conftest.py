"""The running suite (see :mod:`tests.e2e.suite`): ``suite``, started once for the
end-to-end tests of this package, and ``walkthrough_suite``, a fresh one for README's
walk-through, which expects nothing to exist before it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from kit.testing import LocalPostgres
from tests.conftest import Broker
from tests.e2e.suite import Suite, running_suite


async def _started(
    kafka: Broker, postgres: LocalPostgres, logs: pytest.TempPathFactory, name: str
) -> AsyncIterator[Suite]:
    async with running_suite(
        postgres=postgres, bootstrap_servers=kafka.bootstrap_servers, log_dir=logs.mktemp(name)
    ) as running:
        yield running


@pytest.fixture(scope="package")
async def suite(
    kafka: Broker, postgres: LocalPostgres, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Suite]:
    async for running in _started(kafka, postgres, tmp_path_factory, "suite-logs"):
        yield running


@pytest.fixture(scope="module")
async def walkthrough_suite(
    kafka: Broker, postgres: LocalPostgres, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Suite]:
    async for running in _started(kafka, postgres, tmp_path_factory, "walkthrough-logs"):
        yield running
