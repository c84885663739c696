"""The consent view at scale (issue 15 item 6): a restart resumes from its SQLite store.

``python -m bench.consent_store [--subjects N]`` (``make bench`` runs it with
``BENCH_CONSENT_SUBJECTS``, 100k by default; 1M and 10M by that variable):

1. a compacted ``consent.state`` topic (3 partitions, behind a unique prefix, deleted
   afterwards) gets one state record per subject, as :mod:`bench.scale` publishes them
   (the consent service's format, 3 consents and the policy agreed);
2. a first process (``--child``) builds its store: a
   :class:`~kit.consent_state.ConsentStateView` with a store directory reads the topic from
   the beginning to ``ready``, then stops (the store's file stays);
3. while no view runs, 1,000 subjects change, the first of them withdrawing its location
   consent;
4. a second process starts the view again on the same directory: time from ``start()`` to
   ``ready`` (it resumes from the stored offsets and reads the 1,000 records), its resident
   memory (the whole process: Python, aiokafka and the kit imported, and the view), and the
   latency of the gateway's consent check (``gateway.consent_view.consent_check``: view
   ready, the subject's state read and parsed, one purpose answered) over 100k random
   subjects, one in ten unknown. It checks the withdrawal was seen.

Each process is its own Python, so memory and start-up are those of a fresh process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bench.report import Row
from bench.scale import produce_states, subject_of
from gateway.consent_view import consent_check
from kit.catalogue import default_catalogue
from kit.consent_state import (
    CONSENT_STATE_EVENT,
    ConsentEntry,
    ConsentStateView,
    SubjectConsent,
    consentable_purposes,
)
from kit.consent_store import ConsentStore
from kit.events import kafka_record, new_event
from kit.kafka import TopicSpec, ensure_topics, new_producer
from kit.models import utcnow
from kit.testing import LocalKafka, delete_topics

DEFAULT_SUBJECTS: Final = 100_000
CHANGED: Final = 1_000
LOOKUPS: Final = 100_000
VIEW_NAME: Final = "bench-consent-state-view"
# Issue 15's goals at 10M subjects.
GOAL_READY_S: Final = 5.0
GOAL_P99_US: Final = 50.0
GOAL_RSS_MIB: Final = 200.0


def _memory() -> dict[str, float]:
    """This process's resident memory now and at its peak, MiB."""
    figures: dict[str, float] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            figures[name] = int(value.split()[0]) / 1024
    return figures


# --------------------------------------------------------------------------- the child


