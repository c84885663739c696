"""Scale shape: how three jobs that walk a whole data set grow with it.

``python -m bench.scale`` measures, one after the other:

1. consent state bootstrap, as the gateway starts: a compacted ``consent.state`` topic
   (3 partitions, behind a unique prefix, deleted afterwards) holds one state record per
   subject, produced by a raw aiokafka producer (the relay's settings: idempotent,
   acks=all) in the consent service's format (a ``com.signature.consent.state.v1``
   CloudEvent keyed by subject, 3 consents and the policy agreed, the relay's headers);
   then a :class:`~kit.consent_state.ConsentStateView` reads it from the start, timed from
   ``start()`` to ``ready``. 10k and 100k subjects, then 1M when 100k's produce +
   bootstrap times ten stays within ``--max-seconds`` (60 s), else 300k (the row says
   which);
2. the ledger query behind ``GET /ledger/me``
   (:func:`services.consent.ledger.service.list_own_entries`, 50 a page) for a user with
   1k and one with 10k entries (a valid hash chain; 10k entries of other users beside
   them), first page and last page, median of 5;
3. the retention sweep (:func:`services.orders.retention.service.run_sweep`, batches of
   200) over 10k and 100k orders inserted in bulk, completed 11 years ago (every field's
   period over: each order loses its fields and is anonymised), each with its ``placed``
   and ``completed`` status rows, 5 orders per buyer, 1 in 10 with an invoice. The 10k
   sweep runs to the end; the 100k one stops between batches after ``--sweep-budget``
   seconds (45; 0: to the end) and its total is projected at the rate it reached (it
   handles ~200 orders/s here, so the whole 100k takes ~8-9 minutes, more than a
   ``make bench`` part may). The SQL statements it sends are counted.

Growth is the time at one size over the time at the size ten times smaller.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import event, insert

from bench.report import Row
from kit.catalogue import default_catalogue
from kit.consent_state import (
    CONSENT_STATE_EVENT,
    ConsentEntry,
    ConsentStateView,
    SubjectConsent,
    consentable_purposes,
)
from kit.db import Database
from kit.events import kafka_record, new_event
from kit.kafka import TopicSpec, ensure_topics, new_producer
from kit.migrations import upgrade
from kit.models import utcnow
from kit.outbox import EventWriter
from kit.testing import LocalKafka, LocalPostgres, delete_topics
from services.consent.ledger.models import LedgerActor, LedgerEntry
from services.consent.ledger.service import (
    GENESIS_HASH,
    entry_hash,
    list_own_entries,
    verify_chain,
)
from services.orders.models import Order, OrderStatusChange
from services.orders.retention.service import run_sweep

PAGE: Final = 50
SUBJECT_PLACEHOLDER: Final = "acc_SUBJECTPLACEHOLDER"
ID_PLACEHOLDER: Final = "00000000-0000-4000-8000-000000000000"


def subject_of(index: int) -> str:
    return f"acc_s{index:07d}"


async def timed(job: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await job()
    return time.perf_counter() - started


def _growth(small: float, large: float, factor: int = 10) -> str:
    return f"x{large / small:.1f} per {factor}x" if small > 0 else ""


# --------------------------------------------------------------------------- consent


def state_template() -> bytes:
    """One subject's state event as the consent service publishes it, with placeholders
    for the subject and the event id."""
    consentable = consentable_purposes(default_catalogue())
    changed = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
    state = SubjectConsent(
        subject=SUBJECT_PLACEHOLDER,
        consentable=consentable,
        version=3,
        entries={
            "location": ConsentEntry(granted=True, changed_at=changed),
            "marketing.price_drop": ConsentEntry(granted=False, changed_at=changed),
            "cross_border.transfer:ptn_OverseasRecipient": ConsentEntry(
                granted=True, changed_at=changed
            ),
        },
        policy_version_agreed="2.1",
        policy_sequence_agreed=4,
    )
    event = new_event(
        source="/consent",
        type=CONSENT_STATE_EVENT,
        subject=SUBJECT_PLACEHOLDER,
        purpose="account",
        data=state.to_data(),
        event_id=ID_PLACEHOLDER,
    )
    return event.to_json_bytes()


async def produce_states(bootstrap: str, topic: str, subjects: int) -> float:
    """Seconds to publish one state record for each of ``subjects`` subjects."""
    template = state_template()
    head, _, tail = template.partition(ID_PLACEHOLDER.encode())
    producer = new_producer(bootstrap, client_id="bench-scale")
    await producer.start()
    try:
        started = time.perf_counter()
        chunk = 20_000
        for first in range(0, subjects, chunk):
            futures = []
            for index in range(first, min(first + chunk, subjects)):
                subject = subject_of(index)
                record = kafka_record(
                    subject,
                    (head + str(uuid.uuid4()).encode() + tail).replace(
                        SUBJECT_PLACEHOLDER.encode(), subject.encode()
                    ),
                )
                futures.append(
                    await producer.send(
                        topic, value=record.value, key=record.key, headers=record.headers
                    )
                )
            await asyncio.gather(*futures)
        return time.perf_counter() - started
    finally:
        await producer.stop()


async def bootstrap_view(bootstrap: str, topic: str, subjects: int) -> float:
    """Seconds from a new view's ``start()`` to ``ready``, over the whole topic."""
    view = ConsentStateView(bootstrap_servers=bootstrap, topic=topic)
    started = time.perf_counter()
    view.start()
    try:
        if not await view.wait_ready(600):
            raise RuntimeError(f"the consent view never caught up: {view.last_error}")
        elapsed = time.perf_counter() - started
        if len(view) != subjects or view.skipped:
            raise RuntimeError(f"the view holds {len(view)} of {subjects} ({view.skipped} skipped)")
        assert view.state_of(subject_of(subjects - 1)).granted("location")
        return elapsed
    finally:
        await view.stop()


