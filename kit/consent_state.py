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
- :class:`ConsentStateView` reads every partition of the topic from the beginning, without
  a consumer group (assign + seek to beginning), keeps the latest state per key (last by
  offset, as compaction does; a tombstone, a null value, forgets the subject), then keeps
  following. :attr:`ConsentStateView.ready` turns true once it reached the end offsets it
  saw at start. :meth:`ConsentStateView.state_of` answers for any subject: one it never saw
  has granted nothing.

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
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pydantic import ValidationError

from kit.background import BackgroundLoop
from kit.catalogue import Catalogue, default_catalogue
from kit.events import Event
from kit.kafka import METADATA_MAX_AGE_MS, REQUEST_TIMEOUT_MS, current_cluster
from kit.outage import OUTAGE, is_broker_failure

__all__ = [
    "CONSENTABLE_KINDS",
    "CONSENT_STATE_EVENT",
    "CROSS_BORDER_PURPOSE",
    "ConsentEntry",
    "ConsentStateView",
    "NotAConsent",
    "SubjectConsent",
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
        if recipient_id is None:
            purpose, recipient_id = split_key(purpose)
        if purpose not in self.consentable:
            raise NotAConsent(
                f"{purpose!r} is not a consent: basic purposes are covered by agreeing to "
                "the privacy policy, legal ones by law, and unknown ones are never allowed"
            )
        entry = self.entries.get(state_key(purpose, recipient_id))
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


class ConsentStateView(BackgroundLoop):
    """Every subject's consent state, materialised from the compacted topic alone.

    ``start()`` begins reading (assign every partition, seek to the beginning, no consumer
    group, so nothing is committed and every instance sees the whole topic); ``stop()``
    ends it. While Kafka is unreachable the view keeps what it has and retries; it resumes
    from the offsets it reached. Partitions added to the topic later are read from their
    beginning. Until the topic exists the view is not ready and holds nothing.
    """

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        topic: str,
        catalogue: Catalogue | None = None,
        name: str = "consent-state-view",
        retry_delay_s: float = 0.5,
        max_backoff_s: float = 5.0,
    ) -> None:
        super().__init__(name)
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.consentable = consentable_purposes(catalogue or default_catalogue())
        self.retry_delay_s = retry_delay_s
        self.max_backoff_s = max_backoff_s
        self.records_read = 0
        self.skipped = 0
        self.last_error: str | None = None
        self._states: dict[str, SubjectConsent] = {}
        self._positions: dict[TopicPartition, int] = {}
        self._targets: dict[TopicPartition, int] | None = None
        self._ready = asyncio.Event()

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
        state = self._states.get(subject)
        if state is None:
            return SubjectConsent(subject=subject, consentable=self.consentable)
        return state

    def snapshot(self) -> dict[str, SubjectConsent]:
        """Every known subject's state (a copy)."""
        return dict(self._states)

    def __len__(self) -> int:
        return len(self._states)

    # -- the loop ---------------------------------------------------------------------
    async def run(self) -> None:
        backoff = self.retry_delay_s
        while not self.stopping:
            consumer = AIOKafkaConsumer(
                **current_cluster().client_options(),
                bootstrap_servers=self.bootstrap_servers,
                client_id=self.name,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                request_timeout_ms=REQUEST_TIMEOUT_MS * 4,
                metadata_max_age_ms=METADATA_MAX_AGE_MS,
            )
            try:
                await consumer.start()
                OUTAGE.recovered(self.name)
                await self._follow(consumer)
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
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            for partition, records in batches.items():
                for record in records:
                    self._apply(record)
                self._positions[partition] = records[-1].offset + 1
            if not self.ready:
                await self._check_caught_up(consumer)
            self.last_error = None

    async def _assign(
        self, consumer: AIOKafkaConsumer, partitions: frozenset[TopicPartition]
    ) -> None:
        ordered = sorted(partitions, key=lambda tp: tp.partition)
        consumer.assign(ordered)
        new = [tp for tp in ordered if tp not in self._positions]
        for tp in ordered:
            if tp in self._positions:
                consumer.seek(tp, self._positions[tp])
        if new:
            await consumer.seek_to_beginning(*new)
        if not self.ready:
            ends = await consumer.end_offsets(new) if new else {}
            self._targets = {**(self._targets or {}), **ends}

    async def _check_caught_up(self, consumer: AIOKafkaConsumer) -> None:
        if self._targets is None:
            return
        for tp, end in self._targets.items():
            if end > 0 and await consumer.position(tp) < end:
                return
        self._ready.set()
        logger.info(
            "%s is ready: %d subjects from %d records", self.name, len(self), self.records_read
        )

    def _apply(self, record: ConsumerRecord[Any, Any]) -> None:
        self.records_read += 1
        key = record.key.decode() if isinstance(record.key, bytes) else None
        if record.value is None:  # a tombstone: the subject's state is gone
            if key is not None:
                self._states.pop(key, None)
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
        self._states[state.subject] = state
