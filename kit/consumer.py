"""The consumer base: at-least-once delivery in, exactly-once effects out.

An :class:`EventConsumer` reads its topics as one consumer group. For each event it opens
a transaction in its own database, skips the event if its id is already recorded in
``processed_event``, else runs the handler and records the id in that same transaction.
Offsets are committed only after handling, so a crash re-delivers and the record drops
the duplicate. A handler that keeps failing (``max_attempts``) sends the event to the
dead-letter topic ``<topic>.dlq`` with the error in its headers, and the consumer carries
on with the next event. Unreadable messages go to the dead-letter topic at once.

A consumer given a ``batch_handler`` takes each fetch's records, of every partition
assigned to it, as one unit: the new events (their ids looked up in one query) are handled
together and recorded in one transaction, and the partitions' offsets committed after it
(each partition's records keep their order). If that transaction fails, the batch is taken
again one event at a time, as above, so a poison event still goes alone to the dead-letter
topic; a fetch of one record takes the same path. With ``batch_linger_s``, the broker holds
each fetch until it has :data:`GATHER_BYTES` for it or that long has passed: under a steady
trickle (an event per request) a transaction and its statements, and the fetch itself, are
shared by many events instead of paid by each, while a backlog is answered at once.

A consumer given ``wants`` asks it first: an event it does not want is skipped before any
database work (no transaction, no ``processed_event`` row), so a topic's other event types
cost only their parsing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypeAlias

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from pydantic import ValidationError
from sqlalchemy import String, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit.background import BackgroundLoop
from kit.db import Database
from kit.events import Event
from kit.kafka import new_consumer, new_producer
from kit.models import ProcessedEvent, utcnow
from kit.observability import CONSUMER_EVENTS
from kit.outage import OUTAGE, is_broker_failure

logger = logging.getLogger("kit.consumer")

Handler = Callable[[AsyncSession, Event], Awaitable[None]]
EventFilter = Callable[[Event], bool]
BatchHandler = Callable[[AsyncSession, Sequence[Event]], Awaitable[None]]
Record: TypeAlias = "ConsumerRecord[Any, Any]"
DEAD_LETTER_SUFFIX = ".dlq"
MAX_BATCH = 500  # records a fetch takes at most
#: What a lingering consumer's fetch waits for (~100 events): a trickle gathers at the
#: broker, which answers a backlog at once.
GATHER_BYTES = 64 * 1024


#: A batch's recorded ids on PostgreSQL, joined from an array: ``event_id IN (...)`` of a
#: batch was planned, on a table without statistics yet (a new deployment, a burst), as a
#: scan of all the consumer's rows comparing each with every id of the batch, 57 ms a batch
#: of 500 at 5,000 rows and growing; the join hashes or probes instead, whatever the plan.
_SEEN_POSTGRES: Final = text(
    "SELECT recorded.event_id FROM unnest(CAST(:ids AS varchar[])) AS wanted(id) "
    "JOIN processed_event AS recorded "
    "ON recorded.consumer = :consumer AND recorded.event_id = wanted.id"
).columns(event_id=String)


class _HandledElsewhere(Exception):
    """Another consumer-group member committed this event id first."""


def dead_letter_topic(topic: str) -> str:
    return topic + DEAD_LETTER_SUFFIX


class EventConsumer(BackgroundLoop):
    """Runs ``handler`` once per distinct event id from ``topics``, until stopped."""

    def __init__(
        self,
        *,
        name: str,
        topics: Sequence[str],
        database: Database,
        bootstrap_servers: str,
        handler: Handler,
        wants: EventFilter | None = None,
        batch_handler: BatchHandler | None = None,
        batch_linger_s: float = 0.0,
        max_attempts: int = 3,
        retry_delay_s: float = 0.2,
        max_backoff_s: float = 5.0,
    ) -> None:
        super().__init__(name)
        self.topics = tuple(topics)
        self.database = database
        self.bootstrap_servers = bootstrap_servers
        self.handler = handler
        self.wants = wants
        self.batch_handler = batch_handler
        self.batch_linger_s = batch_linger_s
        self.max_attempts = max_attempts
        self.retry_delay_s = retry_delay_s
        self.max_backoff_s = max_backoff_s
        self.handled = 0
        self.duplicates = 0
        self.skipped = 0
        self.dead_lettered = 0
        self.last_error: str | None = None

    async def run(self) -> None:
        backoff = self.retry_delay_s
        while not self.stopping:
            consumer = new_consumer(
                self.bootstrap_servers,
                *self.topics,
                group_id=self.name,
                client_id=self.name,
                **self._fetch_options(),
            )
            producer = new_producer(self.bootstrap_servers, client_id=f"{self.name}-dlq")
            try:
                await consumer.start()
                await producer.start()
                OUTAGE.recovered(self.name)
                backoff = self.retry_delay_s
                await self._consume(consumer, producer)
            except Exception as exc:
                # Uncommitted events are read again from the committed offsets on restart.
                self.last_error = f"{type(exc).__name__}: {exc}"
                if is_broker_failure(exc):  # told once per outage, not per attempt
                    OUTAGE.failed(self.name, exc)
                else:
                    logger.warning(
                        "consumer %s restarts in %.1fs: %s", self.name, backoff, self.last_error
                    )
                await self.pause(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
            finally:
                for client in (consumer, producer):
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(client.stop(), 10)

    async def _consume(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
        while not self.stopping:
            batches = await consumer.getmany(timeout_ms=500, max_records=MAX_BATCH)
            if self.batch_handler is None:
                for partition, records in batches.items():
                    for record in records:
                        await self.process(record, producer)
                    await consumer.commit({partition: records[-1].offset + 1})
                continue
            records = [record for partition in batches.values() for record in partition]
            if records:  # one record too: the batch path's statements are the cheaper
                await self.process_batch(records, producer)
            if batches:
                await consumer.commit(
                    {partition: found[-1].offset + 1 for partition, found in batches.items()}
                )

    def _fetch_options(self) -> dict[str, int]:
        if self.batch_handler is None or self.batch_linger_s <= 0:
            return {}
        return {
            "fetch_min_bytes": GATHER_BYTES,
            "fetch_max_wait_ms": round(self.batch_linger_s * 1000),
        }

    async def _wanted(self, record: Record, producer: AIOKafkaProducer) -> Event | None:
        """The record's event if this consumer wants it; unreadable ones are dead-lettered."""
        try:
            event = Event.from_json_bytes(record.value)
        except (ValidationError, ValueError) as exc:
            await self._dead_letter(producer, record, error=f"unreadable event: {exc}", attempts=0)
            return None
        if self.wants is not None and not self.wants(event):
            self.skipped += 1
            CONSUMER_EVENTS.labels(self.name, "skipped").inc()
            return None
        return event

    async def process_batch(self, records: Sequence[Record], producer: AIOKafkaProducer) -> None:
        """Handle a fetch's records in one transaction; one by one if it fails."""
        fresh: dict[str, tuple[Record, Event]] = {}
        for record in records:
            event = await self._wanted(record, producer)
            if event is None:
                continue
            if event.id in fresh:
                self._count_duplicates(1)
            else:
                fresh[event.id] = (record, event)
        if not fresh:
            return
        try:
            async with self.database.session() as session:
                seen = await self._seen(session, list(fresh))
                new = [event for _, event in fresh.values() if event.id not in seen]
                if new:
                    assert self.batch_handler is not None
                    await self.batch_handler(session, new)
                    now = utcnow()  # one multi-row INSERT, no ORM object per event
                    await session.execute(
                        insert(ProcessedEvent.__table__),  # type: ignore[attr-defined]
                        [
                            {"consumer": self.name, "event_id": event.id, "outcome": "handled",
                             "processed_at": now}
                            for event in new
                        ],
                    )  # fmt: skip
        except Exception as exc:
            logger.warning(
                "consumer %s: a batch of %d failed, taking it one by one: %s",
                self.name,
                len(fresh),
                exc,
            )
            for record, _ in fresh.values():
                await self.process(record, producer)
            return
        self._count_duplicates(len(seen))
        self.handled += len(new)
        CONSUMER_EVENTS.labels(self.name, "handled").inc(len(new))

    async def _seen(self, session: AsyncSession, event_ids: list[str]) -> set[str]:
        """Which of ``event_ids`` this consumer already recorded, in one query."""
        if session.get_bind().dialect.name == "postgresql":
            rows = await session.scalars(_SEEN_POSTGRES, {"consumer": self.name, "ids": event_ids})
        else:
            rows = await session.scalars(
                select(col(ProcessedEvent.event_id)).where(
                    col(ProcessedEvent.consumer) == self.name,
                    col(ProcessedEvent.event_id).in_(event_ids),
                )
            )
        return set(rows)

    def _count_duplicates(self, count: int) -> None:
        self.duplicates += count
        CONSUMER_EVENTS.labels(self.name, "duplicate").inc(count)

    async def process(self, record: Record, producer: AIOKafkaProducer) -> None:
        """Handle one record: once per event id, retried, dead-lettered if it keeps failing."""
        event = await self._wanted(record, producer)
        if event is None:
            return
        error: Exception | None = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                if await self._apply_once(event):
                    self.handled += 1
                    CONSUMER_EVENTS.labels(self.name, "handled").inc()
                else:
                    self._count_duplicates(1)
                return
            except Exception as exc:
                error = exc
                logger.warning(
                    "consumer %s: event %s failed (attempt %d/%d): %s",
                    self.name,
                    event.id,
                    attempt,
                    self.max_attempts,
                    exc,
                )
                await asyncio.sleep(self.retry_delay_s * attempt)
        await self._dead_letter(
            producer, record, error=f"{type(error).__name__}: {error}", attempts=self.max_attempts
        )
        async with self.database.session() as session:
            session.add(
                ProcessedEvent(consumer=self.name, event_id=event.id, outcome="dead_letter")
            )

    async def _apply_once(self, event: Event) -> bool:
        """Run the handler and record the event id in one transaction; False if seen.

        Only a clash on the event-id record counts as "already handled"; any other
        integrity error is the handler's failure and is retried, then dead-lettered.
        """
        try:
            async with self.database.session() as session:
                if await session.get(ProcessedEvent, (self.name, event.id)) is not None:
                    return False
                await self.handler(session, event)
                await session.flush()
                try:
                    async with session.begin_nested():
                        session.add(ProcessedEvent(consumer=self.name, event_id=event.id))
                except IntegrityError as clash:
                    raise _HandledElsewhere from clash
        except _HandledElsewhere:
            # Another member recorded the same event id first: its effects stand, ours
            # were rolled back.
            return False
        return True

    async def _dead_letter(
        self,
        producer: AIOKafkaProducer,
        record: Record,
        *,
        error: str,
        attempts: int,
    ) -> None:
        headers = [
            ("dlq.error", error[:2000].encode()),
            ("dlq.consumer", self.name.encode()),
            ("dlq.attempts", str(attempts).encode()),
            ("dlq.topic", record.topic.encode()),
            ("dlq.partition", str(record.partition).encode()),
            ("dlq.offset", str(record.offset).encode()),
        ]
        await producer.send_and_wait(
            dead_letter_topic(record.topic), value=record.value, key=record.key, headers=headers
        )
        self.dead_lettered += 1
        CONSUMER_EVENTS.labels(self.name, "dead_letter").inc()
        logger.error(
            "consumer %s sent an event to %s: %s", self.name, dead_letter_topic(record.topic), error
        )


__all__ = ["BatchHandler", "EventConsumer", "EventFilter", "Handler", "dead_letter_topic"]