@dataclass(frozen=True)
class Bootstrap:
    subjects: int
    produce_s: float
    bootstrap_s: float


async def consent_bootstrap(
    bootstrap: str, prefix: str, sizes: list[int], *, largest: int, fallback: int, max_s: float
) -> tuple[list[Bootstrap], str]:
    """Bootstrap at each of ``sizes``, then at ``largest`` if the last size's produce +
    bootstrap times the ratio stays within ``max_s``, else at ``fallback``."""
    results: list[Bootstrap] = []

    async def one(subjects: int) -> None:
        topic = f"{prefix}{subjects}.consent.state"
        await ensure_topics(bootstrap, [TopicSpec(topic, partitions=3, compacted=True)])
        produced = await produce_states(bootstrap, topic, subjects)
        results.append(
            Bootstrap(subjects, produced, await bootstrap_view(bootstrap, topic, subjects))
        )
        await delete_topics(bootstrap, topic)
        print(f"  consent bootstrap, {subjects:,} subjects: produce {produced:.1f} s, "
              f"bootstrap {results[-1].bootstrap_s:.1f} s", flush=True)  # fmt: skip

    for subjects in sizes:
        await one(subjects)
    last = results[-1]
    estimate = (last.produce_s + last.bootstrap_s) * largest / last.subjects
    if estimate <= max_s:
        await one(largest)
        return results, ""
    await one(fallback)
    return results, (
        f"{largest:,} not run: {last.subjects:,} took {last.produce_s + last.bootstrap_s:.1f} s "
        f"to produce + bootstrap, so ~{estimate:.0f} s > {max_s:.0f} s expected"
    )


# --------------------------------------------------------------------------- ledger


def ledger_rows(subject: str, count: int, start: datetime) -> list[dict[str, Any]]:
    """``count`` entries of ``subject``'s chain, as the ledger records them, oldest first."""
    kinds = (
        ("orders", subject, None, "write", "orders.order", "order.fulfilment"),
        ("orders", "ptn_BenchLogisticsPartner", None, "read", "orders.order",
         "logistics.delivery"),
        ("gateway", "stf_bench", "customer_service", "read", "orders.order",
         "customer_service"),
        ("identity", "identity", None, "read", "identity.account", "account"),
    )  # fmt: skip
    rows: list[dict[str, Any]] = []
    prev = GENESIS_HASH
    for seq in range(1, count + 1):
        service, actor, role, action, resource, purpose = kinds[seq % len(kinds)]
        at = start + timedelta(minutes=seq)
        entry = LedgerEntry(
            event_id=str(uuid.uuid4()),
            subject=subject,
            seq=seq,
            occurred_at=at,
            recorded_at=at + timedelta(milliseconds=40),
            event_type=f"com.signature.{service}.personal_data.{action}.v1",
            service=service,
            actor=actor,
            actor_role=role,
            action=action,
            resource=resource,
            purpose=purpose,
            legal_basis="contract / policy agreement",
            categories=["user.contact.address", "user.contact.phone_number", "user.name"],
            prev_hash=prev,
            entry_hash="",
        )
        entry.entry_hash = prev = entry_hash(prev, entry)
        row = entry.model_dump()
        row.pop("id", None)
        rows.append(row)
    return rows


