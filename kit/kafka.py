"""aiokafka clients configured the one way this suite uses them.

- :func:`new_producer`: idempotent (``enable_idempotence``, hence ``acks=all``), keyed by
  subject so one subject's events stay in one partition, in order.
- :func:`new_consumer`: a consumer-group member with manual offset commits; its group is
  named behind the deployment's prefix (``KafkaCluster.group_prefix``, the topic prefix),
  so two deployments or test runs sharing a broker never join one group.
- :func:`ensure_topics`: creates topics that do not exist yet (compacted ones included).
- :func:`kafka_reachable`: a cheap probe for readiness checks.
- :func:`configure_cluster`: how this process reaches its cluster (TLS, SASL/SCRAM) and the
  replication every topic it creates gets; set once at start from the app's settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import DefaultPartitioner, murmur2

# Bounds that keep a missing broker from hanging a request or a relay cycle for long.
REQUEST_TIMEOUT_MS = 10_000
METADATA_MAX_AGE_MS = 30_000


@dataclass(frozen=True)
class KafkaCluster:
    """How this process's clients reach Kafka and the replication of the topics it creates.

    One per process: every client of an app talks to one cluster under one identity, so the
    app sets it once at start (:func:`configure_cluster`) instead of threading it through
    every producer, consumer and admin client."""

    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    sasl_username: str = ""
    sasl_password: str = ""
    ssl_ca_file: Path | None = None
    replication_factor: int = 1
    min_insync_replicas: int = 1
    #: Prepended to every consumer group id: the deployment's topic prefix, so that
    #: deployments (and test runs) on one broker never share a group, whose members would
    #: rebalance against each other's subscriptions and commit each other's offsets.
    group_prefix: str = ""

    def client_options(self) -> dict[str, Any]:
        """The aiokafka keyword arguments for TLS and SASL (none for PLAINTEXT)."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.security_protocol in ("SSL", "SASL_SSL"):
            options["ssl_context"] = self._ssl_context()
        if self.security_protocol.startswith("SASL_"):
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password
        return options

    def _ssl_context(self) -> ssl.SSLContext:
        # The system's trust store unless a private CA is named.
        if self.ssl_ca_file is None:
            return ssl.create_default_context()
        context: ssl.SSLContext = create_ssl_context(cafile=str(self.ssl_ca_file))
        return context


class ReplicationFactorTooHigh(ValueError):
    """Topics were asked for more replicas than the cluster has brokers."""


_cluster = KafkaCluster()


def configure_cluster(cluster: KafkaCluster) -> None:
    """Sets how every client made by this module from now on reaches the cluster."""
    global _cluster  # noqa: PLW0603 -- one cluster per process, see KafkaCluster
    _cluster = cluster


def current_cluster() -> KafkaCluster:
    return _cluster


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
        config.setdefault("min.insync.replicas", str(_cluster.min_insync_replicas))
        return NewTopic(
            self.name, self.partitions, _cluster.replication_factor, topic_configs=config
        )


class KeyHashPartitioner:
    """aiokafka's default partitioner (murmur2 of the key, as Java's clients, so every
    producer of the suite puts a subject in the same partition), keeping the hashes of
    recent keys: aiokafka's murmur2 is pure Python, a few percent of the gateway's CPU per
    access event, and a subject's events come in runs. At most ``max_keys`` hashes are kept
    (then they are forgotten at once, and learnt again)."""

    def __init__(self, max_keys: int = 65_536) -> None:
        self.max_keys = max_keys
        self._hashes: dict[bytes, int] = {}

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            partition: int = DefaultPartitioner()(key, all_partitions, available)
            return partition
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= self.max_keys:
                self._hashes.clear()
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]


def new_producer(bootstrap_servers: str, *, client_id: str, linger_ms: int = 5) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **_cluster.client_options(),
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        partitioner=KeyHashPartitioner(),
        enable_idempotence=True,
        acks="all",
        linger_ms=linger_ms,
        max_batch_size=256 * 1024,
        request_timeout_ms=REQUEST_TIMEOUT_MS,
        metadata_max_age_ms=METADATA_MAX_AGE_MS,
    )


async def abandon_producer(producer: AIOKafkaProducer) -> None:
    """Close ``producer`` at once, dropping the records it has not sent yet.

    ``AIOKafkaProducer.stop`` first flushes, which with the broker gone waits until each
    batch expires, and delivers them if the broker comes back meanwhile: a caller that
    already wrote those events elsewhere (the gateway's outbox) would publish them twice.
    aiokafka has no public abort, so this stops its sender task and closes its client."""
    producer._closed = True
    sender = getattr(producer, "_sender", None)
    if sender is not None:
        with contextlib.suppress(Exception):
            await sender.close()
    with contextlib.suppress(Exception):
        await producer.client.close()


def new_consumer(
    bootstrap_servers: str,
    *topics: str,
    group_id: str,
    client_id: str,
    fetch_min_bytes: int = 1,
    fetch_max_wait_ms: int = 500,
) -> AIOKafkaConsumer:
    """A consumer of ``topics`` in ``group_id``, committing by hand. The broker answers a
    fetch once it holds ``fetch_min_bytes`` or ``fetch_max_wait_ms`` has passed."""
    return AIOKafkaConsumer(
        *topics,
        **_cluster.client_options(),
        bootstrap_servers=bootstrap_servers,
        group_id=f"{_cluster.group_prefix}{group_id}",
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        request_timeout_ms=REQUEST_TIMEOUT_MS * 4,
        metadata_max_age_ms=METADATA_MAX_AGE_MS,
        fetch_min_bytes=fetch_min_bytes,
        fetch_max_wait_ms=fetch_max_wait_ms,
    )


async def ensure_topics(bootstrap_servers: str, topics: Iterable[TopicSpec]) -> None:
    """Create each topic that does not exist yet; existing ones are left as they are.

    Raises :class:`ReplicationFactorTooHigh` when the configured replication factor exceeds
    the brokers the cluster has: Kafka would refuse each topic with a bare error code."""
    admin = new_admin(bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec.to_new_topic() for spec in topics if spec.name not in existing]
        if missing:
            brokers = len((await admin.describe_cluster())["brokers"])
            if _cluster.replication_factor > brokers:
                raise ReplicationFactorTooHigh(
                    f"replication factor {_cluster.replication_factor} is above the "
                    f"{brokers} broker(s) of the cluster at {bootstrap_servers}: lower "
                    "*_KAFKA_REPLICATION_FACTOR or add brokers (topics not created: "
                    f"{', '.join(topic.name for topic in missing)})"
                )
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
    finally:
        await admin.close()


def new_admin(bootstrap_servers: str) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(
        **_cluster.client_options(),
        bootstrap_servers=bootstrap_servers,
        request_timeout_ms=REQUEST_TIMEOUT_MS,
    )


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
    "KafkaCluster",
    "KafkaError",
    "ReplicationFactorTooHigh",
    "TopicSpec",
    "abandon_producer",
    "configure_cluster",
    "current_cluster",
    "ensure_topics",
    "kafka_reachable",
    "new_admin",
    "new_consumer",
    "new_producer",
]
