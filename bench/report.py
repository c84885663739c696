"""The one table ``make bench`` prints and writes to ``bench/results/latest.md``.

Each benchmark returns :class:`Row` s: what was measured, the figure, the ratio or growth
it is judged by, the goal of issue 10 beside it and whether this run met it (``None``: a
figure reported without a goal).
"""

from __future__ import annotations

import platform
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Row:
    section: str
    what: str
    figure: str
    ratio: str = ""
    goal: str = ""
    met: bool | None = None


def _mark(met: bool | None) -> str:
    return "" if met is None else ("met" if met else "NOT met")


def _machine() -> str:
    try:
        cpus = subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        cpus = "?"
    return f"{platform.system()} {platform.machine()}, {cpus.strip()} cores, Python " + (
        platform.python_version()
    )


def table(rows: list[Row], seconds: float) -> str:
    header = ["#", "what", "figure", "ratio / growth", "goal", "met"]
    body = [[r.section, r.what, r.figure, r.ratio, r.goal, _mark(r.met)] for r in rows]
    lines = [
        f"make bench, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {_machine()}, {seconds:.0f} s",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(cells) + " |" for cells in body),
    ]
    return "\n".join(lines) + "\n"


def write(text: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "latest.md"
    path.write_text(text, encoding="utf-8")
    return path
