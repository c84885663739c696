"""Consent is state, published (design principle 4): the consent state of every subject,
materialised from the compacted consent-state topic alone.

The consent service writes, after every grant or withdrawal and in the same transaction,
the subject's whole current state as one :data:`CONSENT_STATE_EVENT` to the compacted
topic ``consent.state`` (behind the deployment's prefix), keyed by the subject. Kafka keeps
the latest value of each key, so the topic alone is enough to rebuild every subject's
state; the gateway and the transfer service read it through :class:`ConsentStateView` and
keep enforcing consent while the consent service is down.

- :class:`SubjectConsent` is one subject's state: consent key -> :class:`ConsentEntry`
  (granted, changed_at). :meth:`SubjectConsent.to_data` / :meth:`SubjectConsent.from_data`
  are the event's ``data`` (ids, purposes, booleans and times: no personal data), so the
  writer and the readers share one definition.
- A consent key is a purpose id (``location``), or for a cross-border transfer, which is
  consented per overseas recipient, ``cross_border.transfer:<recipient_id>``
  (:func:`state_key`).
- :class:`ConsentStateView` reads every partition of the topic without a consumer group
  (assign + seek), keeps the latest state per key (last by offset, as compaction does; a
  tombstone, a null value, forgets the subject) in a :class:`~kit.consent_store.ConsentStore`
  (a SQLite file of the process's own, resumed from its offsets at the next start, or
  memory), then keeps following. :attr:`ConsentStateView.ready` turns true once it reached
  the end offsets it saw at start. :meth:`ConsentStateView.state_of` answers for any
  subject: one it never saw has granted nothing; :meth:`ConsentStateView.granted` and
  :meth:`ConsentStateView.policy_sequence_agreed` answer the consent checks without
  reading the whole state.

Decided (OB-0-1, OB-0-2): only *consentable* purposes, the catalogue's ``additional`` and
``separate`` ones, are consents. :meth:`SubjectConsent.granted` raises :class:`NotAConsent`
for a ``basic`` or ``legal`` purpose (covered by agreeing to the policy, or imposed by
law) and for a purpose the catalogue does not know, instead of answering True or False:
a caller that asks the consent view about a basic function has a bug, and a withdrawn
additional purpose can never be read as blocking a basic one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import OffsetOutOfRangeError
from pydantic import ValidationError

from kit.background import BackgroundLoop
from kit.catalogue import Catalogue, default_catalogue
from kit.consent_store import SEPARATOR, ConsentStore, Position, Row
from kit.events import Event
from kit.kafka import METADATA_MAX_AGE_MS, REQUEST_TIMEOUT_MS, current_cluster, new_admin
from kit.outage import OUTAGE, is_broker_failure

__all__ = [
    "CONSENTABLE_KINDS",
    "CONSENT_STATE_EVENT",
    "CROSS_BORDER_PURPOSE",
    "ConsentEntry",
    "ConsentStateView",
    "NotAConsent",
    "StoreMismatch",
    "SubjectConsent",
    "consent_key",
    "consentable_purposes",
    "split_key",
    "state_key",
]

logger = logging.getLogger("kit.consent_state")

CONSENT_STATE_EVENT: Final = "com.signature.consent.state.v1"
#: The purpose consented per overseas recipient (PIPL art. 39, OB-4-5).
CROSS_BORDER_PURPOSE: Final = "cross_border.transfer"
#: Purpose kinds that are consents; ``basic`` and ``legal`` purposes are not.
CONSENTABLE_KINDS: Final = frozenset({"additional", "separate"})
_RECIPIENT_SEPARATOR: Final = ":"


class NotAConsent(ValueError):
    """Asked about a purpose that is not a consent (basic, legal or unknown)."""


def consentable_purposes(catalogue: Catalogue) -> frozenset[str]:
    """The catalogue's purposes that need a consent: ``additional`` and ``separate``."""
    return frozenset(p.id for p in catalogue.purposes if p.kind in CONSENTABLE_KINDS)


