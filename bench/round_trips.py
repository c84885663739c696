"""What one order placement, and one courier read, cost the orders process: statements,
round trips and CPU.

``python -m bench.round_trips`` places orders with :func:`place_order` in this process, one
after another, each in its own unit of work (``Database.session()``, as ``POST /orders``
runs it), for returning buyers (their data key made by an earlier order), on a fresh
SQLite file and on a fresh PostgreSQL database (``--backends``; ``TEST_POSTGRES_ADMIN_URL``
or ``--postgres-admin-url`` names the server). It prints, per placement:

- the statements sent, by their first word (``SELECT``, ``INSERT``, ``SAVEPOINT`` ...),
  counted by SQLAlchemy's ``before_cursor_execute`` hook (an ``executemany`` is one), and
  the transaction's ``BEGIN`` and ``COMMIT``: the round trips to the database;
- the process's CPU time (user + system, ``time.process_time``) per placement, which a
  shared machine changes least; wall time beside it, for what it is worth.

Then the same for a courier's read of an order assigned to it
(:func:`~services.orders.delivery.service.get_partner_order`, the privacy waybill, with its
processing record), as many reads as placements.

Half the placements carry an ``Idempotency-Key`` (a new one each), as retrying clients
send; each buyer sends their own phone (one phone on the orders of several accounts
makes the ``shared_phone`` fraud rule flag each of them on every order). No HTTP:
routing, token and body parsing are the same before and after a change to the service,
and ``bench.fullstack`` measures them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from sqlalchemy import event, select, update
from sqlmodel import col

from bench.placement import GOODS, ORDER
from kit.catalogue import default_catalogue
from kit.crypto import FieldCipher
from kit.db import Database
from kit.migrations import upgrade
from kit.outbox import EventWriter
from kit.settings import DEVELOPMENT_MASTER_KEY
from kit.testing import LocalPostgres, new_subject
from services.orders.config import Settings as OrdersSettings
from services.orders.delivery.service import Duty, get_partner_order
from services.orders.models import Goods, Order
from services.orders.orders.schemas import OrderCreate
from services.orders.orders.service import place_order
from services.orders.security.rules import Thresholds

BACKENDS: Final = ("SQLite", "PostgreSQL")
BUYERS: Final = 20
COURIER: Final = "ptn_bench_courier"
COURIER_ORDERS: Final = 16


@dataclass(frozen=True)
class Cost:
    backend: str
    what: str
    placements: int
    statements: Counter[str]  # by first word, over all placements
    cpu_s: float
    wall_s: float

    def per_placement(self) -> str:
        total = sum(self.statements.values())
        kinds = ", ".join(
            f"{word} {count / self.placements:.1f}" for word, count in self.statements.most_common()
        )
        return (
            f"{self.backend}, {self.what}: {total / self.placements:.1f} round trips each "
            f"({kinds}); {1000 * self.cpu_s / self.placements:.2f} CPU ms, "
            f"{1000 * self.wall_s / self.placements:.2f} wall ms each"
        )


def _count(database: Database, counts: Counter[str]) -> None:
    engine = database.engine.sync_engine
    sqlite = database.engine.dialect.name == "sqlite"

    @event.listens_for(engine, "before_cursor_execute")
    def _statement(*args: Any) -> None:
        statement: str = args[2]
        counts[statement.split(None, 1)[0].upper()] += 1

    @event.listens_for(engine, "begin")
    def _begin(_connection: Any) -> None:
        if not sqlite:  # SQLite's BEGIN IMMEDIATE is a statement of kit.db's own
            counts["BEGIN"] += 1

    @event.listens_for(engine, "commit")
    def _commit(_connection: Any) -> None:
        counts["COMMIT"] += 1

    @event.listens_for(engine, "rollback")
    def _rollback(_connection: Any) -> None:
        counts["ROLLBACK"] += 1


async def measure(backend: str, url: str, *, placements: int) -> list[Cost]:
    await upgrade("services.orders", url)
    database = Database(url)
    async with database.session() as session:
        session.add_all(
            Goods(id=id_, name=name, price=Decimal(price), currency="CNY", created_by="stf_bench")
            for id_, name, price in GOODS
        )
    catalogue = default_catalogue()
    cipher = FieldCipher(OrdersSettings(master_key=DEVELOPMENT_MASTER_KEY).master_key_bytes)
    events = EventWriter(
        source="/orders",
        topic="bench.orders.events",
        personal_fields=catalogue.personal_field_names(),
    )
    buyers = [new_subject() for _ in range(BUYERS)]
    bodies = [  # each buyer's own phone: one phone on many accounts is a fraud rule's case
        json.dumps(ORDER | {"consignee_phone": f"1381234{n:04d}"}, ensure_ascii=False)
        for n in range(BUYERS)
    ]

    async def place(index: int) -> None:
        request = OrderCreate.model_validate_json(bodies[index % BUYERS])
        async with database.session() as session:
            await place_order(
                session,
                cipher=cipher,
                events=events,
                catalogue=catalogue,
                buyer_id=buyers[index % BUYERS],
                buyer_verified=False,
                request=request,
                fraud_thresholds=Thresholds(),
                idempotency_key=f"bench-{index}" if index % 2 else None,
            )

    for index in range(len(buyers)):  # every buyer's key made; pool and caches warm
        await place(index)
    counts: Counter[str] = Counter()
    _count(database, counts)
    cpu, wall = time.process_time(), time.perf_counter()
    for index in range(len(buyers), len(buyers) + placements):
        await place(index)
    costs = [
        Cost(
            backend,
            "placement",
            placements,
            Counter(counts),
            time.process_time() - cpu,
            time.perf_counter() - wall,
        )
    ]

    # The courier's read of an order assigned to it (the privacy waybill).
    duty = Duty(partner_id=COURIER, role="logistics")
    async with database.session() as session:
        assigned = list(await session.scalars(select(col(Order.id)).limit(COURIER_ORDERS)))
        await session.execute(
            update(Order)
            .where(col(Order.id).in_(assigned))
            .values(status="assigned", logistics_partner_id=COURIER)
        )

    async def read(index: int) -> None:
        async with database.session() as session:
            await get_partner_order(
                session,
                cipher=cipher,
                events=events,
                catalogue=catalogue,
                duty=duty,
                order_id=assigned[index % len(assigned)],
            )

    for index in range(len(assigned)):
        await read(index)
    counts.clear()
    cpu, wall = time.process_time(), time.perf_counter()
    for index in range(placements):
        await read(index)
    costs.append(
        Cost(
            backend,
            "courier read",
            placements,
            Counter(counts),
            time.process_time() - cpu,
            time.perf_counter() - wall,
        )
    )
    await database.dispose()
    return costs


async def run(backends: Sequence[str], *, placements: int, admin_url: str) -> list[Cost]:
    costs: list[Cost] = []
    for backend in backends:
        if backend == "SQLite":
            with tempfile.TemporaryDirectory(prefix="bench-round-trips-") as scratch:
                url = f"sqlite+aiosqlite:///{Path(scratch) / 'orders.db'}"
                costs += await measure(backend, url, placements=placements)
        else:
            postgres = LocalPostgres(admin_url=admin_url)
            async with postgres.database() as url:
                costs += await measure(backend, url, placements=placements)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.round_trips")
    parser.add_argument("--placements", type=int, default=300)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument(
        "--postgres-admin-url",
        default=os.environ.get("TEST_POSTGRES_ADMIN_URL", ""),
        help="a running server's admin database (default: TEST_POSTGRES_ADMIN_URL)",
    )
    args = parser.parse_args()
    chosen = [b for b in BACKENDS if b.lower() in args.backends.lower().split(",")]
    if "PostgreSQL" in chosen and not args.postgres_admin_url:
        parser.error("PostgreSQL needs --postgres-admin-url or TEST_POSTGRES_ADMIN_URL")
    for cost in asyncio.run(
        run(chosen, placements=args.placements, admin_url=args.postgres_admin_url)
    ):
        print(cost.per_placement())


if __name__ == "__main__":
    main()
