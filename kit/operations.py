"""Operations routes on their own listener, off the public origin.

An app made with ``create_app(..., public_operations=False)`` (the gateway) answers only a
bare liveness check (``GET /healthz``: ``{"status": "ok"}``) on its public port; its
readiness with every check's detail (broker addresses, last errors), its Prometheus metrics
and its OpenAPI (``/docs``, ``/openapi.json``) are served by ``app.state.operations_app``
(:func:`kit.app.operations_app`) on a separate port, which :func:`serve_operations` runs
inside the app's own process and event loop (so the readiness it reports is the serving
process's own). The socket is bound with
``SO_REUSEPORT`` where the platform has it, so several workers of one app share the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

START_TIMEOUT_S = 10.0


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server inside another's process: the host server handles the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if port and hasattr(socket, "SO_REUSEPORT"):  # the workers of one app share the port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


@asynccontextmanager
async def serve_operations(ops: FastAPI, *, host: str, port: int) -> AsyncIterator[int]:
    """Serve ``ops`` on ``host:port`` (0: a free port) while the block runs; yields the
    port it listens on."""
    sock = _listen(host, port)
    # access_log stays as the host configured it (False would switch the host's off)
    config = uvicorn.Config(ops, log_config=None, access_log=True, lifespan="off")
    server = _EmbeddedServer(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT_S
        while not server.started:
            if serving.done():
                serving.result()  # its start-up error
                raise RuntimeError("the operations server stopped at start")
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError("the operations server did not start")
            await asyncio.sleep(0.01)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await serving
        sock.close()


__all__ = ["serve_operations"]
