"""The running suite (see :mod:`tests.e2e.suite`): ``suite``, started once for the
end-to-end tests of this package, and ``walkthrough_suite``, a fresh one for README's
walk-through, which expects nothing to exist before it; ``processor``, the stand-in for
another processor a person has a portable copy sent to."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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


#: What the stand-in processor was sent: each copy's ``Content-Type`` and body.
Received = list[tuple[str, bytes]]


@pytest.fixture
def processor() -> Iterator[tuple[str, Received]]:
    """The other processor a person names for a portable copy (on this machine): its
    import URL and what it keeps of each copy it is sent."""
    received: Received = []

    class Processor(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.append((self.headers.get("Content-Type", ""), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Processor)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/import", received
    finally:
        server.shutdown()
        server.server_close()
