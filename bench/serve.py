"""The processes the HTTP benchmarks put under load, each a real uvicorn server.

``python -m bench.serve KIND --port N ...`` runs one of:

- ``upstream``: the stand-in orders service of :mod:`bench.gateway` (the same full,
  5-line order for every variant: direct, nginx, gateway, pure proxy);
- ``gateway``: the real gateway app (:func:`gateway.main.create_app`) in front of it, its
  token verifier trusting the benchmark's own signing key (``--key-file``, a PEM), its
  access events going to ``--database-url`` (migrated by the caller: two gateways on one
  database must not race to migrate it) and on to Kafka by its relay;
- ``pure``: the gateway with all policy work turned off: the same
  :class:`gateway.proxy.Upstreams` clients and :func:`gateway.proxy.forward`, no token,
  purpose, consent, filter or access event; what the proxying alone costs.

``--transport`` picks the httpx transport of the upstream clients (``default``: what
production uses, httpx over aiohttp's pool; ``httpcore``: httpx's own pool, the former
one). ``--access-batch N`` caps the access events the gateway commits in one transaction
(1: one transaction per owner read, as before group commit). uvicorn uses uvloop and
httptools when they are installed (``uvicorn[standard]``), as it does in production.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute

from bench.gateway import fake_orders_app
from gateway.config import Settings
from gateway.main import create_app
from gateway.proxy import (
    ClientFactory,
    Upstreams,
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
    )


def client_factory(transport: str) -> ClientFactory:
    if transport == "default":
        return default_client_factory
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
            yield

    app.router.lifespan_context = lifespan
    return app


def pure_proxy_app(args: argparse.Namespace) -> FastAPI:
    settings = gateway_settings(args)
    upstreams: dict[str, Upstreams] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        upstreams["all"] = Upstreams(settings, client_factory(args.transport))
        try:
            yield
        finally:
            await upstreams["all"].aclose()

    async def proxy(request: Request) -> Response:
        name, _, rest = request.url.path.lstrip("/").partition("/")
        answer = await forward(
            upstreams["all"],
            name,
            method=request.method,
            path="/" + rest,
            query=request.scope.get("query_string", b""),
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
        return response

    return FastAPI(
        lifespan=lifespan,
        routes=[APIRoute("/{full_path:path}", proxy, methods=["GET"], include_in_schema=False)],
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serve")
    parser.add_argument("kind", choices=["upstream", "gateway", "pure"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream-url", default="")
    parser.add_argument("--key-file", default="")
    parser.add_argument("--key-id", default="")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--kafka", default="127.0.0.1:9092")
    parser.add_argument("--topic-prefix", default="bench.")
    parser.add_argument("--transport", default="default")
    parser.add_argument(
        "--access-batch", type=int, default=Settings.model_fields["access_event_max_batch"].default
    )
    args = parser.parse_args()
    if args.kind == "upstream":
        app = fake_orders_app()
    elif args.kind == "pure":
        app = pure_proxy_app(args)
    else:
        with open(args.key_file, "rb") as pem:
            key = SigningKey(kid=args.key_id, alg="ES256", private_pem=pem.read())
        app = gateway_app(args, key)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
