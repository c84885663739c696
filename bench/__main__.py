"""``python -m bench`` (``make bench``): every benchmark, one after the other, in one run.

Prints one table (figure, ratio, the goal of issue 10 beside it, met or not) and writes it
to ``bench/results/latest.md``. About 3 minutes on 2 cores; each part is bounded (wrk
runs of a few seconds, fixed event counts).
"""

import time
from pathlib import Path

from bench import gateway, http, outbox
from bench.report import Row, table, write

NOT_YET = "not measured yet"

if __name__ == "__main__":
    started = time.perf_counter()
    rows: list[Row] = []
    print("== 3. field filter and token verification, in process", flush=True)
    rows += gateway.rows()
    print("== 4. outbox relay vs raw producer; end-to-end latency", flush=True)
    rows += outbox.run()
    print("== 1-2. gateway vs nginx under wrk, same upstream", flush=True)
    rows += http.run()
    rows += [
        Row("5", "order placement, encryption + outbox, 1 -> 2 uvicorn workers, vs plain insert",
            NOT_YET),
        Row("6", "consent bootstrap 10k/100k/1M subjects; ledger of 10k entries; "
            "retention sweep of 100k orders", NOT_YET),
    ]  # fmt: skip
    rows.sort(key=lambda row: row.section)
    text = table(rows, time.perf_counter() - started)
    print()
    print(text)
    root = Path(__file__).resolve().parent.parent
    print(f"written to {write(text).relative_to(root)}")
