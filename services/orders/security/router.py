"""Security endpoints (staff with ``security:read``): accounts flagged by orders' rules,
and one account's orders under ``security.anti_fraud``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from kit.app import ContextDep
from kit.db import SessionDep
from kit.fraud import FlagView, SecurityStaff
from kit.pagination import PageLimit, PageOffset
from services.orders.security import service
from services.orders.security.schemas import SecurityOrdersView

router = APIRouter(tags=["security"])


@router.get(
    "/security/flags",
    response_model=list[FlagView],
    summary="Accounts flagged by orders' anti-fraud rules, most recent first",
)
async def flags(
    session: SessionDep, staff: SecurityStaff, limit: PageLimit = 50, offset: PageOffset = 0
) -> list[FlagView]:
    return await service.flags(session, limit=limit, offset=offset)


@router.get(
    "/security/accounts/{account_id}/orders",
    response_model=SecurityOrdersView,
    summary="A user's orders and flags under security.anti_fraud",
)
async def account_orders(
    account_id: Annotated[str, Path(max_length=40)],
    session: SessionDep,
    context: ContextDep,
    staff: SecurityStaff,
) -> SecurityOrdersView:
    return await service.account_orders(
        session, cipher=context.cipher, catalogue=context.catalogue, account_id=account_id
    )
