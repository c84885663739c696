"""The compliance plugin (``tests/compliance.py``): collection refuses obligation marks that
would let one test count as proof of several rows or of rows it never looked at, and
``make compliance`` counts tests, not marks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kit.settings import REPO_ROOT
from tests import compliance

KNOWN, OTHER = "OB-2D-2", "OB-4-7"


def collect(directory: Path, files: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``pytest --collect-only`` of ``files`` in ``directory`` with the plugin loaded, as
    ``tests/conftest.py`` loads it."""
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "--collect-only", "-q"),
            *("-p", "tests.compliance", "-p", "no:cacheprovider"),
            *("--rootdir", str(directory), str(directory)),
        ],
        check=False,
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_collection_refuses_shared_repeated_and_unknown_marks_naming_each_test(
    tmp_path: Path,
) -> None:
    result = collect(
        tmp_path,
        {
            "test_module_wide.py": f"""
                import pytest
                SHARED = pytest.mark.obligation("{KNOWN}")
                pytestmark = SHARED
                def test_under_a_module_mark(): pass
            """,
            "test_per_test.py": f"""
                import pytest
                @pytest.mark.obligation("{KNOWN}")
                class TestShared:
                    def test_under_a_class_mark(self): pass
                @pytest.mark.obligation("{KNOWN}")
                @pytest.mark.obligation("{OTHER}")
                def test_citing_two_rows(): pass
                @pytest.mark.obligation("OB-9-99")
                def test_citing_an_unknown_row(): pass
                @pytest.mark.obligation("{KNOWN}")
                def test_citing_one_row(): pass
            """,
        },
    )
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    refused = [line.strip() for line in result.stderr.splitlines() if "::" in line]
    assert len(refused) == 4, result.stderr
    by_test = {line.split(": ", 1)[0].split("::")[-1]: line for line in refused}
    assert set(by_test) == {
        "test_under_a_module_mark",
        "test_under_a_class_mark",
        "test_citing_two_rows",
        "test_citing_an_unknown_row",
    }
    assert "module 'test_module_wide.py'" in by_test["test_under_a_module_mark"]
    assert "class 'TestShared'" in by_test["test_under_a_class_mark"]
    assert "2 obligation marks" in by_test["test_citing_two_rows"]
    assert "unknown obligation ('OB-9-99',)" in by_test["test_citing_an_unknown_row"]


def test_one_own_mark_per_test_is_collected(tmp_path: Path) -> None:
    result = collect(
        tmp_path,
        {
            "test_good.py": f"""
                import pytest
                @pytest.mark.obligation("{KNOWN}")
                def test_citing_one_row(): pass
                CITED = pytest.param(2, marks=pytest.mark.obligation("{OTHER}"))
                @pytest.mark.parametrize("n", [1, CITED])
                def test_one_case_cites_a_row(n): pass
                def test_citing_nothing(): pass
            """,
        },
    )
    assert result.returncode == pytest.ExitCode.OK, result.stdout + result.stderr
    assert "4 tests collected" in result.stdout


def test_the_report_counts_tests_not_marks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "compliance.json"
    results.write_text(
        json.dumps(
            {
                "t.py::test_a": {"obligation": KNOWN, "outcome": "passed"},
                "t.py::test_b": {"obligation": KNOWN, "outcome": "passed"},
                "t.py::test_c": {"obligation": OTHER, "outcome": "failed"},
                # the former format: one test counted once per mark; not counted at all
                "t.py::test_old": {"obligations": [KNOWN, OTHER], "outcome": "passed"},
            }
        )
    )
    monkeypatch.setattr(compliance, "RESULTS", results)
    assert compliance.report() == 1
    out = capsys.readouterr().out
    total = len(compliance.policy_obligations())
    assert f"3 tests prove 2 of {total} obligations; 1 with a failing or skipped test." in out
    assert f"{KNOWN}  HOLDS  2 test(s)" in out
    assert f"{OTHER}  NOT PROVEN  1 test(s)" in out
    assert "test_old" not in out
