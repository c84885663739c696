"""Order placement: the real orders service against a plain insert of the same order row,
under wrk, with 1 and then 2 uvicorn workers (the machine has 2 cores, shared with
PostgreSQL, Kafka and wrk: 2 workers is as far as it goes).

``python -m bench.placement`` starts, one at a time, each as its own process on 127.0.0.1:

- ``service``: the orders app itself (:func:`services.orders.main.create_app`, its
  middleware, background loops and outbox relay, the retention sweeper off), on a
  throw-away PostgreSQL database, trusting the benchmark's own signing key. ``POST
  /orders`` with a real user token does what production does: verify the token (its
  cache holds it after the first request, as for any returning user), validate the
  body, look the goods up, read the buyer's data key and encrypt each personal field
  with AES-GCM under it, insert the order, its lines, its status and two outbox events
  (``order.placed`` and the processing record), one transaction, and answer the
  owner's view of the order;
- ``plain``: an equally thin FastAPI app, nothing else in it: the same body validated by
  the same :class:`OrderCreate`, the same goods lookup, the same ``orders``,
  ``order_line`` and ``order_status`` rows built by the same SQLAlchemy models and
  inserted the same way (order, flush, then lines and status), one transaction, the
  personal values stored as plain text in their columns; no token, no data key, no
  encryption, no outbox, no kit middleware; it answers ``{"order_id"}``;

each with ``--workers 1`` and ``--workers 2``. wrk posts the same order (two goods, the
consignee, a full address, a postal code, an extra phone: 6 encrypted fields), buyers in
turn among ``BUYERS`` (each with its own token and data key), ``-c CONNECTIONS`` for
``SECONDS`` after a warm-up; the four variants in turn, twice, best kept.

Then, in this process, the same pair at the service-function level (``CONCURRENCY``
tasks, one session per order, same database): :func:`place_order` against
:func:`plain_insert`, which shows the cost of encryption, key and outbox without HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Final

import uvicorn
from fastapi import FastAPI, Header
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bench.http import WrkResult, free_port, process, wait_until_up, wrk
from bench.report import Row
from kit.auth import USER_SCOPES, SigningKey, generate_signing_key
from kit.catalogue import default_catalogue
from kit.crypto import FieldCipher
from kit.db import Database, to_cents
from kit.ids import new_id
from kit.migrations import upgrade
from kit.models import utcnow
from kit.outbox import EventWriter
from kit.settings import DEVELOPMENT_MASTER_KEY
from kit.testing import (
    TEST_ISSUER,
    LocalKafka,
    LocalPostgres,
    delete_topics,
    mint_token,
    new_subject,
    trust_only,
)
from services.orders.config import Settings as OrdersSettings
from services.orders.goods.service import goods_by_id
from services.orders.main import create_app as create_orders_app
from services.orders.models import Goods, Order, OrderLine, OrderStatusChange
from services.orders.orders.schemas import OrderCreate
from services.orders.orders.service import _JSON_FIELDS, personal_values, place_order
from services.orders.security.rules import Thresholds

KEY_FILE_ENV: Final = "BENCH_PLACEMENT_KEY_FILE"
KEY_ID_ENV: Final = "BENCH_PLACEMENT_KEY_ID"
PLAIN_DATABASE_ENV: Final = "BENCH_PLACEMENT_DATABASE_URL"
GOODS: Final = (("gds_bench_tea", "Longjing tea 250 g", "59.90"), ("gds_bench_cup", "Cup", "12.50"))
ORDER: Final[dict[str, Any]] = {
    "items": [{"goods_id": GOODS[0][0], "quantity": 2}, {"goods_id": GOODS[1][0], "quantity": 1}],
    "consignee_name": "张三丰",
    "consignee_phone": "13812345678",
    "address": {
        "province": "浙江省",
        "city": "杭州市",
        "district": "西湖区",
        "detail": "文三路 100 号 2 幢 301 室",
        "postal_code": "310012",
    },
    "extra_phones": ["0571-88886666"],
}
VARIANTS: Final = (("service", 1), ("plain", 1), ("service", 2), ("plain", 2))

POST_LUA = """\
local tokens = {{ {tokens} }}
local buyers = {{ {buyers} }}
local body = [==[{body}]==]
local n = 0
request = function()
    n = n + 1
    local i = n % #tokens + 1
    return wrk.format("POST", "/orders", {{
        ["Content-Type"] = "application/json",
        ["Authorization"] = "Bearer " .. tokens[i],
        ["X-Buyer"] = buyers[i],
    }}, body)
