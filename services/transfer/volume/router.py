"""The year's cross-border volume for administrators (OB-L-7)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from kit.auth import Principal, Scope, require
from kit.db import ReadSessionDep
from kit.models import utcnow
from services.transfer.dependencies import TodayDep
from services.transfer.volume import service
from services.transfer.volume.schemas import VolumeView

router = APIRouter(prefix="/volume", tags=["volume"])
Admin = Annotated[Principal, require(Scope.ADMIN_TRANSFERS)]


@router.get(
    "",
    response_model=VolumeView,
    summary="Persons whose data went abroad this year, the basis it needs, and alerts",
)
async def volume(
    session: ReadSessionDep,
    admin: Admin,
    today: TodayDep,
    year: Annotated[int | None, Query(ge=2000, le=9999, description="default: this year")] = None,
) -> VolumeView:
    return await service.volume_view(session, year=year or today.year, now=utcnow())
