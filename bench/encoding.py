"""What gzip at the gateway costs and saves (issue 24 item 8), in process, side by side.

``python -m bench.encoding --requests 1000`` prints, for a public 4 kB JSON answer (40
goods) through the gateway (``httpx.ASGITransport``, a fake orders upstream, as
``bench.gateway`` does):

(a) the request without ``Accept-Encoding`` (sent as it is);
(b) the same with ``Accept-Encoding: gzip`` (compressed at the gateway, decoded by httpx);
(c) a 60-byte answer with ``Accept-Encoding: gzip`` (under the threshold: untouched);

microseconds per request and the ratio to (a), the bytes on the wire for (a) and (b), and
alone :func:`gateway.compression.compress` on the 4 kB body and gzip's levels 1, 6 and 9
on it (time and size). Requests are sequential,
after a warm-up, the scenarios taking turns in rounds (``bench.gateway.side_by_side``).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from starlette.responses import Response

from bench.gateway import Call, client_factory, micro_us, side_by_side
from gateway.compression import GZIP_LEVEL, compress
from gateway.config import Settings
from gateway.main import create_app
from kit.migrations import upgrade
from kit.testing import TEST_ISSUER, UNREACHABLE_KAFKA

GOODS = [
    {"goods_id": f"gds_{n:04d}", "name": f"Longjing tea, grade {n}", "price": "99.90",
     "currency": "CNY", "cross_border": False, "special_category": False}
    for n in range(40)
]  # fmt: skip


def goods_app() -> FastAPI:
    app = FastAPI()

    @app.get("/goods")
    async def goods() -> list[dict[str, Any]]:
        return GOODS

    @app.get("/goods/{goods_id}")
    async def one(goods_id: str) -> dict[str, Any]:
        return {"goods_id": goods_id, "name": "Tea set", "price": "19.90"}

    return app


async def run(requests: int, warmup: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{Path(directory) / 'gateway.db'}",
            kafka_bootstrap_servers=UNREACHABLE_KAFKA,
            auth_issuer=TEST_ISSUER,
            log_json=False,
            log_level="ERROR",
            rate_limit_per_s=1e9,
            rate_limit_burst=1_000_000_000,
        )
        await upgrade("gateway", settings.database_url)
        app = create_app(settings, client_factory=client_factory(goods_app()))
        async with app.router.lifespan_context(app):
            logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
            transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 4321))
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                plain = {"Accept-Encoding": "identity"}
                packed = {"Accept-Encoding": "gzip"}
                scenarios: dict[str, Call] = {
                    "a": lambda: client.get("/orders/goods", headers=plain),
                    "b": lambda: client.get("/orders/goods", headers=packed),
                    "c": lambda: client.get("/orders/goods/gds_1", headers=packed),
                }
                sizes = {}
                for name in ("a", "b"):
                    answer = await client.send(
                        client.build_request(
                            "GET", "/orders/goods", headers=plain if name == "a" else packed
                        ),
                        stream=True,
                    )
                    sizes[name] = len(b"".join([chunk async for chunk in answer.aiter_raw()]))
                    await answer.aclose()
                figures = await side_by_side(scenarios, requests, warmup, rounds)
    body = json.dumps(GOODS, separators=(",", ":")).encode()

    def compress_once() -> None:
        response = Response(body, media_type="application/json")
        compress(response, accept_encoding="gzip", min_bytes=1024)

    alone = micro_us(compress_once, max(requests, 1000))
    levels = {}
    for level in (1, 6, 9):
        started = time.perf_counter()
        for _ in range(1000):
            packed_body = gzip.compress(body, compresslevel=level, mtime=0)
        levels[level] = ((time.perf_counter() - started) / 1000 * 1e6, len(packed_body))
    print(f"(a) 4 kB answer, sent as it is      {figures['a']:8.1f} us/request  1.00")
    print(f"(b) 4 kB answer, gzip               {figures['b']:8.1f} us/request  "
          f"{figures['b'] / figures['a']:.2f}")  # fmt: skip
    print(f"(c) 60 B answer, under threshold    {figures['c']:8.1f} us/request  "
          f"{figures['c'] / figures['a']:.2f}")  # fmt: skip
    print(f"bytes on the wire: (a) {sizes['a']}  (b) {sizes['b']}  "
          f"({sizes['b'] / sizes['a']:.0%})")  # fmt: skip
    print(f"compress() alone on the 4 kB body (level {GZIP_LEVEL}): {alone:.1f} us")
    for level, (us, size) in levels.items():
        print(f"  gzip level {level}: {us:.1f} us, {len(body)} -> {size} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(run(args.requests, args.warmup, args.rounds))


if __name__ == "__main__":
    main()
