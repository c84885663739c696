"""The gateway's hot path driven in process: its cost per request, counted, not timed.

``python -m bench.hotpath --kafka BROKER`` starts the stand-in orders upstream
(``bench.serve upstream``, its own uvicorn process on a free port), builds the gateway app
(:func:`bench.serve.gateway_app`: access events straight to Kafka, a throw-away PostgreSQL
database for its outbox from ``TEST_POSTGRES_ADMIN_URL``), stops its background loops (the
consent view, the consumers and the relay: their cost is time's, not the requests') and
calls its ASGI entry directly, without a server: the owner's GET of the 5-line order,
``--concurrency`` requests at a time, the way a connection's requests reach it from
uvicorn (middleware, the hot path, the upstream client, the access event's send and
acknowledgement). ``--transport aiohttp`` forwards with aiohttp's client, as before.
``--kind pure`` drives the pure proxy instead (:func:`bench.serve.pure_proxy_app`).

Each of ``--rounds`` rounds of ``--requests`` prints the process's CPU time per request.
On a shared machine that swings with the load; under callgrind (``--callgrind``:
``valgrind --tool=callgrind --instr-atstart=no python -m bench.hotpath --callgrind ...``)
each round is counted in instructions instead (user space, deterministic to about 1 %):
the driver asks ``callgrind_control`` to start counting before the round and to dump the
counts after it. ``py-spy record -- python -m bench.hotpath`` shows where they go.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import uvloop
from starlette.types import ASGIApp, Message, Scope

from bench.gateway import ORDER
from bench.http import (
    COMPACTED_TOPICS,
    ORDER_PATH,
    READ_TOPICS,
    free_port,
    process,
    serve,
    wait_until_up,
)
from bench.serve import gateway_app, parser, pure_proxy_app
from kit.auth import USER_SCOPES, generate_signing_key
from kit.kafka import TopicSpec, ensure_topics
from kit.migrations import upgrade
from kit.testing import TEST_ISSUER, LocalPostgres, mint_token, new_subject

_TOTALS = re.compile(rb"^totals:\s+(\d+)", re.MULTILINE)


class Driver:
    """Requests into an ASGI app as uvicorn would hand them over, answers checked."""

    def __init__(self, app: ASGIApp, path: str, headers: list[tuple[bytes, bytes]]) -> None:
        self.app = app
        self.path = path
        self.headers = headers
        self.last_body = b""

    def scope(self) -> Scope:
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000),
            "scheme": "http",
            "method": "GET",
            "root_path": "",
            "path": self.path,
            "raw_path": self.path.encode(),
            "query_string": b"",
            "headers": list(self.headers),
            "state": {},
        }

    async def one(self) -> None:
        sent = False
        status = 0
        body = bytearray()

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.Event().wait()  # the client stays: never disconnects
            raise AssertionError("unreachable")

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))

        await self.app(self.scope(), receive, send)
        if status != 200:
            raise RuntimeError(f"expected 200, got {status}: {bytes(body)[:300]!r}")
        self.last_body = bytes(body)

    async def many(self, count: int, concurrency: int) -> None:
        left = [count]

        async def worker() -> None:
            while left[0] > 0:
                left[0] -= 1
                await self.one()

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def _callgrind(*args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(os.getpid())], check=True, capture_output=True)


def _last_dump_instructions(before: set[Path]) -> int:
    dumps = set(Path.cwd().glob(f"callgrind.out.{os.getpid()}*")) - before
    newest = max(dumps, key=lambda path: path.stat().st_mtime)
    found = _TOTALS.search(newest.read_bytes())
    if found is None:
        raise RuntimeError(f"no totals in {newest}")
    return int(found.group(1))


async def measure(driver: Driver, args: argparse.Namespace) -> None:
    await driver.many(args.warmup, args.concurrency)
    if args.kind == "gateway":
        answer = orjson.loads(driver.last_body)
        assert answer["customs_id_number"] != ORDER["customs_id_number"], "not masked"
    for index in range(args.rounds):
        dumps = set(Path.cwd().glob(f"callgrind.out.{os.getpid()}*"))
        if args.callgrind:
            _callgrind("--zero")
            _callgrind("--instr=on")
        cpu, wall = time.process_time(), time.perf_counter()
        await driver.many(args.requests, args.concurrency)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        line = f"round {index + 1}: {args.requests} requests,"
        line += f" {cpu / args.requests * 1e6:,.0f} us CPU"
        line += f" ({wall / args.requests * 1e6:,.0f} us wall) a request"
        if args.callgrind:
            _callgrind("--instr=off")
            _callgrind("--dump")
            instructions = _last_dump_instructions(dumps)
            line += f", {instructions / args.requests / 1e3:,.0f} k instructions a request"
        print(line, flush=True)


@contextlib.asynccontextmanager
async def database() -> AsyncIterator[str]:
    postgres = LocalPostgres(admin_url=os.environ.get("TEST_POSTGRES_ADMIN_URL", ""))
    if not postgres.admin_url:
        postgres.start()
    async with postgres.database() as url:
        await upgrade("gateway", url)
        yield url


async def run(args: argparse.Namespace, scratch: Path) -> None:
    port = free_port()
    upstream_url = f"http://127.0.0.1:{port}"
    key = generate_signing_key()
    (scratch / "key.pem").write_bytes(key.private_pem)
    token = mint_token(
        key,
        issuer=TEST_ISSUER,
        audience="signature-api",
        subject=new_subject(),
        scopes=list(USER_SCOPES),
        ttl_s=3600,
    )
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"wrk"),
        (b"accept", b"*/*"),
        (b"authorization", f"Bearer {token}".encode()),
    ]
    prefix = f"hotpath{os.getpid()}."
    await ensure_topics(
        args.kafka,
        [TopicSpec(f"{prefix}{name}", compacted=name in COMPACTED_TOPICS) for name in READ_TOPICS],
    )
    with process(serve("upstream", port), scratch / "upstream.log"):
        await asyncio.to_thread(wait_until_up, f"{upstream_url}{ORDER_PATH}", {})
        async with database() as url:
            argv = [args.kind, "--port", "0", "--upstream-url", upstream_url]
            argv += ["--kafka", args.kafka, "--database-url", url, "--topic-prefix", prefix]
            argv += ["--key-file", str(scratch / "key.pem"), "--key-id", key.kid]
            argv += ["--transport", args.transport]
            served = parser().parse_args(argv)
            app: Any = gateway_app(served, key) if args.kind == "gateway" else None
            pure = pure_proxy_app(served) if args.kind == "pure" else None
            if app is not None:
                async with app.router.lifespan_context(app):
                    context = app.state.gateway.context
                    await asyncio.gather(*(loop.stop(5) for loop in context.consumers))
                    await context.relay.stop(5)
                    await measure(Driver(app, f"/orders{ORDER_PATH}", headers), args)
            else:
                assert pure is not None
                async with _lifespan(pure):
                    await measure(Driver(pure, f"/orders{ORDER_PATH}", headers), args)


@contextlib.asynccontextmanager
async def _lifespan(app: ASGIApp) -> AsyncIterator[None]:
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()

    async def serve_lifespan() -> None:
        await app({"type": "lifespan"}, inbox.get, outbox.put)

    task = asyncio.create_task(serve_lifespan())
    await inbox.put({"type": "lifespan.startup"})
    await outbox.get()
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task


def main() -> None:
    options = argparse.ArgumentParser(prog="python -m bench.hotpath")
    options.add_argument("--kind", choices=["gateway", "pure"], default="gateway")
    options.add_argument("--kafka", required=True, help="bootstrap servers")
    options.add_argument(
        "--transport", default="default", help="the upstream clients (bench.serve's --transport)"
    )
    options.add_argument("--requests", type=int, default=200, help="per round")
    options.add_argument("--rounds", type=int, default=3)
    options.add_argument("--warmup", type=int, default=200)
    options.add_argument("--concurrency", type=int, default=4)
    options.add_argument(
        "--callgrind", action="store_true", help="count instructions (run under callgrind)"
    )
    args = options.parse_args()
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="bench-hotpath-") as scratch:
        uvloop.run(run(args, Path(scratch)))  # as uvicorn runs the gateway


if __name__ == "__main__":
    main()
