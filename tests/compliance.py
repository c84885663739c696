"""Which promises of the policy hold: obligation markers, their tests and outcomes.

As a pytest plugin (loaded by ``tests/conftest.py``) it records, for every test that cites
``@pytest.mark.obligation("OB-...")``, its outcome in ``.run/compliance.json``.
``python tests/compliance.py`` (``make compliance``) prints, per obligation ID of
``policy/obligations.md``, the tests citing it and whether they passed, then the IDs that
no test cites yet. It exits non-zero if a cited obligation has a failing test.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / ".run" / "compliance.json"
OBLIGATIONS = REPO / "policy" / "obligations.md"
_ROW = re.compile(r"^\|\s*(OB-[0-9A-Z]+-[0-9]+)\s*\|\s*(.+?)\s*\|\s*(.+?)\s*\|\s*$")

_outcomes: dict[str, dict[str, Any]] = {}


def policy_obligations() -> dict[str, str]:
    """Obligation ID -> its promise, from the table in ``policy/obligations.md``."""
    rows = (_ROW.match(line) for line in OBLIGATIONS.read_text().splitlines())
    return {row[1]: row[2] for row in rows if row}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    known = policy_obligations()
    for item in items:
        for marker in item.iter_markers("obligation"):
            if not marker.args or marker.args[0] not in known:
                raise pytest.UsageError(
                    f"{item.nodeid} cites unknown obligation {marker.args!r}; "
                    "see policy/obligations.md"
                )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    ids = [m.args[0] for m in getattr(report, "obligation_markers", [])]
    if not ids:
        return
    entry = _outcomes.setdefault(report.nodeid, {"obligations": ids, "outcome": "passed"})
    if report.failed:
        entry["outcome"] = "failed"
    elif report.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "skipped"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    outcome.get_result().obligation_markers = list(item.iter_markers("obligation"))


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _outcomes and not hasattr(session.config, "workerinput"):
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        previous.update(_outcomes)
        RESULTS.write_text(json.dumps(previous, indent=1, sort_keys=True))


def report() -> int:
    if not RESULTS.exists():
        print("no results yet: run `make test` first", file=sys.stderr)
        return 2
    results: dict[str, dict[str, Any]] = json.loads(RESULTS.read_text())
    by_obligation: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for nodeid, entry in sorted(results.items()):
        for obligation in entry["obligations"]:
            by_obligation[obligation].append((nodeid, entry["outcome"]))
    promises = policy_obligations()
    failing = 0
    print("Obligations cited by tests:")
    for obligation in promises:
        tests = by_obligation.get(obligation)
        if not tests:
            continue
        holds = all(outcome == "passed" for _, outcome in tests)
        failing += not holds
        print(f"\n{obligation}  {'HOLDS' if holds else 'NOT PROVEN'}  {promises[obligation]}")
        for nodeid, outcome in tests:
            print(f"    {outcome:7}  {nodeid}")
    uncited = [obligation for obligation in promises if obligation not in by_obligation]
    print(
        f"\n{len(promises) - len(uncited)} of {len(promises)} obligations cited; "
        f"{failing} with a failing or skipped test."
    )
    print("Not cited by any test yet: " + (", ".join(uncited) or "none"))
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(report())