def state_key(purpose: str, recipient_id: str | None = None) -> str:
    """The consent key: the purpose, or ``cross_border.transfer:<recipient_id>``."""
    if purpose == CROSS_BORDER_PURPOSE:
        if not recipient_id:
            raise ValueError("cross-border consent is per recipient: name the recipient")
        return f"{purpose}{_RECIPIENT_SEPARATOR}{recipient_id}"
    if recipient_id is not None:
        raise ValueError(f"{purpose!r} is not consented per recipient")
    return purpose


def split_key(key: str) -> tuple[str, str | None]:
    """``(purpose, recipient_id)`` of a consent key (the inverse of :func:`state_key`)."""
    purpose, separator, recipient_id = key.partition(_RECIPIENT_SEPARATOR)
    return purpose, (recipient_id if separator else None)


def consent_key(consentable: frozenset[str], purpose: str, recipient_id: str | None) -> str:
    """The key a consent question asks about (``purpose`` may be a whole key). Raises
    :class:`NotAConsent` for a purpose that is not a consent, ``ValueError`` for a
    cross-border question without a recipient."""
    if recipient_id is None:
        purpose, recipient_id = split_key(purpose)
    if purpose not in consentable:
        raise NotAConsent(
            f"{purpose!r} is not a consent: basic purposes are covered by agreeing to "
            "the privacy policy, legal ones by law, and unknown ones are never allowed"
        )
    return state_key(purpose, recipient_id)


@dataclass(frozen=True)
class ConsentEntry:
    """One consent's current value: granted or not, and when that was decided."""

    granted: bool
    changed_at: datetime


@dataclass(frozen=True)
class SubjectConsent:
    """A subject's current consents. ``version`` counts the subject's changes (0: none)."""

    subject: str
    consentable: frozenset[str]
    version: int = 0
    entries: Mapping[str, ConsentEntry] = field(default_factory=dict)
    # The policy version the subject last agreed to, and its publication sequence: a
    # reader compares it with the newest major version in effect to ask for renewal.
    policy_version_agreed: str | None = None
    policy_sequence_agreed: int | None = None

    def granted(self, purpose: str, *, recipient_id: str | None = None) -> bool:
        """Whether the subject currently grants ``purpose`` (for cross-border transfers,
        to ``recipient_id``; ``cross_border.transfer:<id>`` is accepted too). Never granted
        unless a grant was recorded. Raises :class:`NotAConsent` for a purpose that is not
        a consent, ``ValueError`` for a cross-border question without a recipient."""
        entry = self.entries.get(consent_key(self.consentable, purpose, recipient_id))
        return entry is not None and entry.granted

    def granted_recipients(self) -> frozenset[str]:
        """The overseas recipients the subject currently consents to transfers to."""
        return frozenset(
            recipient
            for key, entry in self.entries.items()
            for purpose, recipient in (split_key(key),)
            if purpose == CROSS_BORDER_PURPOSE and recipient and entry.granted
        )

    def to_data(self) -> dict[str, Any]:
        """The state event's ``data``: version, key -> {granted, changed_at}, and the
        policy version agreed to."""
        return {
            "version": self.version,
            "consents": {
                key: {"granted": entry.granted, "changed_at": entry.changed_at.isoformat()}
                for key, entry in sorted(self.entries.items())
            },
            "policy": {
                "version_agreed": self.policy_version_agreed,
                "sequence_agreed": self.policy_sequence_agreed,
            },
        }

    @classmethod
    def from_data(
        cls, subject: str, data: Mapping[str, Any], *, consentable: frozenset[str]
    ) -> SubjectConsent:
        """The state carried by a state event's ``data`` (``ValueError`` if malformed)."""
        consents = data.get("consents")
        version = data.get("version", 0)
        if not isinstance(consents, Mapping) or not isinstance(version, int):
            raise ValueError("a consent state holds a version and a consents object")
        entries: dict[str, ConsentEntry] = {}
        for key, value in consents.items():
            if not isinstance(value, Mapping) or not isinstance(value.get("granted"), bool):
                raise ValueError(f"consent {key!r} is malformed")
            changed_at = datetime.fromisoformat(str(value.get("changed_at")))
            if changed_at.tzinfo is None:
                raise ValueError(f"consent {key!r} has a naive changed_at")
            entries[str(key)] = ConsentEntry(granted=value["granted"], changed_at=changed_at)
        policy = data.get("policy") or {}
        agreed = policy.get("version_agreed") if isinstance(policy, Mapping) else None
        sequence = policy.get("sequence_agreed") if isinstance(policy, Mapping) else None
        return cls(
            subject=subject,
            consentable=consentable,
            version=version,
            entries=entries,
            policy_version_agreed=agreed if isinstance(agreed, str) else None,
            policy_sequence_agreed=sequence if isinstance(sequence, int) else None,
        )


