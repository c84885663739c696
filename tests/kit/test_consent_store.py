"""kit.consent_store: the consent view's subjects in a SQLite file of each process's own,
which a restart resumes from, and which is rebuilt when it no longer matches the cluster
or the topic (a real broker for all but the file locking)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.errors import TopicAlreadyExistsError

from kit.catalogue import default_catalogue
from kit.consent_state import ConsentStateView, NotAConsent
from kit.consent_store import ConsentStore
from kit.kafka import TopicSpec, ensure_topics, new_admin
from kit.testing import LocalKafka, eventually
from tests.conftest import Broker
from tests.kit.test_consent_state import produce, state_record

CATALOGUE = default_catalogue()
NAME = "test-consent-state-view"


def new_topic() -> str:
    return f"t{uuid.uuid4().hex[:8]}.consent.state"


def view_of(servers: str, topic: str, store: Path) -> ConsentStateView:
    return ConsentStateView(
        bootstrap_servers=servers,
        topic=topic,
        catalogue=CATALOGUE,
        name=NAME,
        store_dir=store,
        retry_delay_s=0.2,
    )


async def read_to_the_end(view: ConsentStateView) -> None:
    view.start()
    assert await view.wait_ready(60), view.last_error


def grants(
    subjects: list[str], version: int = 1, *, location: bool = True
) -> list[tuple[str, bytes | None]]:
    return [(s, state_record(s, version, location=location)) for s in subjects]


async def recreate(servers: str, topic: str, *, partitions: int) -> None:
    """Delete ``topic`` and make it again, empty (deletion finishes in the background)."""
    admin = new_admin(servers)
    await admin.start()
    try:
        await admin.delete_topics([topic])

        async def gone() -> bool:
            return topic not in await admin.list_topics()

        await eventually(gone, timeout_s=60, what=f"{topic} to be deleted")

        async def made_again() -> bool:
            try:
                await ensure_topics(
                    servers, [TopicSpec(topic, partitions=partitions, compacted=True)]
                )
            except TopicAlreadyExistsError:
                return False
            return topic in await admin.list_topics()

        await eventually(made_again, timeout_s=60, what=f"{topic} to be made again")
    finally:
        await admin.close()


def test_two_processes_never_share_a_store_file(tmp_path: Path) -> None:
    first = ConsentStore.open(tmp_path, NAME)
    assert first.path == tmp_path / f"{NAME}.0.sqlite3"
    other_process = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from kit.consent_store import ConsentStore; "
            "print(ConsentStore.open(Path(sys.argv[1]), sys.argv[2]).path)",
            str(tmp_path),
            NAME,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert other_process.stdout.strip() == str(tmp_path / f"{NAME}.1.sqlite3")
    second = ConsentStore.open(tmp_path, NAME)  # a second view of this process too
    assert second.path == tmp_path / f"{NAME}.1.sqlite3"
    first.close()
    # The slot a stopped (or killed: the kernel drops its lock) process left is taken again.
    again = ConsentStore.open(tmp_path, NAME)
    assert again.path == tmp_path / f"{NAME}.0.sqlite3"
    again.close()
    second.close()


@pytest.mark.integration
async def test_a_restart_resumes_from_its_offsets_and_sees_a_withdrawal_made_while_down(
    kafka: Broker, tmp_path: Path
) -> None:
    servers, topic = kafka.bootstrap_servers, new_topic()
    await ensure_topics(servers, [TopicSpec(topic, partitions=3, compacted=True)])
    subjects = [f"acc_r{i:02d}x" for i in range(40)]
    await produce(servers, topic, grants(subjects))
    first = view_of(servers, topic, tmp_path)
    await read_to_the_end(first)
    assert first.records_read == 40 and len(first) == 40
    assert first.state_of(subjects[0]).granted("location")
    path = first.store_path
    await first.stop()

    # While no view runs: one subject withdraws, one is new.
    await produce(
        servers,
        topic,
        grants([subjects[0]], 2, location=False) + grants(["acc_newcomerx"]),
    )
    second = view_of(servers, topic, tmp_path)
    assert second.store_path == path
    assert sum(second.resumed_from.values()) == 40  # the offsets the first one reached
    assert not second.ready
    await read_to_the_end(second)
    try:
        assert second.records_read == 2  # only what was published meanwhile
        assert second.rebuilds == 0, second.rebuild_reason
        assert not second.state_of(subjects[0]).granted("location")
        assert second.state_of(subjects[0]).version == 2
        assert second.state_of("acc_newcomerx").granted("location")
        assert all(second.state_of(s).granted("location") for s in subjects[1:])
        assert len(second) == 41

        # It keeps following, and what it follows is kept too.
        await produce(servers, topic, grants([subjects[1]], 2, location=False))

        async def followed() -> bool:
            return not second.state_of(subjects[1]).granted("location")

        await eventually(followed, timeout_s=30, what="the resumed view to follow")
    finally:
        await second.stop()
    third = view_of(servers, topic, tmp_path)
    await read_to_the_end(third)
    try:
        assert third.records_read == 0 and third.rebuilds == 0
        assert not third.state_of(subjects[1]).granted("location")
    finally:
        await third.stop()


@pytest.mark.integration
@pytest.mark.parametrize("records_after", [3, 30], ids=["shorter", "longer"])
async def test_a_topic_made_again_is_detected_and_the_store_rebuilt(
    kafka: Broker, tmp_path: Path, records_after: int
) -> None:
    servers, topic = kafka.bootstrap_servers, new_topic()
    await ensure_topics(servers, [TopicSpec(topic, partitions=1, compacted=True)])
    before = [f"acc_b{i:02d}x" for i in range(10)]
    await produce(servers, topic, grants(before))
    first = view_of(servers, topic, tmp_path)
    await read_to_the_end(first)
    await first.stop()

    await recreate(servers, topic, partitions=1)
    after = [f"acc_a{i:02d}x" for i in range(records_after)]
    await produce(servers, topic, grants(after))
    # Shorter: the old offset is past the new end. Longer: the record at the old last
    # offset is another one (another timestamp).
    second = view_of(servers, topic, tmp_path)
    await read_to_the_end(second)
    try:
        assert second.rebuilds == 1
        assert "made again" in (second.rebuild_reason or "")
        assert set(second.snapshot()) == set(after)
        assert not second.state_of(before[0]).granted("location")
    finally:
        await second.stop()


@pytest.mark.integration
async def test_another_cluster_is_detected_and_the_store_rebuilt(
    kafka: Broker, outage_kafka: LocalKafka, tmp_path: Path
) -> None:
    topic = new_topic()
    await ensure_topics(kafka.bootstrap_servers, [TopicSpec(topic, partitions=1, compacted=True)])
    await produce(kafka.bootstrap_servers, topic, grants(["acc_c1x", "acc_c2x"]))
    first = view_of(kafka.bootstrap_servers, topic, tmp_path)
    await read_to_the_end(first)
    await first.stop()

    # The same topic name on another cluster, longer than the first: only the cluster id
    # tells them apart before the records do.
    other = outage_kafka.bootstrap_servers
    await ensure_topics(other, [TopicSpec(topic, partitions=1, compacted=True)])
    await produce(other, topic, grants(["acc_c3x", "acc_c4x", "acc_c5x"]))
    second = view_of(other, topic, tmp_path)
    await read_to_the_end(second)
    try:
        assert second.rebuilds == 1
        assert "cluster id" in (second.rebuild_reason or "")
        assert set(second.snapshot()) == {"acc_c3x", "acc_c4x", "acc_c5x"}
    finally:
        await second.stop()


@pytest.mark.integration
async def test_records_deleted_before_the_store_read_them_make_it_rebuild(
    kafka: Broker, tmp_path: Path
) -> None:
    servers, topic = kafka.bootstrap_servers, new_topic()
    # Kafka deletes records only from a topic that deletes too (retention as well as
    # compaction): an operator's DeleteRecords, or retention on such a topic.
    spec = TopicSpec(topic, partitions=1, config={"cleanup.policy": "compact,delete"})
    await ensure_topics(servers, [spec])
    await produce(servers, topic, grants([f"acc_d{i}x" for i in range(5)]))
    first = view_of(servers, topic, tmp_path)
    await read_to_the_end(first)
    await first.stop()
    await produce(servers, topic, grants([f"acc_d{i}x" for i in range(5, 10)]))
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(topic, 0): RecordsToDelete(8)})
    finally:
        await admin.close()

    second = view_of(servers, topic, tmp_path)
    await read_to_the_end(second)
    try:
        assert second.rebuilds == 1
        assert "records it had not read are gone" in (second.rebuild_reason or "")
        assert set(second.snapshot()) == {"acc_d8x", "acc_d9x"}
    finally:
        await second.stop()


@pytest.mark.integration
async def test_a_store_last_caught_up_longer_ago_than_tombstones_are_kept_is_rebuilt(
    kafka: Broker, tmp_path: Path
) -> None:
    servers, topic = kafka.bootstrap_servers, new_topic()
    retention_ms = 1500
    await ensure_topics(
        servers,
        [
            TopicSpec(
                topic,
                partitions=1,
                compacted=True,
                config={"delete.retention.ms": str(retention_ms)},
            )
        ],
    )
    await produce(servers, topic, grants(["acc_e1x", "acc_e2x"]))
    first = view_of(servers, topic, tmp_path)
    await read_to_the_end(first)
    await first.stop()
    store = ConsentStore.open(tmp_path, NAME)
    caught_up = int(store.meta("synced_at") or 0)
    store.close()
    assert caught_up > 0
    # A compaction after that long may have removed a tombstone the store never saw.
    await asyncio.sleep(max(0.0, (caught_up + retention_ms) / 1000 - time.time()) + 0.2)
    await produce(servers, topic, grants(["acc_e3x"]))

    second = view_of(servers, topic, tmp_path)
    await read_to_the_end(second)
    try:
        assert second.rebuilds == 1
        assert "delete.retention.ms" in (second.rebuild_reason or "")
        assert second.records_read == 3  # read again from the beginning
        assert set(second.snapshot()) == {"acc_e1x", "acc_e2x", "acc_e3x"}
    finally:
        await second.stop()


@pytest.mark.integration
async def test_the_hot_path_answers_as_the_whole_state_does(kafka: Broker, tmp_path: Path) -> None:
    servers, topic = kafka.bootstrap_servers, new_topic()
    await ensure_topics(servers, [TopicSpec(topic, partitions=1, compacted=True)])
    await produce(
        servers,
        topic,
        [
            ("acc_h1x", state_record("acc_h1x", 1, location=True, marketing__price_drop=False)),
            (
                "acc_h2x",
                state_record(
                    "acc_h2x",
                    2,
                    cross_border__transfer_to_rcp_a=True,
                    cross_border__transfer_to_rcp_b=False,
                ),
            ),
        ],
    )
    view = view_of(servers, topic, tmp_path)
    await read_to_the_end(view)
    try:
        for subject in ("acc_h1x", "acc_h2x", "acc_unknownx"):
            whole = view.state_of(subject)
            for purpose in sorted(view.consentable - {"cross_border.transfer"}):
                assert view.granted(subject, purpose) is whole.granted(purpose)
            for recipient in ("rcp_a", "rcp_b", "rcp_c"):
                asked = whole.granted("cross_border.transfer", recipient_id=recipient)
                assert (
                    view.granted(subject, "cross_border.transfer", recipient_id=recipient) is asked
                )
                assert view.granted(subject, f"cross_border.transfer:{recipient}") is asked
            assert view.policy_sequence_agreed(subject) == whole.policy_sequence_agreed
            with pytest.raises(NotAConsent):
                view.granted(subject, "order.fulfilment")
            with pytest.raises(ValueError, match="per recipient"):
                view.granted(subject, "cross_border.transfer")
        assert view.granted("acc_h1x", "location")
        assert view.granted("acc_h2x", "cross_border.transfer", recipient_id="rcp_a")
    finally:
        await view.stop()


def test_a_file_keeps_its_rows_and_one_of_another_layout_starts_empty(tmp_path: Path) -> None:
    store = ConsentStore.open(tmp_path, NAME)
    store.apply(
        {"acc_k1x": ("location", 3, '{"version": 1}'), "acc_k2x": ("", None, "{}")},
        {},
    )
    store.close()
    reopened = ConsentStore.open(tmp_path, NAME)
    assert reopened.consent("acc_k1x") == (frozenset({"location"}), 3)
    assert reopened.consent("acc_k2x") == (frozenset(), None)
    assert reopened.get("acc_k1x") == {"version": 1}
    reopened.apply({"acc_k1x": None}, {})  # a tombstone
    assert reopened.consent("acc_k1x") is None and reopened.get("acc_k1x") is None
    reopened.set_meta(schema="0")  # as an older release would have left it
    reopened.close()
    rebuilt = ConsentStore.open(tmp_path, NAME)
    assert rebuilt.count() == 0 and rebuilt.consent("acc_k2x") is None
    rebuilt.close()
