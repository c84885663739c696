"""aiokafka clients configured the one way this suite uses them.

- :func:`new_producer`: idempotent (``enable_idempotence``, hence ``acks=all``), keyed by
  subject so one subject's events stay in one partition, in order.
- :func:`new_consumer`: a consumer-group member with manual offset commits.
- :func:`ensure_topics`: creates topics that do not exist yet (compacted ones included).
- :func:`kafka_reachable`: a cheap probe for readiness checks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

# Bounds that keep a missing broker from hanging a request or a relay cycle for long.
REQUEST_TIMEOUT_MS = 10_000
METADATA_MAX_AGE_MS = 30_000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 3
    compacted: bool = False
    config: dict[str, str] = field(default_factory=dict)

    def to_new_topic(self) -> NewTopic:
        config = dict(self.config)
        if self.compacted:
            config.setdefault("cleanup.policy", "compact")
        return NewTopic(self.name, self.partitions, 1, topic_configs=config)


def new_producer(bootstrap_servers: str, *, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
        request_timeout_ms=REQUEST_TIMEOUT_MS,
        metadata_max_age_ms=METADATA_MAX_AGE_MS,
    )


def new_consumer(
    bootstrap_servers: str, *topics: str, group_id: str, client_id: str
) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        request_timeout_ms=REQUEST_TIMEOUT_MS * 4,
        metadata_max_age_ms=METADATA_MAX_AGE_MS,
    )


async def ensure_topics(bootstrap_servers: str, topics: Iterable[TopicSpec]) -> None:
    """Create each topic that does not exist yet; existing ones are left as they are."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers, request_timeout_ms=REQUEST_TIMEOUT_MS
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec.to_new_topic() for spec in topics if spec.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
    finally:
        await admin.close()


async def kafka_reachable(bootstrap_servers: str, *, timeout_s: float = 2.0) -> bool:
    """Whether a broker answers a TCP connection within ``timeout_s``."""
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host or "127.0.0.1", int(port)), timeout_s
            )
        except (OSError, TimeoutError, ValueError):
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
    return False


__all__ = [
    "KafkaError",
    "TopicSpec",
    "ensure_topics",
    "kafka_reachable",
    "new_consumer",
    "new_producer",
]
