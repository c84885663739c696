"""Access events: straight to Kafka, the outbox when Kafka does not acknowledge in time.

Every response with an owner's personal data leaves only once its access event is
acknowledged by Kafka (acks=all) or durable in the gateway's outbox.
:class:`AccessEventPublisher` sends it with the gateway's own idempotent producer and falls
back to the outbox (see its notes); the outbox's transaction per batch was a third of the
gateway's cost (``bench.http --profile``), the direct send is what the relay would have
done later anyway.

The outbox path, :class:`AccessEventBatcher`: the events of concurrent reads in one
transaction (same table, same relay, as :meth:`kit.outbox.EventWriter.processing` writes
them). One transaction per read made that commit the largest policy cost (``bench.http``:
~25-30 % of the gateway's samples); the batcher keeps the guarantee and shares it:

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
import functools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from kit.db import Database
from kit.events import Event, kafka_record
from kit.kafka import TopicSpec, abandon_producer, ensure_topics, new_producer
from kit.outage import OUTAGE, is_broker_failure
from kit.outbox import add_to_outbox

__all__ = ["ACCESS_EVENT_PATHS", "AccessEventBatcher", "AccessEventPublisher", "AddEvent"]

ACCESS_EVENT_PATHS = Counter(
    "gateway_access_event_paths_total",
    "Access events acknowledged by Kafka directly, or written to the outbox instead",
    ["path"],
)
_BY_KAFKA = ACCESS_EVENT_PATHS.labels("kafka")

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


@dataclass
class AccessEventPublisher:
    """Access events straight to Kafka; the outbox only when Kafka does not acknowledge.

    :meth:`record` sends the event with the gateway's own idempotent producer (acks=all,
    ``linger_ms`` small) keyed by its subject, in the structured CloudEvents binding
    (:func:`kit.events.kafka_record`, as the relay publishes), and returns once Kafka has
    acknowledged it. When the acknowledgement does not come within ``ack_timeout_s`` (or
    sending fails, or no producer is connected) the same event, same id, goes to the
    gateway's outbox through ``outbox`` (group commit, :class:`AccessEventBatcher`) and the
    relay publishes it once Kafka is back: the response still waits until its event is
    either acknowledged or durable, and a failure of both fails the request. While Kafka
    acknowledges other events, a late one waits on (up to four timeouts): the gateway's
    own event loop is then what is slow, and the outbox would only add to its work.

    The first unacknowledged event abandons the producer, dropping what it had not sent
    (:func:`kit.kafka.abandon_producer`), so those events are published once, from the
    outbox; later events go to the outbox at once, without waiting, while a background
    task reconnects with back-off and takes the direct path back. Only an event the broker
    stored but whose acknowledgement was lost can arrive twice, with the same id, which
    consumers drop (at-least-once, as the relay). A subject's events sent during an outage
    may arrive after later ones sent directly: the ledger records each read, not an order
    between reads.
    """

    outbox: AccessEventBatcher
    bootstrap_servers: str
    topic: TopicSpec
    ack_timeout_s: float = 2.0
    linger_ms: int = 1
    retry_s: float = 0.5
    max_retry_s: float = 5.0
    name: str = "gateway-access-events"
    _producer: AIOKafkaProducer | None = None
    _connecting: asyncio.Task[None] | None = None
    _closed: bool = False
    _topic_ready: bool = False
    #: Events waiting for their acknowledgement: deadline and producer, in sending order.
    _waiting: dict[asyncio.Future[bool], tuple[float, AIOKafkaProducer]] = field(
        default_factory=dict
    )
    _watchdog: asyncio.Task[None] | None = None
    _last_ack: float = float("-inf")
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    #: Events acknowledged by Kafka, and events written to the outbox instead.
    sent: int = 0
    to_outbox: int = 0

    def start(self) -> None:
        """Connect in the background; until then events go to the outbox."""
        self._reconnect()

    async def record(self, event: Event) -> None:
        """Return once ``event`` is acknowledged by Kafka or committed to the outbox."""
        if self._closed:
            raise RuntimeError("the access-event publisher is closed")
        producer = self._producer
        if producer is not None and await self._send(producer, event):
            self.sent += 1
            _BY_KAFKA.inc()
            return
        await self.outbox.record(
            functools.partial(add_to_outbox, event=event, topic=self.topic.name)
        )
        self.to_outbox += 1
        ACCESS_EVENT_PATHS.labels("outbox").inc()

    async def _send(self, producer: AIOKafkaProducer, event: Event) -> bool:
        record = kafka_record(event.subject, event.to_json_bytes())
        try:  # never waits while connected: the topic's metadata was fetched on connecting
            delivery = await producer.send(
                self.topic.name, value=record.value, key=record.key, headers=record.headers
            )
        except Exception as exc:
            self._lost(producer, exc)
            return False
        # No timer per event (one was ~6 % of the gateway's samples): the watchdog fails the
        # waits that pass their deadline, all of them together.
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[bool] = loop.create_future()
        self._waiting[outcome] = (loop.time() + self.ack_timeout_s, producer)
        delivery.add_done_callback(functools.partial(self._report, outcome))
        if self._watchdog is None:
            self._watchdog = loop.create_task(self._watch(), name=f"{self.name}-watchdog")
        try:
            acknowledged = await outcome
        finally:
            del self._waiting[outcome]
        if not acknowledged:
            error = delivery.exception() if delivery.done() and not delivery.cancelled() else None
            self._lost(producer, error or TimeoutError())
        return acknowledged

    def _report(self, outcome: asyncio.Future[bool], delivery: asyncio.Future[object]) -> None:
        acknowledged = not delivery.cancelled() and delivery.exception() is None
        if acknowledged:
            self._last_ack = asyncio.get_running_loop().time()
        if not outcome.done():
            outcome.set_result(acknowledged)

    async def _watch(self) -> None:
        """While events wait: every quarter of the timeout, fail those past their deadline
        (they were sent in deadline order), unless Kafka acknowledged other events within
        the timeout: then it answers and the gateway's own loop is what is slow (a
        saturated process), and sending to the outbox would only add work; they wait on,
        up to four timeouts."""
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                await asyncio.sleep(self.ack_timeout_s / 4)
                now = loop.time()
                answering = now - self._last_ack < self.ack_timeout_s
                for outcome, (deadline, _) in list(self._waiting.items()):
                    if deadline > now:
                        break
                    if answering and now < deadline + 3 * self.ack_timeout_s:
                        continue
                    if not outcome.done():
                        outcome.set_result(False)
        finally:
            self._watchdog = None

    def _lost(self, producer: AIOKafkaProducer, error: BaseException) -> None:
        if self._producer is not producer:
            return  # already abandoned by an earlier event
        self._producer = None
        self.connected.clear()
        OUTAGE.failed(
            self.name, "no acknowledgement in time" if isinstance(error, TimeoutError) else error
        )
        asyncio.get_running_loop().create_task(abandon_producer(producer))
        self._reconnect()

    def _reconnect(self) -> None:
        if self._closed or (self._connecting is not None and not self._connecting.done()):
            return
        self._connecting = asyncio.get_running_loop().create_task(
            self._connect(), name=f"{self.name}-connect"
        )

    async def _connect(self) -> None:
        backoff = self.retry_s
        while not self._closed:
            producer = new_producer(
                self.bootstrap_servers, client_id=self.name, linger_ms=self.linger_ms
            )
            try:
                if not self._topic_ready:
                    await ensure_topics(self.bootstrap_servers, [self.topic])
                    self._topic_ready = True
                await producer.start()
                await producer.partitions_for(self.topic.name)
            except Exception as exc:
                await abandon_producer(producer)
                if is_broker_failure(exc):
                    OUTAGE.failed(self.name, exc)
                else:
                    logger.warning("access events go to the outbox: %r", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_retry_s)
                continue
            self._producer = producer
            self.connected.set()
            OUTAGE.recovered(self.name)
            return

    async def aclose(self) -> None:
        """Stop sending directly (what is in flight is flushed), then close the outbox."""
        self._closed = True
        connecting, self._connecting = self._connecting, None
        if connecting is not None:
            connecting.cancel()
            with contextlib.suppress(BaseException):
                await connecting
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), self.ack_timeout_s + 5)
        for outcome in self._waiting:  # nobody is left to acknowledge them
            if not outcome.done():
                outcome.set_result(False)
        await self.outbox.aclose()
