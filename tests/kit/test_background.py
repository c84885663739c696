"""Background loops stop promptly at a safe point; a periodic job keeps its schedule
through failures."""

from __future__ import annotations

import time

from prometheus_client import REGISTRY

from kit.background import PeriodicTask
from kit.testing import eventually


async def test_a_periodic_job_survives_failures_and_stops_at_once() -> None:
    calls: list[int] = []

    async def job() -> None:
        calls.append(len(calls))
        if len(calls) == 2:
            raise RuntimeError("the database blinked")

    task = PeriodicTask("test.periodic", interval_s=0.01, job=job)
    task.start()

    async def ran_four_times() -> bool:
        return len(calls) >= 4

    await eventually(ran_four_times, timeout_s=5, what="four runs")
    assert task.runs >= 3 and task.running
    slow = PeriodicTask("test.slow", interval_s=3600, job=job)
    slow.start()

    async def slow_ran_once() -> bool:
        return slow.runs == 1  # and now sleeps for an hour

    await eventually(slow_ran_once, timeout_s=5, what="the slow task's first run")
    # Counted where a test outside the process sees it too.
    assert REGISTRY.get_sample_value("periodic_task_runs_total", {"task": "test.slow"}) == 1
    started = time.monotonic()
    await slow.stop()
    await task.stop()
    assert time.monotonic() - started < 1, "stop wakes a loop that sleeps for an hour"
    assert not task.running and not slow.running
