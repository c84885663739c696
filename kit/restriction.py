"""Restricted and storage-only subjects, learnt by every app (OB-L-2, OB-L-5).

The privacy center keeps, per subject, what the user restricted (PIPL art. 44: purposes
or data categories whose data is only stored from then on, until the user lifts it) and
whether the account was deleted with data left under a legal hold (NDSMR art. 24, PIPL
art. 47: that data is storage-only). After every change it publishes the subject's whole
state as one :data:`STATE_EVENT` to the compacted topic :data:`TOPIC` (keyed by the
subject; ids, purposes and categories only, no personal data).

- :class:`RestrictionState` is one subject's state; :meth:`RestrictionState.to_data` and
  :meth:`RestrictionState.from_data` are the event's ``data``, shared by writer and readers.
- :class:`Restrictions` is what the request path reads without I/O
  (``app.state.restrictions``); :meth:`Restrictions.refusal` answers whether processing
  ``subject``'s data under ``purpose`` (touching ``categories``) is refused, with the
  problem to answer: ``processing-restricted`` (403) or ``storage-only`` (403).
- :class:`RestrictionView` reads the topic from its beginning at every start (no consumer
  group, nothing committed: restrictions are few) and keeps following it. Its
  :attr:`RestrictionView.ready` turns true once it has read up to the end offsets the
  topic had when it first found it (until the consent service has made the topic, it is
  not ready); ``/readyz`` shows it as ``caught_up`` (:mod:`kit.app`), so an app is not
  taken for ready while it could still serve a restricted subject's data.

What stays allowed: under a restriction, the user's own rights (``rights.access``), so a
user can always read, export or lift; under a legal hold, the legal purposes of the
catalogue (the hold itself, ``legal.retention``; ``rights.access``; incident notices) and
security (``security.*``). Storage itself is never refused: nothing here deletes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from kit.background import BackgroundLoop
from kit.catalogue import Catalogue
from kit.errors import DomainError, Forbidden
from kit.events import Event
from kit.kafka import METADATA_MAX_AGE_MS, REQUEST_TIMEOUT_MS, current_cluster
from kit.outage import is_broker_failure

logger = logging.getLogger("kit.restriction")

STATE_EVENT: Final = "com.signature.consent.restriction.state.v1"
STATE_SOURCE: Final = "/consent"
#: The compacted topic (behind the deployment's prefix), keyed by subject.
TOPIC: Final = "consent.restrictions"
#: A restriction never blocks the user's own rights: reading, exporting, lifting it.
RIGHTS_PURPOSE: Final = "rights.access"
SECURITY_PREFIX: Final = "security."


class ProcessingRestricted(Forbidden):
    code, title = "processing-restricted", "Processing restricted"


class StorageOnly(Forbidden):
    code, title = "storage-only", "Storage only"


@dataclass(frozen=True)
class RestrictionState:
    """A subject's restrictions: purposes and categories only stored, and whether the
    account was deleted with data under a legal hold (everything storage-only)."""

    purposes: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    storage_only: bool = False

    @property
    def empty(self) -> bool:
        return not (self.purposes or self.categories or self.storage_only)

    def to_data(self) -> dict[str, Any]:
        return {
            "purposes": sorted(self.purposes),
            "categories": sorted(self.categories),
            "storage_only": self.storage_only,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> RestrictionState:
        purposes, categories = data.get("purposes", []), data.get("categories", [])
        storage_only = data.get("storage_only", False)
        if (
            not isinstance(purposes, list)
            or not isinstance(categories, list)
            or not all(isinstance(item, str) for item in [*purposes, *categories])
            or not isinstance(storage_only, bool)
        ):
            raise ValueError("a restriction state holds purposes, categories and storage_only")
        return cls(frozenset(purposes), frozenset(categories), storage_only)


def allowed_while_held(catalogue: Catalogue) -> frozenset[str]:
    """The purposes data under a legal hold may still be processed for: the catalogue's
    legal purposes and security."""
    return frozenset(
        purpose.id
        for purpose in catalogue.purposes
        if purpose.kind == "legal" or purpose.id.startswith(SECURITY_PREFIX)
    )


class Restrictions:
    """Every restricted or storage-only subject this app has learnt of."""

    def __init__(self, catalogue: Catalogue) -> None:
        self._states: dict[str, RestrictionState] = {}
        self.allowed_while_held = allowed_while_held(catalogue)

    def __len__(self) -> int:
        return len(self._states)

    def learn(self, subject: str, state: RestrictionState) -> None:
        if state.empty:
            self._states.pop(subject, None)
        else:
            self._states[subject] = state

    def __contains__(self, subject: str) -> bool:
        """Whether ``subject`` restricted anything or is held (the common case: not)."""
        return subject in self._states

    def state_of(self, subject: str) -> RestrictionState:
        return self._states.get(subject, RestrictionState())

    def refusal(
        self, subject: str, purpose: str, categories: Iterable[str] = ()
    ) -> DomainError | None:
        """The problem refusing processing of ``subject``'s data under ``purpose``
        (touching ``categories``), or None when it may go on."""
        state = self._states.get(subject)
        if state is None:
            return None
        if state.storage_only and purpose not in self.allowed_while_held:
            return StorageOnly(
                "this account was deleted and its remaining data is kept under a legal "
                f"hold: it is only stored, never processed for {purpose}",
                extra={"purpose": purpose},
            )
        if purpose == RIGHTS_PURPOSE:
            return None
        if purpose in state.purposes:
            return ProcessingRestricted(
                f"the user restricted processing for {purpose}: the data is only stored "
                "until they lift the restriction",
                extra={"purpose": purpose},
            )
        touched = sorted(state.categories & set(categories))
        if touched:
            return ProcessingRestricted(
                f"the user restricted processing of {', '.join(touched)}: the data is only "
                "stored until they lift the restriction",
                extra={"purpose": purpose, "categories": touched},
            )
        return None

    def check(self, subject: str, purpose: str, categories: Iterable[str] = ()) -> None:
        """Raise the refusal of :meth:`refusal`, if any."""
        refused = self.refusal(subject, purpose, categories)
        if refused is not None:
            raise refused


def state_of_event(event: Event) -> RestrictionState | None:
    """The state an event carries, or None for any other event (or another source)."""
    if event.type != STATE_EVENT or event.source != STATE_SOURCE:
        return None
    return RestrictionState.from_data(event.data)


class RestrictionView(BackgroundLoop):
    """Follows :data:`TOPIC` from its beginning into ``restrictions``."""

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        topic: str,
        restrictions: Restrictions,
        name: str = "restriction-view",
        retry_delay_s: float = 1.0,
    ) -> None:
        super().__init__(name)
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.restrictions = restrictions
        self.retry_delay_s = retry_delay_s
        #: per partition, the end offset to reach before :attr:`ready` (None: not known yet)
        self._targets: dict[TopicPartition, int] | None = None
        self._ready = False

    @property
    def ready(self) -> bool:
        """True once the view has read the topic up to the end offsets it saw first."""
        return self._ready

    async def _learn_targets(self, consumer: AIOKafkaConsumer) -> None:
        if self.topic not in await consumer.topics():
            return  # not made yet: asked again after the next fetch
        partitions = consumer.partitions_for_topic(self.topic)
        if not partitions:
            return  # metadata not there yet: asked again after the next fetch
        tps = [TopicPartition(self.topic, partition) for partition in sorted(partitions)]
        self._targets = dict(await consumer.end_offsets(tps))

    async def _check_caught_up(self, consumer: AIOKafkaConsumer) -> None:
        if self._targets is None:
            await self._learn_targets(consumer)
            if self._targets is None:
                return
        assigned = consumer.assignment()
        for tp, end in self._targets.items():
            if end > 0 and (tp not in assigned or await consumer.position(tp) < end):
                return
        self._ready = True
        logger.info("%s is ready: %d restricted subjects", self.name, len(self.restrictions))

    def apply(self, value: bytes | None) -> None:
        if value is None:
            return
        try:
            event = Event.model_validate_json(value)
            state = state_of_event(event)
        except (ValidationError, ValueError):
            logger.warning("skipping a malformed record on %s", self.topic)
            return
        if state is not None:
            self.restrictions.learn(event.subject, state)

    async def run(self) -> None:
        while not self.stopping:
            consumer = AIOKafkaConsumer(
                self.topic,
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
                while not self.stopping:
                    batches = await consumer.getmany(timeout_ms=500)
                    for records in batches.values():
                        for record in records:
                            self.apply(record.value)
                    if not self._ready:
                        await self._check_caught_up(consumer)
            except Exception as exc:
                if not is_broker_failure(exc):
                    logger.exception("%s failed; starting again", self.name)
                await self.sleep_unless_stopped(self.retry_delay_s)
            finally:
                await consumer.stop()
