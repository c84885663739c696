"""Retention endpoint: run the sweep now (staff with ``admin:policy``).

The sweep measures periods against ``request.app.state.retention_clock()`` (the current
time; tests replace it to move the clock). The route takes no time from the caller: no one
can make data expire early over HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from kit.app import ContextDep
from kit.auth import Principal, Scope, require
from kit.errors import Forbidden
from kit.models import utcnow
from services.orders.dependencies import OrdersSettings
from services.orders.retention import service
from services.orders.retention.schemas import SweepReport

router = APIRouter(tags=["retention"])


async def policy_admin(principal: Annotated[Principal, require(Scope.ADMIN_POLICY)]) -> Principal:
    if principal.kind != "staff":  # admin scopes are staff-only already; never rely on one check
        raise Forbidden("only staff run the retention sweep")
    return principal


async def retention_clock(request: Request) -> Callable[[], datetime]:
    clock: Callable[[], datetime] = getattr(request.app.state, "retention_clock", utcnow)
    return clock


PolicyAdmin = Annotated[Principal, Depends(policy_admin)]
ClockDep = Annotated[Callable[[], datetime], Depends(retention_clock)]


@router.post(
    "/admin/retention/sweep",
    response_model=SweepReport,
    summary="Delete expired personal fields of orders and anonymise orders left without any",
)
async def sweep(
    context: ContextDep, settings: OrdersSettings, clock: ClockDep, principal: PolicyAdmin
) -> SweepReport:
    return await service.run_sweep(
        context.database,
        events=context.events,
        catalogue=context.catalogue,
        now=clock(),
        batch_size=settings.retention_sweep_batch_size,
    )