@dataclass(frozen=True)
class LedgerTimes:
    entries: int
    first_page_s: float
    last_page_s: float
    chain_s: float


async def ledger_query(url: str, sizes: list[int], others: int, repeats: int) -> list[LedgerTimes]:
    await upgrade("services.consent", url)
    database = Database(url)
    catalogue = default_catalogue()
    start = utcnow() - timedelta(days=400)
    try:
        async with database.session() as session:
            session.add(LedgerActor(actor="ptn_BenchLogisticsPartner", kind="partner",
                                    name="Bench Express", partner_kind="logistics"))  # fmt: skip
            table = LedgerEntry.__table__  # type: ignore[attr-defined]
            for index in range(others // 100):
                await session.execute(
                    insert(table), ledger_rows(f"acc_other{index:05d}", 100, start)
                )
            for size in sizes:
                rows = ledger_rows(f"acc_ledger{size}", size, start)
                for first in range(0, size, 5000):
                    await session.execute(insert(table), rows[first : first + 5000])
        async with database.engine.connect() as connection:
            await connection.exec_driver_sql("ANALYZE")
        results: list[LedgerTimes] = []
        for size in sizes:
            subject = f"acc_ledger{size}"
            times: dict[str, list[float]] = {"first": [], "last": [], "chain": []}
            for _ in range(repeats):
                for name, offset in (("first", 0), ("last", size - PAGE)):
                    async with database.session() as session:
                        started = time.perf_counter()
                        page = await list_own_entries(
                            session, catalogue=catalogue, subject=subject, limit=PAGE, offset=offset
                        )
                        times[name].append(time.perf_counter() - started)
                    assert page.chain_valid and page.total == size and len(page.entries) == PAGE
                async with database.session() as session:
                    started = time.perf_counter()
                    check = await verify_chain(session, subject)
                    times["chain"].append(time.perf_counter() - started)
                    assert check.valid
            median = {name: statistics.median(values) for name, values in times.items()}
            results.append(LedgerTimes(size, median["first"], median["last"], median["chain"]))
            print(f"  ledger, {size:,} entries: first page {median['first'] * 1e3:.0f} ms, last "
                  f"{median['last'] * 1e3:.0f} ms, chain alone {median['chain'] * 1e3:.0f} ms",
                  flush=True)  # fmt: skip
        return results
    finally:
        await database.dispose()


# --------------------------------------------------------------------------- retention

TOKEN: Final = "v1:" + "A" * 60  # the length of a short field's ciphertext token


def order_rows(
    count: int, completed: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``count`` completed orders and their ``placed`` and ``completed`` status rows."""
    orders: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    for index in range(count):
        order_id, buyer = f"ord_bench{index:08d}", f"acc_buyer{index // 5:07d}"
        done = completed - timedelta(minutes=index)
        placed = done - timedelta(days=5)
        invoice = index % 10 == 0
        orders.append(
            {
                "id": order_id,
                "buyer_id": buyer,
                "status": "completed",
                "currency": "CNY",
                "subtotal": Decimal("132.30"),
                "discounts": [],
                "discount_total": Decimal("0.00"),
                "amount_payable": Decimal("132.30"),
                "cross_border": False,
                "special_category": False,
                "invoice_requested": invoice,
                "delivery_window": None,
                "consignee_name_encrypted": TOKEN,
                "consignee_phone_encrypted": TOKEN,
                "address_region_encrypted": TOKEN + "A" * 60,
                "address_detail_encrypted": TOKEN + "A" * 40,
                "postal_code_encrypted": TOKEN,
                "extra_phones_encrypted": TOKEN,
                "invoice_title_encrypted": TOKEN if invoice else None,
                "invoice_tax_id_encrypted": TOKEN if invoice else None,
                "invoice_email_encrypted": TOKEN if invoice else None,
                "customs_name_encrypted": None,
                "customs_id_number_encrypted": None,
                "remarks_encrypted": None,
                "created_at": placed,
                "completed_at": done,
            }
        )
        history += [
            {"order_id": order_id, "status": "placed", "actor": buyer, "at": placed},
            {"order_id": order_id, "status": "completed", "actor": "orders.delivery", "at": done},
        ]
    return orders, history


@dataclass(frozen=True)
class Sweep:
    orders: int  # in the table
    swept: int  # handled before the time budget ran out (all: ``orders``)
    seconds: float
    statements: int  # SQL statements the sweep sent

    @property
    def rate(self) -> float:
        return self.swept / self.seconds

    @property
    def total_s(self) -> float:
        """The time for every order: measured, or projected at this rate."""
        return self.orders / self.rate


async def retention_sweep(postgres: LocalPostgres, size: int, budget_s: float | None) -> Sweep:
    """:func:`run_sweep` over ``size`` completed orders; stopped between batches once
    ``budget_s`` passed (None: to the end)."""
    async with postgres.database() as url:
        await upgrade("services.orders", url)
        database = Database(url)
        try:
            now = utcnow()
            orders, history = order_rows(size, now.replace(year=now.year - 11))
            async with database.session() as session:
                for first in range(0, size, 5000):
                    await session.execute(
                        insert(Order.__table__),  # type: ignore[attr-defined]
                        orders[first : first + 5000],
                    )
                for first in range(0, len(history), 10_000):
                    await session.execute(
                        insert(OrderStatusChange.__table__),  # type: ignore[attr-defined]
                        history[first : first + 10_000],
                    )
            async with database.engine.connect() as connection:
                await connection.exec_driver_sql("ANALYZE")
            catalogue = default_catalogue()
            events = EventWriter(
                source="/orders",
                topic="orders.events",
                personal_fields=catalogue.personal_field_names(),
            )
            statements = [0]

            def count(*_: Any) -> None:
                statements[0] += 1

            event.listen(database.engine.sync_engine, "before_cursor_execute", count)
            started = time.perf_counter()
            deadline = started + budget_s if budget_s is not None else float("inf")
            report = await run_sweep(
                database,
                events=events,
                catalogue=catalogue,
                now=now,
                keep_going=lambda: time.perf_counter() < deadline,
            )
            elapsed = time.perf_counter() - started
            if budget_s is None and report.orders_anonymised != size:
                raise RuntimeError(f"the sweep anonymised {report.orders_anonymised} of {size}")
            if report.orders_anonymised != report.orders_examined:
                raise RuntimeError("the sweep left orders it examined not anonymised")
            sweep = Sweep(size, report.orders_anonymised, elapsed, statements[0])
            print(f"  retention sweep, {size:,} orders: {sweep.swept:,} in {elapsed:.1f} s "
                  f"({sweep.rate:,.0f}/s, {sweep.statements / sweep.swept:.1f} statements "
                  "an order)", flush=True)  # fmt: skip
            return sweep
        finally:
            await database.dispose()


# --------------------------------------------------------------------------- the rows


@dataclass(frozen=True)
class Figures:
    bootstraps: list[Bootstrap]
    skipped: str
    ledger: list[LedgerTimes]
    sweeps: list[Sweep]


@dataclass(frozen=True)
class Plan:
    """What to measure (``parts``) and how far."""

    parts: frozenset[str] = frozenset({"consent", "ledger", "retention"})
    subjects: tuple[int, ...] = (10_000, 100_000)
    largest: int = 1_000_000
    fallback: int = 300_000
    max_s: float = 60.0
    entries: tuple[int, ...] = (1_000, 10_000)
    orders: tuple[int, ...] = (10_000, 100_000)
    sweep_budget_s: float | None = 45.0  # the largest sweep only; None: to the end


async def measure(plan: Plan) -> Figures:
    kafka = LocalKafka()
    kafka.start()
    postgres = LocalPostgres()
    postgres.start()
    bootstraps: list[Bootstrap] = []
    skipped = ""
    if "consent" in plan.parts:
        prefix = f"benchscale{uuid.uuid4().hex[:8]}."
        try:
            bootstraps, skipped = await consent_bootstrap(
                kafka.bootstrap_servers,
                prefix,
                list(plan.subjects),
                largest=plan.largest,
                fallback=plan.fallback,
                max_s=plan.max_s,
            )
        finally:
            with contextlib.suppress(Exception):
                await delete_topics(kafka.bootstrap_servers, prefix)
    ledger: list[LedgerTimes] = []
    if "ledger" in plan.parts:
        async with postgres.database() as url:
            ledger = await ledger_query(url, list(plan.entries), others=10_000, repeats=5)
    sweeps: list[Sweep] = []
    if "retention" in plan.parts:
        for size in plan.orders:
            budget = plan.sweep_budget_s if size == plan.orders[-1] else None
            sweeps.append(await retention_sweep(postgres, size, budget))
    return Figures(bootstraps, skipped, ledger, sweeps)


def _count(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else f"{n // 1000}k"


def _consent_rows(f: Figures) -> list[Row]:
    b = f.bootstraps
    sizes = "/".join(_count(x.subjects) for x in b)
    growth = ", ".join(
        f"x{later.bootstrap_s / earlier.bootstrap_s:.1f} for {later.subjects / earlier.subjects:g}x"
        for earlier, later in itertools.pairwise(b)
    )
    return [
        Row("6", f"consent state bootstrap (ConsentStateView, offset 0 to ready), {sizes} "
            "subjects, 3 partitions" + (f"; {f.skipped}" if f.skipped else ""),
            " / ".join(f"{x.bootstrap_s:.1f}" for x in b) + " s",
            f"{growth}; {b[-1].subjects / b[-1].bootstrap_s:,.0f} subjects/s"),
        Row("6", f"producing those state records (raw aiokafka, acks=all), {sizes}",
            " / ".join(f"{x.produce_s:.1f}" for x in b) + " s",
            f"{b[-1].subjects / b[-1].produce_s:,.0f} records/s"),
    ]  # fmt: skip


def _ledger_rows(f: Figures) -> list[Row]:
    small, large = f.ledger[0], f.ledger[-1]
    factor = large.entries // small.entries
    return [
        Row("6", f"ledger query (GET /ledger/me's list_own_entries, {PAGE} a page), "
            f"{_count(small.entries)} / {_count(large.entries)} entries: first page; last page",
            f"{small.first_page_s * 1e3:.0f} / {large.first_page_s * 1e3:.0f} ms; "
            f"{small.last_page_s * 1e3:.0f} / {large.last_page_s * 1e3:.0f} ms",
            _growth(small.first_page_s, large.first_page_s, factor)),
        Row("6", "the whole hash-chain walk (verify_chain, for audits; a page checks only "
            "its own entries and links since this bench found the walk on every page)",
            f"{small.chain_s * 1e3:.0f} / {large.chain_s * 1e3:.0f} ms",
            f"{large.chain_s / large.first_page_s:.0f}x the first page at "
            f"{_count(large.entries)}"),
    ]  # fmt: skip


def _retention_rows(f: Figures) -> list[Row]:
    small, large = f.sweeps[0], f.sweeps[-1]
    full = large.swept == large.orders
    figure = f"{small.seconds:.1f} / {large.total_s:.0f} s" + ("" if full else " projected")
    how = (
        ""
        if full
        else f"; the {_count(large.orders)} sweep stopped after {large.seconds:.0f} s "
        f"({large.swept:,} orders at {large.rate:,.0f}/s), its total projected at that rate"
    )
    return [
        Row("6", f"retention sweep (run_sweep, batches of 200), {_count(small.orders)} / "
            f"{_count(large.orders)} orders completed 11 years ago: every field removed, every "
            f"order anonymised{how}", figure,
            f"{_growth(small.seconds, large.total_s, large.orders // small.orders)}; "
            f"{large.rate:,.0f} orders/s, {large.statements / large.swept:.1f} SQL statements "
            "an order"),
    ]  # fmt: skip


def rows(f: Figures) -> list[Row]:
    out: list[Row] = []
    if f.bootstraps:
        out += _consent_rows(f)
    if f.ledger:
        out += _ledger_rows(f)
    if f.sweeps:
        out += _retention_rows(f)
    return out


def run(plan: Plan | None = None) -> list[Row]:
    return rows(asyncio.run(measure(plan or Plan())))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale")
    parser.add_argument(
        "--parts", default="consent,ledger,retention", help="comma-separated, default all"
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=60.0,
        help="consent: the largest size runs only if expected to take at most this",
    )
    parser.add_argument("--largest", type=int, default=1_000_000)
    parser.add_argument("--fallback", type=int, default=300_000)
    parser.add_argument(
        "--sweep-budget",
        type=float,
        default=45.0,
        help="retention: seconds the largest sweep runs before it is projected (0: to the end)",
    )
    args = parser.parse_args()
    plan = Plan(
        parts=frozenset(part.strip() for part in args.parts.split(",")),
        largest=args.largest,
        fallback=args.fallback,
        max_s=args.max_seconds,
        sweep_budget_s=args.sweep_budget or None,
    )
    for row in run(plan):
        print(" | ".join((row.section, row.what, row.figure, row.ratio)))


if __name__ == "__main__":
    main()
