"""The transfer worker: resumes transfers awaiting consent and delivers the ready ones,
every ``worker_interval_s`` and at once after a commit that made a transfer ready.

It reads its collaborators from ``app.state`` at every run, so tests (and operators) can
swap them while the app runs:

- ``consent_granted(subject, recipient_id) -> bool``: the separate consent
  ``cross_border.transfer`` for that recipient (default: the :class:`ConsentStateView`
  over the compacted consent-state topic; while the view has not caught up, nothing is
  granted: fail closed);
- ``order_fetcher``: an :class:`~services.transfer.transfers.fetcher.OrderFetcher`;
- ``deliverer``: a :class:`~services.transfer.transfers.delivery.Deliverer`.

One run at a time per process (a lock); across processes a lease on each transfer keeps
two workers off the same one, and the idempotency key covers what a lease cannot.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from kit.app import AppContext
from kit.background import PeriodicTask
from kit.clock import china_today
from kit.outbox import EventWriter
from services.transfer.config import Settings
from services.transfer.recipients.service import ReviewRules
from services.transfer.transfers.service import (
    WAKE_WORKER,
    Checks,
    ConsentCheck,
    DeliveryPolicy,
    Outbound,
    deliver_due,
    egress_topic,
    resume_awaiting,
)


@dataclass(frozen=True)
class WorkerRun:
    resumed: int
    delivered: int


def review_rules(settings: Settings) -> ReviewRules:
    return ReviewRules(
        warning_days=settings.review_warning_days,
        assessment_interval_days=settings.assessment_interval_days,
    )


def delivery_policy(settings: Settings) -> DeliveryPolicy:
    return DeliveryPolicy(
        attempts_per_round=settings.delivery_attempts_per_round,
        backoff_s=settings.delivery_backoff_s,
        round_backoff_s=settings.delivery_round_backoff_s,
        max_round_backoff_s=settings.delivery_max_round_backoff_s,
        lease_s=settings.worker_lease_s,
        batch_size=settings.worker_batch_size,
    )


def current_checks(app: FastAPI, settings: Settings) -> Checks:
    """The checks as of now: today's date and ``app.state.consent_granted``."""
    consent_granted: ConsentCheck = app.state.consent_granted
    catalogue = app.state.context.catalogue
    return Checks(
        consent_granted=consent_granted,
        today=china_today(),
        rules=review_rules(settings),
        restrictions=getattr(app.state, "restrictions", None),
        sensitive_categories=frozenset(
            category.id for category in catalogue.data_categories if category.sensitive
        ),
    )


class TransferWorker:
    def __init__(self, app: FastAPI, context: AppContext, settings: Settings) -> None:
        self.app = app
        self.context = context
        self.settings = settings
        self.task = PeriodicTask(
            "transfer-worker", interval_s=settings.worker_interval_s, job=self.run_once
        )
        self._lock = asyncio.Lock()
        self._egress: dict[str, EventWriter] = {}
        context.database.on_commit(self._wake_after_commit)

    def _wake_after_commit(self, session: AsyncSession) -> None:
        if session.info.pop(WAKE_WORKER, False):
            self.task.wake()

    def egress_writer(self, recipient_id: str) -> EventWriter:
        """The outbox writer for a ``kafka`` recipient's egress topic (this service only)."""
        writer = self._egress.get(recipient_id)
        if writer is None:
            writer = EventWriter(
                source=f"/{self.settings.service_name}",
                topic=self.settings.topic(egress_topic(recipient_id)),
                personal_fields=self.context.catalogue.personal_field_names(),
            )
            self._egress[recipient_id] = writer
        return writer

    def outbound(self) -> Outbound:
        state = self.app.state
        return Outbound(
            catalogue=self.context.catalogue,
            cipher=self.context.cipher,
            fetcher=state.order_fetcher,
            deliverer=state.deliverer,
            egress=self.egress_writer,
            policy=delivery_policy(self.settings),
        )

    async def run_once(self) -> WorkerRun:
        async with self._lock:
            checks = current_checks(self.app, self.settings)
            resumed = await resume_awaiting(
                self.context.database,
                events=self.context.events,
                checks=checks,
                batch_size=self.settings.worker_batch_size,
            )
            delivered = await deliver_due(
                self.context.database,
                events=self.context.events,
                checks=checks,
                outbound=self.outbound(),
            )
            return WorkerRun(resumed=resumed, delivered=delivered)
