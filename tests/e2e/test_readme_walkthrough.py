"""README's walk-through, run as a newcomer pastes it: its ```sh blocks, taken from README,
run in order by one bash against a fresh suite (real processes, PostgreSQL and Kafka; ``GW``
set to the suite's gateway), and every ``# -> ...`` line checked against what the commands
above it printed.

The convention (README's walk-through says it too): a ``# -> EXPECTED`` line closes a step,
the commands since the previous step; ``EXPECTED`` is what they print. As JSON, the output
must be exactly one JSON value: an object needs the keys shown (others may follow), a list
the same elements in the same order, anything else equality. Otherwise the output is
compared as text. In both, ``...`` stands for any text.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest

from kit.settings import REPO_ROOT
from tests.e2e.suite import Suite

WALKTHROUGH_HEADING: Final = "## Walk-through: a user's journey"
EXPECT_PREFIX: Final = "# -> "
WILDCARD: Final = "..."
# The whole journey, waits for rights requests included (about 10 s here).
WALKTHROUGH_TIMEOUT_S: Final = 240.0


@dataclass(frozen=True)
class Step:
    commands: str
    expected: str | None  # None: the block ends with commands that show nothing to check


def walkthrough_steps(readme: str) -> list[Step]:
    """The steps of README's walk-through section, in order."""
    _, found, rest = readme.partition(WALKTHROUGH_HEADING)
    assert found, f"README has no section {WALKTHROUGH_HEADING!r}"
    section = rest.split("\n## ", 1)[0]
    steps: list[Step] = []
    for block in re.findall(r"^```sh\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL):
        pending: list[str] = []
        for line in block.splitlines():
            if line.startswith(EXPECT_PREFIX):
                steps.append(Step("\n".join(pending), line.removeprefix(EXPECT_PREFIX).strip()))
                pending = []
            else:
                pending.append(line)
        if any(line.strip() for line in pending):
            steps.append(Step("\n".join(pending), None))
    return steps


def _text_matches(expected: str, actual: str) -> bool:
    pattern = ".*".join(re.escape(part) for part in expected.split(WILDCARD))
    return re.fullmatch(pattern, actual, flags=re.DOTALL) is not None


def value_matches(expected: Any, actual: Any) -> bool:
    """``actual`` shows everything ``expected`` shows (see the module's convention)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and value_matches(value, actual[key]) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(value_matches(e, a) for e, a in zip(expected, actual, strict=True))
        )
    if isinstance(expected, str):
        return isinstance(actual, str) and _text_matches(expected, actual)
    return type(actual) is type(expected) and actual == expected


def output_matches(expected: str, output: str) -> bool:
    try:
        wanted = json.loads(expected)
    except json.JSONDecodeError:
        return _text_matches(expected, output.strip())
    try:
        printed = json.loads(output)
    except json.JSONDecodeError:
        return False
    return value_matches(wanted, printed)


def driver_script(steps: list[Step], out_dir: Path) -> str:
    """One bash script: each step in a brace group (the same shell, so its variables and
    functions stay) with its output in its own file."""
    return "".join(
        f"{{\n{step.commands}\n}} >{out_dir / f'{number}.out'}\n"
        for number, step in enumerate(steps)
    )


def test_the_convention_refuses_what_readme_does_not_show() -> None:
    assert output_matches('{"id": "rr_..."}', '{"id": "rr_abc", "kind": "access"}\n')
    assert not output_matches('{"id": "rr_..."}', '{"id": "ord_abc"}')
    assert not output_matches('{"status": "done"}', '{"state": "done"}')
    assert not output_matches('["a"]', '["a", "b"]')
    assert not output_matches("[]", '["a"]')
    assert not output_matches("401", "200\n")
    assert not output_matches('{"granted": true}', '{"granted": 1}')
    assert not output_matches('{"a": 1}', '{"a": 1}\n{"a": 1}')  # one value per step
    assert output_matches("staff account acc_... created", "staff account acc_x created\n")
    assert not output_matches("staff account acc_... created", "no such command\n")


def test_the_walkthrough_checks_every_step_and_deletes_last() -> None:
    steps = walkthrough_steps((REPO_ROOT / "README.md").read_text())
    checked = [step for step in steps if step.expected is not None]
    assert len(checked) >= 20
    deletion = next(n for n, step in enumerate(steps) if '"kind":"deletion"' in step.commands)
    # After the deletion only the refusals and the administrator's view remain.
    assert all("ADMIN_AUTH" in s.commands or "401" in (s.expected or "") for s in steps[deletion:])


async def test_every_walkthrough_command_runs_as_written(
    walkthrough_suite: Suite, tmp_path: Path
) -> None:
    for tool in ("bash", "curl", "jq"):
        assert shutil.which(tool), f"the walk-through needs {tool} on PATH"
    steps = walkthrough_steps((REPO_ROOT / "README.md").read_text())
    script = tmp_path / "walkthrough.sh"
    script.write_text(driver_script(steps, tmp_path))
    env = {
        **walkthrough_suite.processes["identity"].env,
        "GW": walkthrough_suite.gateway_url,
        "WALLET": walkthrough_suite.payment_provider_url,
    }
    process = await asyncio.create_subprocess_exec(
        "bash",
        str(script),
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), WALKTHROUGH_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        reached = sum(1 for number in range(len(steps)) if (tmp_path / f"{number}.out").exists())
        pytest.fail(f"the walk-through hung in this step:\n{steps[reached - 1].commands}")
    for number, step in enumerate(steps):
        output = (tmp_path / f"{number}.out").read_text()
        if step.expected is not None:
            assert output_matches(step.expected, output), (
                f"step {number}:\n{step.commands}\nREADME shows: {step.expected}\n"
                f"it printed: {output}\nstderr: {stderr.decode()[-2000:]}"
            )
