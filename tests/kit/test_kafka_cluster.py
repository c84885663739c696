"""Kafka for production: TLS and SASL/SCRAM for every client, replication as settings, and
topic creation that refuses more replicas than the cluster has brokers."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from kit.kafka import (
    KafkaCluster,
    ReplicationFactorTooHigh,
    TopicSpec,
    configure_cluster,
    current_cluster,
    ensure_topics,
    new_admin,
    new_consumer,
    new_producer,
)
from kit.settings import ServiceSettings
from tests.conftest import Broker


@pytest.fixture
def replicated_three_times() -> Iterator[None]:
    before = current_cluster()
    configure_cluster(KafkaCluster(replication_factor=3, min_insync_replicas=2))
    yield
    configure_cluster(before)


async def test_a_replication_factor_above_the_cluster_size_is_refused_clearly(
    kafka: Broker, replicated_three_times: None
) -> None:
    topic = f"kit-test.rf.{uuid.uuid4().hex[:8]}"
    with pytest.raises(ReplicationFactorTooHigh) as refused:
        await ensure_topics(kafka.bootstrap_servers, [TopicSpec(topic)])
    assert "replication factor 3 is above the 1 broker(s)" in str(refused.value)
    assert topic in str(refused.value)
    admin = new_admin(kafka.bootstrap_servers)
    await admin.start()
    try:
        assert topic not in await admin.list_topics()
    finally:
        await admin.close()


def test_sasl_without_credentials_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIVACY_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(ValidationError, match="kafka_sasl_username and kafka_sasl_password"):
        ServiceSettings()


def test_min_insync_replicas_above_the_replication_factor_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PRIVACY_KAFKA_REPLICATION_FACTOR", "2")
    monkeypatch.setenv("PRIVACY_KAFKA_MIN_INSYNC_REPLICAS", "3")
    with pytest.raises(ValidationError, match="may not exceed kafka_replication_factor"):
        ServiceSettings()


def test_sasl_ssl_settings_reach_every_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIVACY_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("PRIVACY_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("PRIVACY_KAFKA_SASL_USERNAME", "orders")
    monkeypatch.setenv("PRIVACY_KAFKA_SASL_PASSWORD", "s3cret")
    options = ServiceSettings().kafka_cluster.client_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-256"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("orders", "s3cret")
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED


def test_plaintext_by_default_for_make_run() -> None:
    cluster = ServiceSettings().kafka_cluster
    assert cluster.client_options() == {"security_protocol": "PLAINTEXT"}
    assert (cluster.replication_factor, cluster.min_insync_replicas) == (1, 1)


def test_consumer_groups_are_named_behind_the_topic_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PRIVACY_KAFKA_TOPIC_PREFIX", "e2e1a2b3c4d.")
    assert ServiceSettings().kafka_cluster.group_prefix == "e2e1a2b3c4d."


async def test_two_runs_on_one_broker_never_share_a_consumer_group(kafka: Broker) -> None:
    """Each run's consumer of the same name reads every event it is sent: in one shared
    group the two would split the partitions and commit each other's offsets."""
    topic = f"kit-test.groups.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka.bootstrap_servers, [TopicSpec(topic, partitions=1)])
    producer = new_producer(kafka.bootstrap_servers, client_id="kit-test-groups")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=b"the one event", key=b"acc_1")
    finally:
        await producer.stop()
    before = current_cluster()
    consumers = []
    try:
        for run in ("e2eaaaa.", "e2ebbbb."):
            configure_cluster(KafkaCluster(group_prefix=f"{run}{uuid.uuid4().hex[:6]}."))
            consumers.append(
                new_consumer(
                    kafka.bootstrap_servers, topic, group_id="orders.rights", client_id=run
                )
            )
    finally:
        configure_cluster(before)
    read: list[list[bytes]] = []
    for consumer in consumers:
        await consumer.start()
    try:
        for consumer in consumers:
            batches = await consumer.getmany(timeout_ms=30_000)
            read.append([record.value for records in batches.values() for record in records])
    finally:
        for consumer in consumers:
            await consumer.stop()
    assert read == [[b"the one event"], [b"the one event"]]
