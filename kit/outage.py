"""Broker outages, told once: every Kafka loop of a process (the outbox relay, consumers,
state views) reports its failures and recoveries here instead of logging each attempt.

- the first loop that cannot reach the broker logs one ERROR line: the outage started;
- every failed attempt meanwhile, in any loop, is counted (``kafka_outage_retries_total``)
  and logged at DEBUG only;
- when the last failing loop is back, one WARNING line ends the outage with its length and
  the retries counted; ``kafka_outages_total`` counts outages and ``kafka_outage_active``
  is 1 while one lasts (both in ``/metrics``);
- while an outage lasts, aiokafka's own lines (a connection error per attempt, per
  connection) are dropped from the logs: the outage line already says it
  (:class:`QuietDuringOutage`, installed by ``kit.observability.configure_logging``).
"""

from __future__ import annotations

import logging
import time

from aiokafka.errors import KafkaError
from prometheus_client import Counter, Gauge

__all__ = ["OUTAGE", "BrokerOutage", "QuietDuringOutage", "is_broker_failure"]

logger = logging.getLogger("kit.kafka")

OUTAGES = Counter("kafka_outages_total", "Broker outages this process went through")
OUTAGE_RETRIES = Counter(
    "kafka_outage_retries_total", "Failed attempts to reach the broker during outages"
)
OUTAGE_ACTIVE = Gauge("kafka_outage_active", "1 while this process cannot reach the broker")

# aiokafka's own lines about a broker it cannot reach; dropped at any time (each is
# followed by an exception the loops report here).
_CONNECTION_MESSAGES = ("Unable connect to", "Unable to request metadata", "Unable to update")


def is_broker_failure(exc: BaseException) -> bool:
    """A failure to reach or talk to the broker (not a bug in a handler)."""
    return isinstance(exc, (KafkaError, OSError, TimeoutError))


class BrokerOutage:
    """The process's view of the broker: which loops cannot reach it, since when, and how
    many attempts failed."""

    def __init__(self) -> None:
        self.failing: set[str] = set()
        self.started_at: float | None = None
        self.retries = 0

    @property
    def active(self) -> bool:
        return self.started_at is not None

    def failed(self, loop: str, error: BaseException | str) -> None:
        self.failing.add(loop)
        if self.started_at is None:
            self.started_at, self.retries = time.monotonic(), 0
            OUTAGES.inc()
            OUTAGE_ACTIVE.set(1)
            logger.error(
                "Kafka unreachable (%s: %s); retrying quietly until it is back",
                loop,
                error if isinstance(error, str) else f"{type(error).__name__}: {error}",
            )
            return
        self.retries += 1
        OUTAGE_RETRIES.inc()
        logger.debug("%s: Kafka still unreachable: %s", loop, error)

    def recovered(self, loop: str) -> None:
        self.failing.discard(loop)
        if self.started_at is None or self.failing:
            return
        lasted = time.monotonic() - self.started_at
        logger.warning(
            "Kafka reachable again after %.1fs; %d retries during the outage",
            lasted,
            self.retries,
        )
        self.started_at = None
        OUTAGE_ACTIVE.set(0)

    def forget(self, loop: str) -> None:
        """A loop that stopped no longer keeps an outage open (nor reports its end)."""
        self.failing.discard(loop)
        if not self.failing and self.started_at is not None:
            self.started_at = None
            OUTAGE_ACTIVE.set(0)


#: The one view of the process (its loops share the broker).
OUTAGE = BrokerOutage()


class QuietDuringOutage(logging.Filter):
    """Drops aiokafka's per-attempt connection errors, and all its lines while an outage
    is being reported."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("aiokafka"):
            return True
        if OUTAGE.active:
            return False
        return not str(record.msg).startswith(_CONNECTION_MESSAGES)
