"""A loop that runs beside an app and stops cleanly (the outbox relay, consumers).

:meth:`BackgroundLoop.stop` asks the loop to end at its next safe point (between
batches, never inside a database call or a Kafka request) and waits for it; only a loop
that does not end within ``stop_timeout_s`` is cancelled. Cancelling a task in the middle
of a database call can leave the connection unusable and hang the pool, so cancellation
is the last resort, not the way to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from kit.observability import PERIODIC_TASK_RUNS
from kit.outage import OUTAGE

logger = logging.getLogger("kit.background")


class BackgroundLoop:
    """Subclasses implement :meth:`run`, checking :attr:`stopping` and sleeping with
    :meth:`pause` so that :meth:`stop` and :meth:`wake` reach them at once."""

    stop_timeout_s = 15.0

    def __init__(self, name: str) -> None:
        self.name = name
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._stopping = False

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def start(self) -> None:
        self._stopping = False
        self._stopped.clear()
        self._task = asyncio.create_task(self.run(), name=self.name)

    def wake(self) -> None:
        """End the current :meth:`pause` early."""
        self._wake.set()

    async def pause(self, seconds: float) -> None:
        """Sleep up to ``seconds``; a :meth:`wake` or :meth:`stop` ends it early."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def sleep_unless_stopped(self, seconds: float) -> None:
        """Sleep ``seconds``; only :meth:`stop` ends it early (a back-off is not cut short
        by :meth:`wake`)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), seconds)

    async def stop(self, timeout_s: float | None = None) -> None:
        """Ask the loop to end and wait for it up to ``timeout_s`` (default
        :attr:`stop_timeout_s`), then cancel it."""
        timeout = self.stop_timeout_s if timeout_s is None else max(0.0, timeout_s)
        task, self._task = self._task, None
        self._stopping = True
        self._stopped.set()
        self._wake.set()
        if task is None:
            OUTAGE.forget(self.name)
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            logger.warning("%s did not stop in %.1fs; cancelling it", self.name, timeout)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        except Exception:
            logger.exception("%s ended with an error", self.name)
        OUTAGE.forget(self.name)  # stopped: it no longer keeps a broker outage open

    async def run(self) -> None:
        raise NotImplementedError


class PeriodicTask(BackgroundLoop):
    """Runs ``job`` every ``interval_s`` seconds (first right after start) until stopped;
    a failing run is logged and the next one comes on schedule. Completed runs are counted
    in ``runs`` and in ``/metrics`` (``periodic_task_runs_total{task=...}``): how a test
    outside the process knows a run happened after something it did."""

    def __init__(self, name: str, *, interval_s: float, job: Callable[[], Awaitable[object]]):
        super().__init__(name)
        self.interval_s = interval_s
        self.job = job
        self.runs = 0
        self.last_error: str | None = None

    async def run(self) -> None:
        while not self.stopping:
            try:
                await self.job()
                self.runs += 1
                PERIODIC_TASK_RUNS.labels(self.name).inc()
                self.last_error = None
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.exception("%s failed; next run in %.0fs", self.name, self.interval_s)
            await self.pause(self.interval_s)