async def child(
    bootstrap: str, topic: str, store: Path, withdrawn: str, *, lookups: int, population: int
) -> None:
    before = _memory()["VmRSS"]
    view = ConsentStateView(
        bootstrap_servers=bootstrap, topic=topic, name=VIEW_NAME, store_dir=store
    )
    started = time.perf_counter()
    view.start()
    try:
        if not await view.wait_ready(3600):
            raise RuntimeError(f"the consent view never caught up: {view.last_error}")
        ready_s = time.perf_counter() - started
        ready_memory = _memory()
        check = consent_check(view)
        subjects = population or int(sum(view.resumed_from.values()) or view.records_read)
        rng = random.Random(15)
        asked = [
            subject_of(rng.randrange(subjects)) if rng.random() < 0.9 else f"acc_u{i:07d}"
            for i in range(lookups)
        ]
        times: list[int] = []
        clock = time.perf_counter_ns
        for subject in asked:
            began = clock()
            check(subject, "location")
            times.append(clock() - began)
        times.sort()
        result = {
            "ready_s": ready_s,
            "records_read": view.records_read,
            "resumed": bool(view.resumed_from),
            "rebuilds": view.rebuilds,
            "withdrawal_seen": not check(withdrawn, "location"),
            "rss_before_mib": before,
            "rss_ready_mib": ready_memory["VmRSS"],
            "rss_after_lookups_mib": _memory()["VmRSS"],
            "rss_peak_mib": _memory()["VmHWM"],
            "p50_us": times[len(times) // 2] / 1000,
            "p99_us": times[int(len(times) * 0.99)] / 1000,
            "store_mib": (view.store_path.stat().st_size / 2**20) if view.store_path else 0,
        }
    finally:
        await view.stop()
    print(json.dumps(result), flush=True)


# --------------------------------------------------------------------------- the parent


async def publish_changes(bootstrap: str, topic: str, count: int) -> str:
    """``count`` subjects' new states (version 4); the first withdraws location."""
    consentable = consentable_purposes(default_catalogue())
    changed = utcnow()
    producer = new_producer(bootstrap, client_id="bench-consent-store")
    await producer.start()
    try:
        for index in range(count):
            subject = subject_of(index)
            state = SubjectConsent(
                subject=subject,
                consentable=consentable,
                version=4,
                entries={"location": ConsentEntry(granted=index != 0, changed_at=changed)},
                policy_version_agreed="2.1",
                policy_sequence_agreed=4,
            )
            event = new_event(
                source="/consent",
                type=CONSENT_STATE_EVENT,
                subject=subject,
                purpose="account",
                data=state.to_data(),
            )
            record = kafka_record(subject, event.to_json_bytes())
            await producer.send(topic, value=record.value, key=record.key, headers=record.headers)
        await producer.flush()
    finally:
        await producer.stop()
    return subject_of(0)


def run_child(
    bootstrap: str, topic: str, store: Path, withdrawn: str, *, lookups: int, population: int = 0
) -> Any:
    args = [sys.executable, "-m", "bench.consent_store", "--child", "--bootstrap", bootstrap]
    args += ["--topic", topic, "--store", str(store), "--withdrawn", withdrawn]
    args += ["--lookups", str(lookups), "--population", str(population)]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the view's process failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class Figures:
    subjects: int
    produce_s: float
    build: dict[str, Any]
    restart: dict[str, Any]
    rows: int  # in the store at the restart: ``subjects``, or more when padded
    pad_s: float = 0.0


def pad(store: Path, subjects: int, rows: int) -> float:
    """Seconds to add subjects ``subjects`` to ``rows - 1`` to the store's file directly
    (each a copy of the first subject's row), as if the topic had held them."""
    started = time.perf_counter()
    padded = ConsentStore.open(store, VIEW_NAME)
    try:
        template = padded.row(subject_of(1))
        if template is None:
            raise RuntimeError("the store has no row to copy")
        chunk = 100_000
        for first in range(subjects, rows, chunk):
            last = min(first + chunk, rows)
            padded.apply({subject_of(i): template for i in range(first, last)}, {})
    finally:
        padded.close()
    return time.perf_counter() - started


async def measure(subjects: int, bootstrap: str | None = None, pad_to: int = 0) -> Figures:
    """On the broker at ``bootstrap``, or on ``make run``'s (started when it is not)."""
    if bootstrap is None:
        kafka = LocalKafka()
        kafka.start()
        bootstrap = kafka.bootstrap_servers
    prefix = f"benchstore{uuid.uuid4().hex[:8]}."
    topic = f"{prefix}consent.state"
    store = Path(tempfile.mkdtemp(prefix="consent-store-bench-"))
    try:
        await ensure_topics(bootstrap, [TopicSpec(topic, partitions=3, compacted=True)])
        produce_s = await produce_states(bootstrap, topic, subjects)
        print(f"  {subjects:,} states produced in {produce_s:.1f} s", flush=True)
        build = await asyncio.to_thread(
            functools.partial(run_child, bootstrap, topic, store, "-", lookups=1000)
        )
        print(f"  first start (store built from offset 0): {build['ready_s']:.1f} s, "
              f"store {build['store_mib']:.0f} MiB", flush=True)  # fmt: skip
        rows, pad_s = subjects, 0.0
        if pad_to > subjects:
            pad_s, rows = await asyncio.to_thread(pad, store, subjects, pad_to), pad_to
            print(f"  store padded to {rows:,} subjects in {pad_s:.0f} s", flush=True)
        withdrawn = await publish_changes(bootstrap, topic, CHANGED)
        restart = await asyncio.to_thread(
            functools.partial(
                run_child, bootstrap, topic, store, withdrawn, lookups=LOOKUPS, population=rows
            )
        )
        if not (restart["resumed"] and restart["withdrawal_seen"] and not restart["rebuilds"]):
            raise RuntimeError(f"the restarted view did not resume correctly: {restart}")
        print(f"  restart: ready in {restart['ready_s']:.2f} s ({restart['records_read']} "
              f"records read), RSS {restart['rss_ready_mib']:.0f} MiB, lookup p50 "
              f"{restart['p50_us']:.1f} us, p99 {restart['p99_us']:.1f} us",
              flush=True)  # fmt: skip
        return Figures(subjects, produce_s, build, restart, rows, pad_s)
    finally:
        shutil.rmtree(store, ignore_errors=True)
        with contextlib.suppress(Exception):
            await delete_topics(bootstrap, prefix)


def _count(n: int) -> str:
    return f"{n / 1_000_000:g}M" if n >= 1_000_000 else f"{n // 1000}k"


def rows(f: Figures) -> list[Row]:
    r, b, size = f.restart, f.build, _count(f.rows)
    at = "" if f.rows >= 10_000_000 else f" (goal at 10M; this run {size})"
    if f.rows > f.subjects:
        size += (
            f" ({_count(f.subjects)} produced and read, then {f.rows - f.subjects:,} rows "
            f"added to the file directly in {f.pad_s:.0f} s)"
        )
    return [
        Row("6", f"consent view restart, {size} subjects in its SQLite store, {CHANGED:,} "
            "changed while down (a withdrawal among them, seen): start() to ready",
            f"{r['ready_s']:.2f} s", f"{r['records_read']:,} records read, not {f.subjects:,}",
            f"< {GOAL_READY_S:g} s{at}", r["ready_s"] < GOAL_READY_S),
        Row("6", f"consent view memory, {size} subjects: resident set of the whole process "
            f"after the restart (before the view: {r['rss_before_mib']:.0f} MiB; peak "
            f"{r['rss_peak_mib']:.0f} MiB)", f"{r['rss_after_lookups_mib']:.0f} MiB",
            f"store file {r['store_mib']:.0f} MiB on disk",
            f"< {GOAL_RSS_MIB:g} MiB{at}", r["rss_after_lookups_mib"] < GOAL_RSS_MIB),
        Row("6", f"consent check lookup (gateway's consent_check over the store), {size} "
            f"subjects, {LOOKUPS // 1000}k random, 1 in 10 unknown: p50 / p99",
            f"{r['p50_us']:.1f} / {r['p99_us']:.1f} us", "",
            f"p99 < {GOAL_P99_US:g} us{at}", r["p99_us"] < GOAL_P99_US),
        Row("6", f"consent view first start, {_count(f.subjects)} subjects: store built from "
            "offset 0 "
            f"(producing them: {f.produce_s:.1f} s)", f"{b['ready_s']:.1f} s",
            f"{f.subjects / b['ready_s']:,.0f} subjects/s; peak RSS {b['rss_peak_mib']:.0f} MiB"),
    ]  # fmt: skip


def run(subjects: int | None = None, bootstrap: str | None = None, pad_to: int = 0) -> list[Row]:
    size = subjects or int(os.environ.get("BENCH_CONSENT_SUBJECTS") or DEFAULT_SUBJECTS)
    return rows(asyncio.run(measure(size, bootstrap, pad_to)))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.consent_store")
    parser.add_argument("--subjects", type=int, default=0, help="default 100k, or $BENCH_...")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help="a running broker (default: make run's)")
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--withdrawn", help=argparse.SUPPRESS)
    parser.add_argument(
        "--pad-to",
        type=int,
        default=0,
        help="before the restart, add subjects to the store's file directly up to this many "
        "(the restart at a size the topic was not produced at)",
    )
    parser.add_argument("--lookups", type=int, default=LOOKUPS, help=argparse.SUPPRESS)
    parser.add_argument("--population", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(
            child(
                args.bootstrap,
                args.topic,
                args.store,
                args.withdrawn,
                lookups=args.lookups,
                population=args.population,
            )
        )
        return
    for row in run(args.subjects or None, args.bootstrap, args.pad_to):
        print(" | ".join((row.section, row.what, row.figure, row.ratio, row.goal, str(row.met))))


if __name__ == "__main__":
    main()
