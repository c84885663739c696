"""The processes the HTTP benchmarks put under load, each a real uvicorn server.

``python -m bench.serve KIND --port N ...`` runs one of:

- ``upstream``: the stand-in orders service of :mod:`bench.gateway` (the same full,
  5-line order for every variant: direct, nginx, gateway, pure proxy);
- ``gateway``: the real gateway app (:func:`gateway.main.create_app`) in front of it, its
  token verifier trusting the benchmark's own signing key (``--key-file``, a PEM), its
  access events going to ``--database-url`` (migrated by the caller: two gateways on one
  database must not race to migrate it) and on to Kafka by its relay;
- ``pure``: the gateway with all policy work turned off: the same
  :class:`gateway.proxy.Upstreams` clients and :func:`gateway.proxy.forward` in a plain ASGI
  app (as the hot path, without FastAPI), no token, purpose, consent, filter or access
  event; what the proxying alone costs.

``--transport`` picks the upstream clients (``default``: what production uses, the
gateway's own HTTP/1.1 pool, :mod:`gateway.http1`; ``aiohttp``: aiohttp's client, the one
before; ``httpcore``: httpx's own pool, the one before that). ``--access-batch N`` caps
the access events the gateway commits in one transaction
(1: one transaction per owner read, as before group commit); ``--access-outbox`` sends
every access event through the outbox (the path before they went straight to Kafka);
``--workers N`` sets ``GATEWAY_WORKERS`` (:func:`gateway_command` starts that many).
uvicorn uses uvloop and httptools when they are installed (``uvicorn[standard]``), as
it does in production, with the gateway's guarded protocol (``--protocol guarded``, the
default; ``httptools`` for uvicorn's own, to measure what the guards cost:
``python -m bench.connections``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from bench.gateway import fake_orders_app
from gateway.config import Settings
from gateway.main import create_app
from gateway.protocol import GuardedHttpToolsProtocol, limits_from
from gateway.proxy import (
    ClientFactory,
    Upstreams,
    aiohttp_client_factory,
    default_client_factory,
    forward,
    httpcore_client_factory,
    request_headers,
)
from kit.auth import SigningKey
from kit.testing import TEST_ISSUER, trust_only


def gateway_settings(args: argparse.Namespace) -> Settings:
    return Settings(
        database_url=args.database_url,
        kafka_bootstrap_servers=args.kafka,
        kafka_topic_prefix=args.topic_prefix,
        auth_issuer=TEST_ISSUER,
        upstream_orders_url=args.upstream_url,
        log_json=False,
        log_level="ERROR",
        # Far above any run: the limiter still runs, but never refuses.
        rate_limit_per_s=1e9,
        rate_limit_burst=1_000_000_000,
        ops_port=0,  # its operations routes on a free port, never make run's
        access_event_max_batch=args.access_batch,
        access_events_direct=not args.access_outbox,
        workers=args.workers,
    )


def client_factory(transport: str) -> ClientFactory:
    if transport == "default":
        return default_client_factory
    if transport == "aiohttp":
        return aiohttp_client_factory
    if transport == "httpcore":
        return httpcore_client_factory
    raise SystemExit(f"unknown transport {transport!r}")


def gateway_app(args: argparse.Namespace, key: SigningKey) -> FastAPI:
    settings = gateway_settings(args)
    app = create_app(settings, client_factory=client_factory(args.transport))
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with inner(app):
            trust_only(app, key)  # the benchmark is its own token issuer
            if settings.access_events_direct:  # measured on the path it is meant to take
                await asyncio.wait_for(app.state.gateway.access_events.connected.wait(), 120)
            yield

    app.router.lifespan_context = lifespan
    return app


def pure_proxy_app(args: argparse.Namespace) -> ASGIApp:
    """The hot path's forwarding alone, as a plain ASGI app (no FastAPI, no middleware):
    the floor the gateway's policy steps are added to."""
    settings = gateway_settings(args)
    upstreams: dict[str, Upstreams] = {}

    async def lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                upstreams["all"] = Upstreams(settings, client_factory(args.transport))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await upstreams["all"].aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        request = Request(scope, receive)
        name, _, rest = scope["path"].lstrip("/").partition("/")
        answer = await forward(
            upstreams["all"],
            name,
            method=request.method,
            path="/" + rest,
            query=scope.get("query_string", b""),
            headers=request_headers(
                request.headers.items(),
                client_host=request.client.host if request.client else None,
                scheme=request.url.scheme,
                host=request.headers.get("host"),
                request_id=None,
                purpose="order.query",
            ),
            body=await request.body(),
        )
        response = Response(content=answer.content, status_code=answer.status_code)
        response.raw_headers.extend(
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in answer.headers
        )
        await response(scope, receive, send)

    return app


def gateway_from_environment() -> FastAPI:
    """The gateway app of ``BENCH_SERVE_ARGV`` (this module's arguments, as JSON): the
    factory for several workers, run as production runs it (``uvicorn --factory
    bench.serve:gateway_from_environment --workers N``; :func:`gateway_command`)."""
    args = parser().parse_args(json.loads(os.environ["BENCH_SERVE_ARGV"]))
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    return gateway_app(args, signing_key(args))


def gateway_command(argv: list[str], *, port: int, workers: int) -> tuple[list[str], str]:
    """The command running the gateway of ``argv`` in ``workers`` uvicorn worker
    processes, and the value of ``BENCH_SERVE_ARGV`` it needs."""
    command = [sys.executable, "-m", "uvicorn", "--factory"]
    command += ["bench.serve:gateway_from_environment", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    command += ["--no-access-log", "--no-proxy-headers"]
    return command, json.dumps([*argv, "--workers", str(workers)])


def signing_key(args: argparse.Namespace) -> SigningKey:
    with open(args.key_file, "rb") as pem:
        return SigningKey(kid=args.key_id, alg="ES256", private_pem=pem.read())


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.serve")
    parser.add_argument("kind", choices=["upstream", "gateway", "pure"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream-url", default="")
    parser.add_argument("--key-file", default="")
    parser.add_argument("--key-id", default="")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--kafka", default="127.0.0.1:9092")
    parser.add_argument("--topic-prefix", default="bench.")
    parser.add_argument(
        "--protocol",
        choices=["httptools", "guarded"],
        default="guarded",
        help="uvicorn's httptools protocol, or the gateway's (gateway.protocol) as deployed",
    )
    parser.add_argument("--transport", default="default")
    parser.add_argument(
        "--access-batch", type=int, default=Settings.model_fields["access_event_max_batch"].default
    )
    parser.add_argument(
        "--access-outbox",
        action="store_true",
        help="access events through the outbox only (GATEWAY_ACCESS_EVENTS_DIRECT=false)",
    )
    parser.add_argument("--workers", type=int, default=1, help="GATEWAY_WORKERS")
    return parser


def main() -> None:
    args = parser().parse_args()
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    options: dict[str, Any] = {"host": "127.0.0.1", "port": args.port}
    options |= {"log_level": "warning", "access_log": False}
    app: ASGIApp
    if args.kind == "upstream":
        app = fake_orders_app()
    elif args.kind == "pure":
        app = pure_proxy_app(args)
    else:
        app = gateway_app(args, signing_key(args))
    # wrk's connections all come from loopback: no per-address cap in a benchmark
    GuardedHttpToolsProtocol.limits = replace(limits_from(Settings()), max_connections_per_client=0)
    options["http"] = GuardedHttpToolsProtocol if args.protocol == "guarded" else "httptools"
    uvicorn.run(app, **options)


if __name__ == "__main__":
    main()