class StoreMismatch(Exception):
    """The store no longer matches the topic (another cluster, a topic made again, records
    gone that the store had not read): it must be rebuilt from the beginning."""


class ConsentStateView(BackgroundLoop):
    """Every subject's consent state, materialised from the compacted topic alone.

    ``start()`` begins reading (assign every partition, no consumer group, so nothing is
    committed and every instance sees the whole topic); ``stop()`` ends it. While Kafka is
    unreachable the view keeps what it has and retries; it resumes from the offsets it
    reached. Partitions added to the topic later are read from their beginning. Until the
    topic exists the view is not ready and holds nothing.

    The subjects live in a :class:`~kit.consent_store.ConsentStore`: with ``store_dir``, a
    SQLite file of this process's own that survives restarts, so a restart reads only
    what was published since (a withdrawal published meanwhile included) and is ready
    once it reached the end offsets it saw at start; without, in memory, read from the
    beginning at every start. Before resuming from the file the view checks, at every
    connection to Kafka, that it still describes the topic, and else empties it and reads
    from the beginning (:attr:`rebuilds`, :attr:`rebuild_reason`):

    - the cluster id the file was written from is the cluster's;
    - the topic exists, with every partition the file has read, each ending at or after
      the offset the file reached and beginning at or before it (records deleted before
      the view read them are not silently skipped);
    - the last record the file read of each partition is still the one at that offset (same
      timestamp): a topic deleted and made again, which grew past the old offsets, differs
      there (a record compacted away since proves nothing either way and is accepted);
    - the file was last caught up with the topic (or began reading it from the beginning)
      less than the topic's ``delete.retention.ms`` ago: compaction may remove a tombstone
      after that long, and a view resuming later could keep a subject the topic forgot.
      When that setting cannot be read the file is rebuilt (correct, only slower).

    While running, an offset out of range (the topic deleted or truncated under it) is
    handled the same way.
    """

    #: How often a caught-up view with nothing new records that it is still caught up.
    SYNC_EVERY_MS: Final = 10_000

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        topic: str,
        catalogue: Catalogue | None = None,
        name: str = "consent-state-view",
        store_dir: Path | None = None,
        retry_delay_s: float = 0.5,
        max_backoff_s: float = 5.0,
    ) -> None:
        super().__init__(name)
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.consentable = consentable_purposes(catalogue or default_catalogue())
        self.store_dir = store_dir
        self.retry_delay_s = retry_delay_s
        self.max_backoff_s = max_backoff_s
        self.records_read = 0
        self.skipped = 0
        self.rebuilds = 0
        self.rebuild_reason: str | None = None
        self.resumed_from: dict[int, int] = {}  # partition -> offset the file resumed from
        self.last_error: str | None = None
        self._store = self._open_store()
        self._positions: dict[TopicPartition, int] = {}
        self._unverified: dict[TopicPartition, Position] = {}
        self._load_positions()
        self._targets: dict[TopicPartition, int] | None = None
        self._synced_saved_ms = 0
        self._ready = asyncio.Event()

    # -- the store ----------------------------------------------------------------------
    def _open_store(self) -> ConsentStore:
        if self.store_dir is None:
            return ConsentStore.in_memory()
        store = ConsentStore.open(self.store_dir, self.name)
        if store.meta("topic") != self.topic:
            store.reset(topic=self.topic, synced_at=str(_now_ms()))
        return store

    def _load_positions(self) -> None:
        stored = self._store.positions()
        self._positions = {TopicPartition(self.topic, p): s.next_offset for p, s in stored.items()}
        self._unverified = {TopicPartition(self.topic, p): s for p, s in stored.items()}
        self.resumed_from = {p: s.next_offset for p, s in stored.items()}

    @property
    def store_path(self) -> Path | None:
        """The file this process holds (None: in memory)."""
        return self._store.path

    def _rebuild(self, reason: str, cluster_id: str | None = None) -> None:
        logger.warning("%s rebuilds its consent store from the beginning: %s", self.name, reason)
        self.rebuilds += 1
        self.rebuild_reason = reason
        meta = {"topic": self.topic, "synced_at": str(_now_ms())}
        if cluster_id is not None:
            meta["cluster_id"] = cluster_id
        self._store.reset(**meta)
        self._load_positions()
        self._targets = None
        self._ready.clear()

    async def _check_store(self) -> None:
        """Compare the store with the cluster and topic (see the class); rebuild on a
        mismatch."""
        admin = new_admin(self.bootstrap_servers)
        await admin.start()
        try:
            cluster_id = str((await admin.describe_cluster())["cluster_id"])
            # Listing every topic: asking for this one by name would create it.
            exists = self.topic in await admin.list_topics()
            retention_ms = await _delete_retention_ms(admin, self.topic) if exists else None
        finally:
            await admin.close()
        stored_cluster = self._store.meta("cluster_id")
        if not self._positions:
            if stored_cluster != cluster_id:
                self._store.set_meta(cluster_id=cluster_id)
            return
        if stored_cluster != cluster_id:
            self._rebuild(f"cluster id {cluster_id}, not {stored_cluster}", cluster_id)
        elif not exists:
            self._rebuild(f"topic {self.topic} is gone", cluster_id)
        elif retention_ms is None:
            self._rebuild("the topic's delete.retention.ms could not be read", cluster_id)
        else:
            synced = int(self._store.meta("synced_at") or 0)
            if _now_ms() - synced >= retention_ms:
                self._rebuild(
                    f"last caught up {(_now_ms() - synced) / 1000:.0f} s ago, longer than "
                    f"delete.retention.ms ({retention_ms} ms): tombstones may be gone",
                    cluster_id,
                )

    # -- reading the state ------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """True once the view has read up to the end offsets it saw when it started."""
        return self._ready.is_set()

    async def wait_ready(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for :attr:`ready`; return whether it is."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout_s)
        return self.ready

    def state_of(self, subject: str) -> SubjectConsent:
        """``subject``'s current consents; a subject never seen has granted nothing."""
        data = None if self._store.closed else self._store.get(subject)
        if data is None:
            return SubjectConsent(subject=subject, consentable=self.consentable)
        return SubjectConsent.from_data(subject, data, consentable=self.consentable)

    def granted(self, subject: str, purpose: str, *, recipient_id: str | None = None) -> bool:
        """``state_of(subject).granted(purpose, recipient_id=...)``, the same answers and
        errors, without reading the whole state (the consent checks' hot path)."""
        key = consent_key(self.consentable, purpose, recipient_id)
        found = None if self._store.closed else self._store.consent(subject)
        return found is not None and key in found[0]

    def policy_sequence_agreed(self, subject: str) -> int | None:
        """``state_of(subject).policy_sequence_agreed``, without reading the whole state."""
        found = None if self._store.closed else self._store.consent(subject)
        return None if found is None else found[1]

    def snapshot(self) -> dict[str, SubjectConsent]:
        """Every known subject's state (a copy; reads the whole store)."""
        return {
            subject: SubjectConsent.from_data(subject, data, consentable=self.consentable)
            for subject, data in self._store.subjects()
        }

    def __len__(self) -> int:
        return self._store.count()

    # -- the loop ---------------------------------------------------------------------
    def start(self) -> None:
        if self._store.closed:
            self._store = self._open_store()
            self._load_positions()
        super().start()

    async def stop(self, timeout_s: float | None = None) -> None:
        await super().stop(timeout_s)
        if self._store.path is not None:  # a file: release it for the next process
            self._ready.clear()
            self._store.close()

    async def run(self) -> None:
        backoff = self.retry_delay_s
        while not self.stopping:
            consumer = AIOKafkaConsumer(
                **current_cluster().client_options(),
                bootstrap_servers=self.bootstrap_servers,
                client_id=self.name,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="none",  # out of range: rebuild, never skip silently
                request_timeout_ms=REQUEST_TIMEOUT_MS * 4,
                metadata_max_age_ms=METADATA_MAX_AGE_MS,
            )
            try:
                await consumer.start()
                await self._check_store()
                OUTAGE.recovered(self.name)
                await self._follow(consumer)
                backoff = self.retry_delay_s
            except StoreMismatch as exc:
                self._rebuild(str(exc))
                backoff = self.retry_delay_s
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                if is_broker_failure(exc):  # told once per outage, not per attempt
                    OUTAGE.failed(self.name, exc)
                else:
                    logger.warning("%s restarts in %.1fs: %s", self.name, backoff, self.last_error)
                await self.pause(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(consumer.stop(), 10)

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        assigned: frozenset[TopicPartition] = frozenset()
        while not self.stopping:
            partitions = consumer.partitions_for_topic(self.topic)
            if not partitions:
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(self.topic)
                if not partitions:
                    await self.pause(self.retry_delay_s)
                    continue
            current = frozenset(TopicPartition(self.topic, p) for p in partitions)
            if current != assigned:
                await self._assign(consumer, current)
                assigned = current
            fetched_at = _now_ms()
            try:
                batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            except OffsetOutOfRangeError as exc:
                raise StoreMismatch(f"offsets out of range: {exc}") from exc
            self._save(batches, caught_up_at=self._caught_up_at(consumer, assigned, fetched_at))
            if not self.ready:
                await self._check_caught_up(consumer)
            self.last_error = None

    def _caught_up_at(
        self, consumer: AIOKafkaConsumer, assigned: frozenset[TopicPartition], fetched_at: int
    ) -> int | None:
        """``fetched_at`` if, after this fetch, every partition was read to its high
        watermark (and the view is ready): the store was caught up at that time."""
        if not self.ready:
            return None
        for tp in assigned:
            highwater = consumer.highwater(tp)
            if highwater is None or self._positions.get(tp, 0) < highwater:
                return None
        return fetched_at

    def _save(
        self,
        batches: Mapping[TopicPartition, list[ConsumerRecord[Any, Any]]],
        *,
        caught_up_at: int | None,
    ) -> None:
        changes: dict[str, Row | None] = {}
        moved: dict[int, Position] = {}
        for partition, fetched in batches.items():
            records = fetched
            expected = self._unverified.pop(partition, None)
            if expected is not None and records and records[0].offset == expected.last_offset:
                if records[0].timestamp != expected.last_timestamp:
                    raise StoreMismatch(
                        f"the record at {partition.topic}[{partition.partition}]@"
                        f"{expected.last_offset} is not the one the store read: the topic "
                        "was made again"
                    )
                records = records[1:]  # read before: the same record
            for record in records:
                self._apply(record, changes)
            if fetched:
                last = fetched[-1]
                self._positions[partition] = last.offset + 1
                moved[partition.partition] = Position(last.offset + 1, last.offset, last.timestamp)
        synced = None
        if caught_up_at is not None and (
            moved or caught_up_at - self._synced_saved_ms >= self.SYNC_EVERY_MS
        ):
            synced = self._synced_saved_ms = caught_up_at
        if changes or moved or synced is not None:
            self._store.apply(changes, moved, synced_at_ms=synced)

    async def _assign(
        self, consumer: AIOKafkaConsumer, partitions: frozenset[TopicPartition]
    ) -> None:
        ordered = sorted(partitions, key=lambda tp: tp.partition)
        lost = set(self._positions) - partitions
        if lost:
            raise StoreMismatch(
                f"the topic has no partition {sorted(tp.partition for tp in lost)}: it was "
                "made again"
            )
        consumer.assign(ordered)
        new = [tp for tp in ordered if tp not in self._positions]
        known = [tp for tp in ordered if tp in self._positions]
        if known:
            begins = await consumer.beginning_offsets(known)
            ends = await consumer.end_offsets(known)
            for tp in known:
                position = self._positions[tp]
                if position > ends[tp]:
                    raise StoreMismatch(
                        f"{tp.topic}[{tp.partition}] ends at {ends[tp]}, before the offset "
                        f"{position} the store reached: the topic was made again"
                    )
                if position < begins[tp]:
                    raise StoreMismatch(
                        f"{tp.topic}[{tp.partition}] begins at {begins[tp]}, after the offset "
                        f"{position} the store reached: records it had not read are gone"
                    )
                check = self._unverified.get(tp)
                if check is not None and check.last_offset >= begins[tp]:
                    consumer.seek(tp, check.last_offset)  # read it again to compare
                else:
                    self._unverified.pop(tp, None)
                    consumer.seek(tp, position)
        if new:
            await consumer.seek_to_beginning(*new)
        if not self.ready:
            ends = await consumer.end_offsets(ordered)
            self._targets = {**(self._targets or {}), **ends}

    async def _check_caught_up(self, consumer: AIOKafkaConsumer) -> None:
        # Not before the last record the file read is fetched again and compared (it is
        # there, or a later one of its key, unless compaction forgot a tombstone: older
        # than delete.retention.ms, rebuilt before this).
        if self._targets is None or self._unverified:
            return
        for tp, end in self._targets.items():
            if end > 0 and self._positions.get(tp, 0) < end:
                return
        self._ready.set()
        self._synced_saved_ms = 0  # record the catch-up at the next fetch
        logger.info(
            "%s is ready: %d records read%s",
            self.name,
            self.records_read,
            f", resumed from {self._store.path.name}"
            if self.resumed_from and self._store.path
            else "",
        )

    def _apply(self, record: ConsumerRecord[Any, Any], changes: dict[str, Row | None]) -> None:
        self.records_read += 1
        key = record.key.decode() if isinstance(record.key, bytes) else None
        if record.value is None:  # a tombstone: the subject's state is gone
            if key is not None:
                changes[key] = None
            return
        try:
            event = Event.from_json_bytes(record.value)
            if event.type != CONSENT_STATE_EVENT:
                raise ValueError(f"unexpected event type {event.type}")
            state = SubjectConsent.from_data(
                event.subject, event.data, consentable=self.consentable
            )
        except (ValidationError, ValueError) as exc:
            self.skipped += 1
            logger.warning(
                "%s skipped an unreadable record at %s[%d]@%d: %s",
                self.name,
                record.topic,
                record.partition,
                record.offset,
                exc,
            )
            return
        granted = SEPARATOR.join(sorted(k for k, entry in state.entries.items() if entry.granted))
        data = json.dumps(event.data, separators=(",", ":"))
        changes[state.subject] = (granted, state.policy_sequence_agreed, data)


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _delete_retention_ms(admin: AIOKafkaAdminClient, topic: str) -> int | None:
    """The topic's ``delete.retention.ms`` (its own or the broker's default), or None."""
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs={"delete.retention.ms": None})]
        )
    except Exception as exc:  # e.g. no DescribeConfigs permission: rebuild, correct if slow
        logger.warning("delete.retention.ms of %s not readable: %s", topic, exc)
        return None
    for response in responses:
        for resource in response.to_object().get("resources", []):
            for entry in resource.get("config_entries", []):
                if entry.get("config_names") == "delete.retention.ms" and entry.get("config_value"):
                    return int(entry["config_value"])
    return None
