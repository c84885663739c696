"""Group commit of access events: the events of concurrent owner reads in one transaction.

Every response with an owner's personal data leaves only once its access event is durable
in the gateway's outbox (same table, same relay, as :meth:`kit.outbox.EventWriter.processing`
writes it). One transaction per read made that commit the largest policy cost
(``bench.http``: ~25-30 % of the gateway's samples). :class:`AccessEventBatcher` keeps the
guarantee and shares the transaction:

- :meth:`AccessEventBatcher.record` queues the event and waits for the commit of the batch
  that holds it; a failed commit raises in every request of that batch (none answers
  without its event), an event that fails to build fails its own request only.
- One writer task takes up to ``max_batch`` queued events at a time, in arrival order (so
  outbox ``seq`` follows arrival, as before), and commits them in one transaction. It
  starts when the first event arrives on an idle batcher and runs after the requests
  already runnable in that turn of the event loop, so an idle gateway adds no wait; while
  one commit is in flight the next requests queue up and go in the next one (the batch
  grows with the load, never waiting for a timer). ``max_batch=1`` gives one
  transaction per event, as before.
- :meth:`AccessEventBatcher.aclose` (at shutdown) writes what is queued and stops.

Measured side by side (``python -m bench.http``, wrk -c32, same run): 442 req/s for the
gateway against 122 with one transaction per read (``access_event_max_batch=1``), 3.6x;
2.8-3.6x over three runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from kit.db import Database

__all__ = ["AccessEventBatcher", "AddEvent"]

logger = logging.getLogger("gateway.access_events")

#: Adds one event to the batch's session (``EventWriter.processing`` bound to its event).
AddEvent = Callable[[AsyncSession], object]


@dataclass
class _Queued:
    add: AddEvent
    done: asyncio.Future[None]


@dataclass
class AccessEventBatcher:
    """Commits queued events in shared transactions; see the module's notes."""

    database: Database
    max_batch: int = 256
    _queue: deque[_Queued] = field(default_factory=deque)
    _writer: asyncio.Task[None] | None = None
    _closed: bool = False
    #: Transactions committed and events in them (for tests and the benchmark's notes).
    batches: int = 0
    events: int = 0

    async def record(self, add: AddEvent) -> None:
        """Return once the event ``add`` puts in the outbox is committed; raise if not."""
        if self._closed:
            raise RuntimeError("the access-event batcher is closed")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Queued(add, done))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_all(), name="access-events")
        try:
            # shield: a request cancelled while waiting leaves its event in the batch.
            await asyncio.shield(done)
        except asyncio.CancelledError:
            done.add_done_callback(_retrieve)  # nobody waits for the outcome any more
            raise

    async def _write_all(self) -> None:
        try:
            while self._queue:
                batch = [
                    self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))
                ]
                await self._write(batch)
        finally:
            self._writer = None

    async def _write(self, batch: list[_Queued]) -> None:
        added: list[_Queued] = []
        try:
            async with self.database.session() as session:
                for queued in batch:
                    try:
                        queued.add(session)
                    except Exception as exc:  # this event is invalid: its request fails
                        _settle(queued.done, exc)
                    else:
                        added.append(queued)
        except Exception as exc:  # the commit failed: no request of the batch answers
            logger.warning("access events not committed (%d): %r", len(added), exc)
            for queued in added:
                _settle(queued.done, exc)
            return
        except BaseException:  # cancelled at shutdown: the waiters must not hang
            stopped = RuntimeError("the gateway stopped before the access event was committed")
            for queued in batch:
                _settle(queued.done, stopped)
            raise
        self.batches += 1
        self.events += len(added)
        for queued in added:
            _settle(queued.done, None)

    async def aclose(self) -> None:
        """Write what is queued, then refuse new events."""
        self._closed = True
        writer = self._writer
        if writer is not None:
            with contextlib.suppress(Exception):
                await writer


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


def _retrieve(done: asyncio.Future[None]) -> None:
    if not done.cancelled():
        done.exception()
