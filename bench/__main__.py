"""``python -m bench`` (``make bench``): every benchmark, one after the other, in one run.

Prints one table (figure, ratio, the goal of issue 10 beside it, met or not) and writes it
to ``bench/results/latest.md``. About 11 minutes on 2 cores (5 of them order placement and
the scale shape); each part is bounded (wrk
runs of a few seconds, fixed event counts).
"""

import time
from pathlib import Path

from bench import (
    consent_store,
    fullstack,
    gateway,
    http,
    ledger,
    outbox,
    payment,
    placement,
    scale,
)
from bench.report import Row, table, write

if __name__ == "__main__":
    started = time.perf_counter()
    rows: list[Row] = []
    print("== 3. field filter and token verification, in process", flush=True)
    rows += gateway.rows()
    print("== 4. outbox relay vs raw producer; end-to-end latency", flush=True)
    rows += outbox.run()
    print("== 1-2. gateway vs nginx under wrk, same upstream", flush=True)
    rows += http.run()
    print("== 5. order placement: orders service vs plain insert, 1 and 2 workers", flush=True)
    rows += placement.run()
    print("== 6. scale: consent bootstrap, ledger query, retention sweep", flush=True)
    rows += scale.run()
    print("== 6. consent view at scale: restart from its store, memory, lookups", flush=True)
    rows += consent_store.run()
    print(
        "== 7. payment notifications: duplicates and concurrent deliveries in the mix", flush=True
    )
    rows += payment.run()
    print(
        "== 8. the ledger consumer: events/s and backlog drain, one by one vs batches", flush=True
    )
    rows += ledger.run()
    print(
        "== 9. the whole suite: owner read, courier read and placement, through the gateway "
        "and straight to orders, against the minimal anchor",
        flush=True,
    )
    rows += fullstack.run()
    rows.sort(key=lambda row: row.section)
    text = table(rows, time.perf_counter() - started)
    print()
    print(text)
    root = Path(__file__).resolve().parent.parent
    print(f"written to {write(text).relative_to(root)}")
