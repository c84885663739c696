"""What the transfer routers share: this service's settings, review rules, the day, and
the checks a transfer is decided by."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import Depends, Request

from kit.app import ContextDep
from kit.clock import china_today
from services.transfer.config import Settings
from services.transfer.recipients.service import ReviewRules
from services.transfer.transfers.service import Checks
from services.transfer.transfers.worker import current_checks, review_rules


async def transfer_settings(context: ContextDep) -> Settings:
    settings = context.settings
    assert isinstance(settings, Settings)
    return settings


SettingsDep = Annotated[Settings, Depends(transfer_settings)]


async def _rules(settings: SettingsDep) -> ReviewRules:
    return review_rules(settings)


async def _today() -> date:
    """Legal dates (review due, assessments) are counted in Chinese calendar days."""
    return china_today()


async def _checks(request: Request, settings: SettingsDep) -> Checks:
    return current_checks(request.app, settings)


RulesDep = Annotated[ReviewRules, Depends(_rules)]
TodayDep = Annotated[date, Depends(_today)]
ChecksDep = Annotated[Checks, Depends(_checks)]
