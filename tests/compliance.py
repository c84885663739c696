"""Which promises of the policy hold: obligation markers, their tests and outcomes.

As a pytest plugin (loaded by ``tests/conftest.py``) it refuses at collection, naming the
test, an obligation mark that is not the test's own (a module's ``pytestmark`` or a class's
mark), a test with two or more obligation marks, and an ID that ``policy/obligations.md``
does not have: a test proves at most the one row it cites. It records, for every test that
cites ``@pytest.mark.obligation("OB-...")``, its outcome in ``.run/compliance.json``.
``python tests/compliance.py`` (``make compliance``) prints, per obligation ID of
``policy/obligations.md``, the tests citing it and whether they passed, counting tests (not
marks), then the IDs that no test cites yet. It exits non-zero if a cited obligation has a
failing test.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from collections.abc import Mapping
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


def obligation_problems(item: pytest.Item, known: Mapping[str, str]) -> list[str]:
    """What is wrong with the obligation marks of ``item``: each test cites at most one row,
    by a mark of its own (never a module's or class's ``pytestmark``), with a known ID."""
    problems: list[str] = []
    own: list[pytest.Mark] = []
    inherited: list[str] = []
    for node, marker in item.iter_markers_with_node("obligation"):
        if node is item:
            own.append(marker)
        else:
            inherited.append(f"{marker.args!r} from {type(node).__name__.lower()} {node.name!r}")
    if inherited:
        problems.append(
            f"{item.nodeid}: obligation mark {', '.join(inherited)}: module- or class-wide "
            "marks are refused; cite the one row on the test itself"
        )
    if len(own) > 1:
        ids = ", ".join(repr(m.args[0]) if m.args else "()" for m in own)
        problems.append(
            f"{item.nodeid}: {len(own)} obligation marks ({ids}); a test proves at most one row"
        )
    for marker in own:
        if len(marker.args) != 1 or marker.kwargs or marker.args[0] not in known:
            problems.append(
                f"{item.nodeid}: cites unknown obligation {marker.args!r}; "
                "see policy/obligations.md"
            )
    return problems


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    known = policy_obligations()
    problems = [problem for item in items for problem in obligation_problems(item, known)]
    if problems:
        raise pytest.UsageError("obligation marks refused:\n  " + "\n  ".join(problems))


def cited_obligation(item: pytest.Item) -> str | None:
    """The one obligation ``item`` proves (collection refused any other shape)."""
    marker = item.get_closest_marker("obligation")
    return str(marker.args[0]) if marker is not None else None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    obligation = getattr(report, "obligation", None)
    if obligation is None:
        return
    entry = _outcomes.setdefault(report.nodeid, {"obligation": obligation, "outcome": "passed"})
    if report.failed:
        entry["outcome"] = "failed"
    elif report.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "skipped"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    outcome.get_result().obligation = cited_obligation(item)


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
        # Entries of the former format (a list of marks per test) counted marks: left out.
        if isinstance(entry.get("obligation"), str):
            by_obligation[entry["obligation"]].append((nodeid, entry["outcome"]))
    promises = policy_obligations()
    failing = 0
    print("Obligations cited by tests (each test cites one):")
    for obligation in promises:
        tests = by_obligation.get(obligation)
        if not tests:
            continue
        holds = all(outcome == "passed" for _, outcome in tests)
        failing += not holds
        verdict = "HOLDS" if holds else "NOT PROVEN"
        print(f"\n{obligation}  {verdict}  {len(tests)} test(s)  {promises[obligation]}")
        for nodeid, outcome in tests:
            print(f"    {outcome:7}  {nodeid}")
    uncited = [obligation for obligation in promises if obligation not in by_obligation]
    proving = sum(len(by_obligation[obligation]) for obligation in promises)
    print(
        f"\n{proving} tests prove {len(promises) - len(uncited)} of {len(promises)} "
        f"obligations; {failing} with a failing or skipped test."
    )
    print("Not cited by any test yet: " + (", ".join(uncited) or "none"))
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(report())
