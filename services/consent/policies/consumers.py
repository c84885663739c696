"""Policy consumers.

- ``consent.sign-up-agreements`` (behind the topic prefix) reads identity's events and
  records the agreement of each account a first sign-in opened (SMS code, mini-program):
  ``com.signature.identity.account.created.v1`` with ``data.policy_version``, the version
  the user agreed to on the sign-in screen, through the channel ``data.channel``. The
  agreement joins the subject's published state, as one made at ``/policy/agreements``
  does. A version that is unknown or replaced records nothing (logged by id): the user is
  asked to agree again. Other identity events are skipped.
"""

from __future__ import annotations

import logging
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from kit.app import AppContext
from kit.clock import china_today
from kit.consumer import EventConsumer
from kit.events import Event
from services.consent.config import Settings
from services.consent.consents import service as consents_service
from services.consent.policies import service

logger = logging.getLogger("services.consent.policies.consumers")

SIGN_UP_GROUP: Final = "consent.sign-up-agreements"
IDENTITY_EVENTS: Final = "identity.events"
ACCOUNT_CREATED: Final = "com.signature.identity.account.created.v1"
CHANNELS: Final = frozenset({"app", "web", "mini_program"})


def _wanted(event: Event) -> bool:
    return event.type == ACCOUNT_CREATED and isinstance(event.data.get("policy_version"), str)


def consumers(context: AppContext) -> list[EventConsumer]:
    settings = context.settings
    assert isinstance(settings, Settings)

    async def record_sign_up_agreement(session: AsyncSession, event: Event) -> None:
        if not _wanted(event):
            return
        channel = event.data.get("channel")
        try:
            await service.agree(
                session,
                events=context.events,
                subject=event.subject,
                version=str(event.data["policy_version"]),
                channel=channel if channel in CHANNELS else "app",
                today=china_today(),
            )
        except (service.PolicyVersionNotFound, service.OutdatedPolicyVersion):
            logger.warning("sign-up of %s agreed to no policy in force", event.subject)
            return
        await consents_service.publish_state(
            session,
            events=context.events,
            catalogue=context.catalogue,
            state_topic=settings.topic(settings.consent_state_topic),
            subject=event.subject,
        )

    return [
        EventConsumer(
            name=SIGN_UP_GROUP,
            topics=[settings.topic(IDENTITY_EVENTS)],
            database=context.database,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            handler=record_sign_up_agreement,
            wants=_wanted,
        )
    ]
