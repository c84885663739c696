"""Consumers of the consents domain.

- ``consent.guardianships`` (behind the topic prefix) reads identity's events and records
  each ``com.signature.identity.guardian.linked.v1`` as a guardianship (ward = the event's
  subject, guardian = ``data.guardian_account_id``), so that the guardian can grant
  consents for the minor, and each matched ``verification.completed`` as whether the
  subject is a minor, so that a token from before the verification cannot grant for a
  child (OB-2A-4). Other identity events are skipped.
"""

from __future__ import annotations

from kit.app import AppContext
from kit.consumer import EventConsumer
from services.consent.consents.service import IDENTITY_FACTS, record_identity_fact

GUARDIANSHIPS_GROUP = "consent.guardianships"
IDENTITY_EVENTS = "identity.events"


def consumers(context: AppContext) -> list[EventConsumer]:
    settings = context.settings
    return [
        EventConsumer(
            name=GUARDIANSHIPS_GROUP,
            topics=[settings.topic(IDENTITY_EVENTS)],
            database=context.database,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            handler=record_identity_fact,
            wants=lambda event: event.type in IDENTITY_FACTS,
        )
    ]
