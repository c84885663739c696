"""Security endpoints (staff with ``security:read``): flagged accounts, and one account's
data under ``security.anti_fraud``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from kit.app import ContextDep
from kit.db import SessionDep
from kit.fraud import FlagView, SecurityStaff
from kit.pagination import PageLimit, PageOffset
from services.identity.security import service
from services.identity.security.schemas import SecurityAccountView

router = APIRouter(tags=["security"])


@router.get(
    "/security/flags",
    response_model=list[FlagView],
    summary="Accounts flagged by identity's anti-fraud rules, most recent first",
)
async def flags(
    session: SessionDep, staff: SecurityStaff, limit: PageLimit = 50, offset: PageOffset = 0
) -> list[FlagView]:
    return await service.flags(session, limit=limit, offset=offset)


@router.get(
    "/security/accounts/{account_id}",
    response_model=SecurityAccountView,
    summary="A user's account, log data and flags under security.anti_fraud",
)
async def account(
    account_id: Annotated[str, Path(max_length=40)],
    session: SessionDep,
    context: ContextDep,
    staff: SecurityStaff,
) -> SecurityAccountView:
    return await service.account(
        session, cipher=context.cipher, catalogue=context.catalogue, account_id=account_id
    )
