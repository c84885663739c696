"""The ledger keeps up: the ``consent.ledger`` consumer's rate and how long a backlog lasts.

``python -m bench.ledger`` runs the ledger consumer (the kit's :class:`EventConsumer` with
the ledger's handlers, as ``services.consent.ledger.consumers`` builds it) against a fresh
consent database, on SQLite and on PostgreSQL, one event at a time (before) and in batches
(after). Once the consumer has joined its group and recorded a first event, a burst of
processing events (64 subjects, keyed by subject, 3 partitions, a unique topic prefix
deleted afterwards), serialised beforehand, is produced by another process as fast as a
raw producer can (this process's CPU is the consumer's alone). Reported: events/s from
the burst's first send to its last entry recorded, and the backlog's drain time, from the
last send to the last entry. Every subject's chain is verified at the end.

Under client load the events do not come in bursts but as a trickle, a few per fetch (one
processing or access event per request): the trickle rows (``--trickle RATE``, 100 events/s
by default, ``--trickle-s`` seconds) send at that steady rate and report the consumer's CPU
per event, the cost each request adds to the ledger's process.

Goals (issue 22, item 3): >= 5,000 events/s; the backlog gone within 2 s after a load run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from bench.report import Row
from kit.catalogue import default_catalogue
from kit.consumer import EventConsumer
from kit.db import Database
from kit.events import Event, new_event
from kit.kafka import TopicSpec, ensure_topics, new_producer
from kit.migrations import upgrade
from kit.testing import LocalKafka, LocalPostgres, delete_topics, eventually
from services.consent.ledger import service
from services.consent.ledger.consumers import BATCH_LINGER_S

SUBJECTS: Final = 64
EVENTS_PER_S_GOAL: Final = 5_000
DRAIN_GOAL_S: Final = 2.0


@dataclass(frozen=True)
class Drain:
    backend: str
    batched: bool
    events: int
    events_per_s: float
    drain_s: float
    #: this process's CPU (consumer and the burst's producer) per 1,000 events: what a
    #: busy machine changes least
    cpu_ms_per_1000: float = 0.0
    #: events/s the producer was held to (0: as fast as it can)
    rate: float = 0.0


def processing_event(index: int) -> Event:
    subject = f"acc_bench{index % SUBJECTS:04d}"
    return new_event(
        source="/orders",
        type="com.signature.orders.personal_data.read.v1",
        subject=subject,
        purpose="order.fulfilment",
        data={"actor": subject, "resource": "orders.order", "action": "read"},
        categories=["user.contact.phone_number", "user.contact.address"],
    )


def ledger_consumer(
    name: str, topic: str, database: Database, bootstrap: str, *, batched: bool
) -> EventConsumer:
    catalogue = default_catalogue()

    async def handle(session: AsyncSession, event: Event) -> None:
        await service.record_event(session, event, catalogue=catalogue)

    async def handle_batch(session: AsyncSession, events: Sequence[Event]) -> None:
        await service.record_events(session, events, catalogue=catalogue)

    return EventConsumer(
        name=name,
        topics=[topic],
        database=database,
        bootstrap_servers=bootstrap,
        handler=handle,
        batch_handler=handle_batch if batched else None,
        batch_linger_s=BATCH_LINGER_S if batched else 0.0,
    )


async def drain(
    backend: str, url: str, bootstrap: str, *, batched: bool, events: int, rate: float = 0.0
) -> Drain:
    await upgrade("services.consent", url)
    database = Database(url)
    prefix = f"benchledger{uuid.uuid4().hex[:8]}."
    topic = prefix + "orders.events"
    await ensure_topics(bootstrap, [TopicSpec(topic, partitions=3)])
    consumer = ledger_consumer(
        prefix + "consent.ledger", topic, database, bootstrap, batched=batched
    )
    producer = new_producer(bootstrap, client_id=prefix + "bench")
    await producer.start()
    consumer.start()
    burst: asyncio.subprocess.Process | None = None
    try:
        first = processing_event(SUBJECTS)  # a first event: the consumer has joined its group
        await producer.send_and_wait(topic, first.to_json_bytes(), key=first.subject.encode())

        async def joined() -> bool:
            return consumer.handled >= 1

        await eventually(joined, timeout_s=60, what="the ledger consumer to join")
        # The burst comes from another process, as it does from the other services: this
        # process's CPU is the consumer's alone (the producer was half of it).
        burst = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.ledger", "--produce-to", topic,
            "--bootstrap", bootstrap, "--events", str(events), "--rate", str(rate),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert burst.stdin is not None and burst.stdout is not None
        if (await burst.stdout.readline()).strip() != b"ready":
            raise RuntimeError("the burst's producer did not start")
        cpu_started = time.process_time()
        burst.stdin.write(b"go\n")
        await burst.stdin.drain()

        async def all_recorded() -> bool:
            return consumer.handled >= events + 1

        await eventually(all_recorded, timeout_s=300, what="the ledger to record the burst")
        done, cpu_done = time.time(), time.process_time()
        started, produced = map(float, (await burst.stdout.readline()).split())
        await burst.wait()
    finally:
        if burst is not None and burst.returncode is None:
            burst.kill()
            await burst.wait()
        await consumer.stop()
        await producer.stop()
        with contextlib.suppress(Exception):
            await delete_topics(bootstrap, prefix)
    async with database.session(reads_only=True) as session:
        for index in range(SUBJECTS):
            assert (await service.verify_chain(session, f"acc_bench{index:04d}")).valid
    await database.dispose()
    return Drain(
        backend,
        batched,
        events,
        events / (done - started),
        done - produced,
        (cpu_done - cpu_started) * 1e6 / events,
        rate,
    )


async def produce_burst(bootstrap: str, topic: str, events: int, rate: float = 0.0) -> None:
    """The burst, from its own process: the records are made first (serialising events is
    the producing services' work), then, on ``go`` from standard input, sent as fast as a
    raw producer can, or ``rate`` a second; prints the wall-clock times of the first send
    and the last acknowledgement."""
    records = [
        (event.subject.encode(), event.to_json_bytes())
        for event in (processing_event(index) for index in range(events))
    ]
    producer = new_producer(bootstrap, client_id=topic + ".burst")
    await producer.start()
    try:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        started = time.time()
        sent = []
        for index, (key, value) in enumerate(records):
            if rate:  # the send due at index / rate seconds after the first
                await asyncio.sleep(max(0.0, started + index / rate - time.time()))
            sent.append(await producer.send(topic, value, key=key))
        await asyncio.gather(*sent)
        print(started, time.time(), flush=True)
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def sqlite_url() -> AsyncIterator[str]:
    with tempfile.TemporaryDirectory() as directory:
        yield f"sqlite+aiosqlite:///{directory}/consent.db"


async def measure(
    bootstrap: str,
    postgres: LocalPostgres,
    events: int,
    before: int,
    *,
    trickle: float = 0.0,
    trickle_s: float = 0.0,
) -> list[Drain]:
    runs = [(False, before, 0.0), (True, events, 0.0)]
    if trickle and trickle_s:
        runs.append((True, round(trickle * trickle_s), trickle))
    results: list[Drain] = []
    for backend in ("SQLite", "PostgreSQL"):
        for batched, count, rate in runs:
            if not count:
                continue
            urls = sqlite_url() if backend == "SQLite" else postgres.database()
            async with urls as url:
                results.append(
                    await drain(backend, url, bootstrap, batched=batched, events=count, rate=rate)
                )
    return results


def rows(results: list[Drain]) -> list[Row]:
    out: list[Row] = []
    for backend in ("SQLite", "PostgreSQL"):
        mine = [r for r in results if r.backend == backend]
        one = next((r for r in mine if not r.batched), None)
        batch = next((r for r in mine if r.batched and not r.rate), None)
        if one is not None and batch is not None:
            out.append(
                Row(
                    "8",
                    f"ledger consumer, {backend}: events/s one by one ({one.events:,}) / in "
                    f"batches ({batch.events:,}), {SUBJECTS} subjects",
                    f"{one.events_per_s:,.0f} / {batch.events_per_s:,.0f}",
                    f"x{batch.events_per_s / one.events_per_s:.1f}; process CPU "
                    f"{one.cpu_ms_per_1000:,.0f} / {batch.cpu_ms_per_1000:,.0f} ms per 1,000 "
                    "events",
                    f">= {EVENTS_PER_S_GOAL:,} events/s",
                    batch.events_per_s >= EVENTS_PER_S_GOAL,
                )
            )
            out.append(
                Row(
                    "8",
                    f"ledger backlog after a burst, {backend}: drained in (one by one / in "
                    "batches)",
                    f"{one.drain_s:.1f} s / {batch.drain_s:.1f} s",
                    "",
                    f"<= {DRAIN_GOAL_S:.0f} s",
                    batch.drain_s <= DRAIN_GOAL_S,
                )
            )
        for trickle in (r for r in mine if r.rate):
            out.append(
                Row(
                    "8",
                    f"ledger consumer, {backend}: a trickle of {trickle.rate:,.0f} events/s "
                    f"({trickle.events:,}), the consumer's CPU per event",
                    f"{trickle.cpu_ms_per_1000 / 1000:.3f} ms",
                    f"last entry {trickle.drain_s:.2f} s after the last send",
                    "",
                    None,
                )
            )
    return out


def run(
    *,
    bootstrap: str = "",
    postgres_admin_url: str = "",
    events: int = 10_000,
    before: int = 2_000,
    trickle: float = 100.0,
    trickle_s: float = 10.0,
) -> list[Row]:
    if not bootstrap:
        kafka = LocalKafka()
        kafka.start()
        bootstrap = kafka.bootstrap_servers
    postgres = LocalPostgres(admin_url=postgres_admin_url)
    if not postgres_admin_url:
        postgres.start()
    return rows(
        asyncio.run(
            measure(bootstrap, postgres, events, before, trickle=trickle, trickle_s=trickle_s)
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger")
    parser.add_argument("--bootstrap", default="", help="a running broker (default: make kafka's)")
    parser.add_argument(
        "--postgres-admin-url", default="", help="a running server (default: make postgres's)"
    )
    parser.add_argument("--events", type=int, default=10_000, help="the burst, in batches")
    parser.add_argument("--before", type=int, default=2_000, help="the burst, one by one")
    parser.add_argument(
        "--trickle", type=float, default=100.0, help="events/s of the trickle rows (0: none)"
    )
    parser.add_argument("--trickle-s", type=float, default=10.0, help="the trickle's seconds")
    parser.add_argument("--produce-to", default="", help=argparse.SUPPRESS)  # the burst's process
    parser.add_argument("--rate", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.produce_to:
        asyncio.run(produce_burst(args.bootstrap, args.produce_to, args.events, args.rate))
        return
    for row in run(
        bootstrap=args.bootstrap,
        postgres_admin_url=args.postgres_admin_url,
        events=args.events,
        before=args.before,
        trickle=args.trickle,
        trickle_s=args.trickle_s,
    ):
        print(" | ".join((row.section, row.what, row.figure, row.ratio, row.goal)))


if __name__ == "__main__":
    main()
