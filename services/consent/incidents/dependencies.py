"""What the incident routes ask FastAPI for: the consent settings and the notifier."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from kit.app import ContextDep
from services.consent.config import Settings
from services.consent.incidents.notices import Notifier


async def consent_settings(context: ContextDep) -> Settings:
    assert isinstance(context.settings, Settings)
    return context.settings


SettingsDep = Annotated[Settings, Depends(consent_settings)]


async def notifier(context: ContextDep, settings: SettingsDep) -> Notifier:
    return Notifier(events=context.events, topic=settings.topic(settings.notifications_topic))


NotifierDep = Annotated[Notifier, Depends(notifier)]