end
"""


# --------------------------------------------------------------------------- the two apps


def _bench_key() -> SigningKey:
    pem = Path(os.environ[KEY_FILE_ENV]).read_bytes()
    return SigningKey(kid=os.environ[KEY_ID_ENV], alg="ES256", private_pem=pem)


def service_app() -> FastAPI:
    """The orders app, configured by ``ORDERS_*`` variables, trusting the benchmark's key
    (``uvicorn --factory bench.placement:service_app``)."""
    key = _bench_key()
    app = create_orders_app(OrdersSettings())
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with inner(app):
            trust_only(app, key)
            yield

    app.router.lifespan_context = lifespan
    return app


def _plain_text(field: str, value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if field in _JSON_FIELDS else str(value)


async def plain_insert(session: AsyncSession, *, buyer_id: str, request: OrderCreate) -> str:
    """The order row of :func:`place_order` for a valid request, built and inserted the
    same way, with its personal values in plain text: no key, encryption or outbox."""
    goods = await goods_by_id(session, (item.goods_id for item in request.items))
    bought = [(goods[item.goods_id], item.quantity) for item in request.items]
    line_totals = [to_cents(item.price * quantity) for item, quantity in bought]
    subtotal = to_cents(sum(line_totals, Decimal(0)))
    order_id, now = new_id("ord"), utcnow()
    order = Order(
        id=order_id,
        buyer_id=buyer_id,
        status="placed",
        currency=bought[0][0].currency,
        subtotal=subtotal,
        discounts=[],
        discount_total=Decimal(0),
        amount_payable=subtotal,
        cross_border=any(item.cross_border for item, _ in bought),
        special_category=any(item.special_category for item, _ in bought),
        invoice_requested=request.invoice is not None,
        delivery_window=None,
        consignee_name_encrypted="",
        consignee_phone_encrypted="",
        address_region_encrypted="",
        address_detail_encrypted="",
        created_at=now,
    )
    for field, value in personal_values(request).items():
        setattr(order, f"{field}_encrypted", _plain_text(field, value))
    session.add(order)
    await session.flush()
    session.add_all(
        [
            *(
                OrderLine(
                    order_id=order_id,
                    position=position,
                    goods_id=item.id,
                    goods_name=item.name,
                    quantity=quantity,
                    unit_price=item.price,
                    line_total=total,
                )
                for position, ((item, quantity), total) in enumerate(
                    zip(bought, line_totals, strict=True)
                )
            ),
            OrderStatusChange(order_id=order_id, status="placed", actor=buyer_id, at=now),
        ]
    )
    await session.flush()
    return order_id


def plain_app() -> FastAPI:
    """``POST /orders`` as :func:`plain_insert`, on ``BENCH_PLACEMENT_DATABASE_URL``
    (``uvicorn --factory bench.placement:plain_app``)."""
    databases: dict[str, Database] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        databases["orders"] = Database(os.environ[PLAIN_DATABASE_ENV])
        try:
            yield
        finally:
            await databases["orders"].dispose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/orders", status_code=201)
    async def place(
        body: OrderCreate, x_buyer: Annotated[str, Header(max_length=40)]
    ) -> dict[str, str]:
        async with databases["orders"].session() as session:
            return {"order_id": await plain_insert(session, buyer_id=x_buyer, request=body)}

    return app


def serve(kind: str, port: int, workers: int) -> None:
    uvicorn.run(
        f"bench.placement:{kind}_app",
        factory=True,
        host="127.0.0.1",
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )


# --------------------------------------------------------------------------- measuring


async def prepare(url: str) -> None:
    """The orders schema and the goods the benchmark buys."""
    await upgrade("services.orders", url)
    database = Database(url)
    async with database.session() as session:
        session.add_all(
            Goods(id=id_, name=name, price=Decimal(price), currency="CNY", created_by="stf_bench")
            for id_, name, price in GOODS
        )
    await database.dispose()


async def count_orders(url: str) -> int:
    database = Database(url)
    async with database.session() as session:
        count = await session.scalar(select(func.count()).select_from(Order))
    await database.dispose()
    return count or 0


@dataclass(frozen=True)
class Figures:
    http: dict[tuple[str, int], WrkResult]
    placed: dict[str, int]  # orders in each database after the HTTP runs
    function: dict[str, float]  # orders/s in process
    connections: int
    concurrency: int


def _run_http(
    scratch: Path,
    urls: dict[str, str],
    kafka: str,
    *,
    connections: int,
    seconds: float,
    buyers: int,
) -> dict[tuple[str, int], WrkResult]:
    key = generate_signing_key()
    key_file = scratch / "key.pem"
    key_file.write_bytes(key.private_pem)
    subjects = [new_subject() for _ in range(buyers)]
    tokens = [
        mint_token(
            key,
            issuer=TEST_ISSUER,
            audience="signature-api",
            subject=subject,
            scopes=list(USER_SCOPES),
            ttl_s=3600,
        )
        for subject in subjects
    ]
    script = scratch / "post.lua"
    script.write_text(
        POST_LUA.format(
            tokens=", ".join(f'"{t}"' for t in tokens),
            buyers=", ".join(f'"{s}"' for s in subjects),
            body=json.dumps(ORDER, ensure_ascii=False),
        ),
        encoding="utf-8",
    )
    env = {
        **os.environ,
        KEY_FILE_ENV: str(key_file),
        KEY_ID_ENV: key.kid,
        PLAIN_DATABASE_ENV: urls["plain"],
        "ORDERS_DATABASE_URL": urls["service"],
        "ORDERS_KAFKA_BOOTSTRAP_SERVERS": kafka,
        "ORDERS_KAFKA_TOPIC_PREFIX": topic_prefix(),
        "ORDERS_AUTH_ISSUER": TEST_ISSUER,
        "ORDERS_LOG_JSON": "false",
        "ORDERS_LOG_LEVEL": "ERROR",
        "ORDERS_RETENTION_SWEEP_ENABLED": "false",
    }
    best: dict[tuple[str, int], WrkResult] = {}
    for _ in range(2):  # the variants in turn, twice: drift hits all alike
        for kind, workers in VARIANTS:
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            command = [
                *(sys.executable, "-m", "bench.placement", "serve", kind),
                *("--port", str(port), "--workers", str(workers)),
            ]
            with process(command, scratch / f"{kind}{workers}.log", env):
                wait_until_up(f"{base}/healthz", {}, timeout_s=60)
                wrk(f"{base}/orders", connections=connections, seconds=1, headers={},
                    script=str(script))  # fmt: skip
                result = wrk(
                    f"{base}/orders",
                    connections=connections,
                    seconds=seconds,
                    headers={},
                    script=str(script),
                )
            if (kind, workers) not in best or result.rps > best[kind, workers].rps:
                best[kind, workers] = result
    return best


async def function_rate(
    url: str, kind: str, *, orders: int, concurrency: int, buyers: list[str]
) -> float:
    """Orders/s of :func:`place_order` (``service``) or :func:`plain_insert` (``plain``)
    called by ``concurrency`` tasks, one session per order, request parsed each time."""
    database = Database(url)
    catalogue = default_catalogue()
    cipher = FieldCipher(OrdersSettings(master_key=DEVELOPMENT_MASTER_KEY).master_key_bytes)
    events = EventWriter(
        source="/orders",
        topic=f"{topic_prefix()}orders.events",
        personal_fields=catalogue.personal_field_names(),
    )
    raw = json.dumps(ORDER, ensure_ascii=False)

    async def one(index: int) -> None:
        buyer = buyers[index % len(buyers)]
        request = OrderCreate.model_validate_json(raw)
        async with database.session() as session:
            if kind == "service":
                await place_order(
                    session,
                    cipher=cipher,
                    events=events,
                    catalogue=catalogue,
                    buyer_id=buyer,
                    buyer_verified=False,
                    request=request,
                    fraud_thresholds=Thresholds(),
                )
            else:
                await plain_insert(session, buyer_id=buyer, request=request)

    async def worker(first: int, count: int) -> None:
        for index in range(first, count, concurrency):
            await one(index)

    # warm: the pool, and every buyer's data key made (a returning buyer's order)
    await asyncio.gather(*(worker(i, len(buyers)) for i in range(concurrency)))
    started = time.perf_counter()
    await asyncio.gather(*(worker(i, orders) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    await database.dispose()
    return orders / elapsed


_PREFIX: dict[str, str] = {}


def topic_prefix() -> str:
    """This run's Kafka topic prefix (the orders app's topics), deleted at the end."""
    return _PREFIX.setdefault("prefix", f"benchplace{uuid.uuid4().hex[:8]}.")


async def measure(
    *, connections: int, seconds: float, buyers: int, orders: int, concurrency: int
) -> Figures:
    kafka = LocalKafka()
    kafka.start()
    postgres = LocalPostgres()
    postgres.start()
    try:
        async with postgres.database() as service_url, postgres.database() as plain_url:
            urls = {"service": service_url, "plain": plain_url}
            for url in urls.values():
                await prepare(url)
            with tempfile.TemporaryDirectory(prefix="bench-placement-") as scratch:
                http = await asyncio.to_thread(
                    _run_http,
                    Path(scratch),
                    urls,
                    kafka.bootstrap_servers,
                    connections=connections,
                    seconds=seconds,
                    buyers=buyers,
                )
            placed = {kind: await count_orders(url) for kind, url in urls.items()}
            subjects = [new_subject() for _ in range(buyers)]
            function: dict[str, float] = {}
            for kind in ("service", "plain", "service", "plain"):
                rate = await function_rate(
                    urls[kind], kind, orders=orders, concurrency=concurrency, buyers=subjects
                )
                function[kind] = max(rate, function.get(kind, 0.0))
    finally:
        with contextlib.suppress(Exception):
            await delete_topics(kafka.bootstrap_servers, topic_prefix())
    return Figures(http, placed, function, connections, concurrency)


def rows(f: Figures) -> list[Row]:
    s1, s2 = f.http["service", 1], f.http["service", 2]
    p1, p2 = f.http["plain", 1], f.http["plain", 2]
    fs, fp = f.function["service"], f.function["plain"]
    errors = sum(r.errors for r in f.http.values())
    if not (f.placed["service"] and f.placed["plain"]):
        raise RuntimeError(f"no orders stored: {f.placed}")
    c = f.connections
    out = [
        Row("5", f"order placement, real orders service, POST /orders (token, validation, "
            f"AES-GCM per field, outbox; wrk -c{c}), 1 / 2 uvicorn workers",
            f"{s1.rps:,.0f} / {s2.rps:,.0f} orders/s",
            f"x{s2.rps / s1.rps:.2f} from 1 to 2 workers (2 cores: no further)"),
        Row("5", "plain insert of the same row, plain text, thin FastAPI endpoint, "
            "1 / 2 uvicorn workers", f"{p1.rps:,.0f} / {p2.rps:,.0f} orders/s",
            f"x{p2.rps / p1.rps:.2f} from 1 to 2 workers"),
        Row("5", "service / plain insert, 1 / 2 workers",
            f"{s1.rps / p1.rps:.2f} / {s2.rps / p2.rps:.2f}",
            f"p50 {s1.p50_ms:.0f} vs {p1.p50_ms:.0f} ms, p99 {s1.p99_ms:.0f} vs "
            f"{p1.p99_ms:.0f} ms (1 worker); {f.placed['service']:,} and "
            f"{f.placed['plain']:,} orders stored"),
        Row("5", f"in process, {f.concurrency} tasks: place_order() vs plain_insert()",
            f"{fs:,.0f} vs {fp:,.0f} orders/s", f"{fs / fp:.2f}"),
    ]  # fmt: skip
    if errors:
        out.append(Row("5", "wrk socket errors or non-2xx answers", f"{errors:,}", "", "0", False))
    return out


def run(
    connections: int = 32,
    seconds: float = 5.0,
    buyers: int = 200,
    orders: int = 2000,
    concurrency: int = 16,
) -> list[Row]:
    figures = asyncio.run(
        measure(
            connections=connections,
            seconds=seconds,
            buyers=buyers,
            orders=orders,
            concurrency=concurrency,
        )
    )
    return rows(figures)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.placement")
    commands = parser.add_subparsers(dest="command")
    server = commands.add_parser("serve", help="run one of the two apps (used by the benchmark)")
    server.add_argument("kind", choices=["service", "plain"])
    server.add_argument("--port", type=int, required=True)
    server.add_argument("--workers", type=int, default=1)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--buyers", type=int, default=200, help="distinct buyers in turn")
    parser.add_argument("--orders", type=int, default=2000, help="in process: orders per run")
    parser.add_argument("--concurrency", type=int, default=16, help="in process: tasks")
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.kind, args.port, args.workers)
        return
    for row in run(args.connections, args.seconds, args.buyers, args.orders, args.concurrency):
        print(" | ".join((row.section, row.what, row.figure, row.ratio)))


if __name__ == "__main__":
    main()
