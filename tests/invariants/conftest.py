"""The running suite the state machine drives (:mod:`tests.e2e.suite`: real processes on
PostgreSQL and Kafka), started once for the package on an event loop of its own: Hypothesis runs
the machine's rules synchronously, and each rule runs its requests to the end on that loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from kit.testing import LocalPostgres
from tests.conftest import Broker
from tests.e2e.suite import running_suite
from tests.invariants.machine import Stack


@pytest.fixture(scope="package")
def stack(
    kafka: Broker, postgres: LocalPostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    loop = asyncio.new_event_loop()
    started = running_suite(
        postgres=postgres,
        bootstrap_servers=kafka.bootstrap_servers,
        log_dir=tmp_path_factory.mktemp("invariants-logs"),
    )
    suite = loop.run_until_complete(started.__aenter__())
    try:
        yield Stack(loop=loop, suite=suite)
    finally:
        loop.run_until_complete(started.__aexit__(None, None, None))
        loop.close()
