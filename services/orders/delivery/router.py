"""Partner endpoints: staff assign partners; partners read their orders and report delivery."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from kit.app import ContextDep
from kit.auth import Principal, Scope, current_principal, require
from kit.db import SessionDep
from kit.errors import Forbidden
from services.orders.delivery import service
from services.orders.delivery.schemas import (
    AssignmentRequest,
    AssignmentView,
    DeliveryReport,
    DeliveryView,
    PartnerOrderPage,
    PartnerOrderView,
)
from services.orders.dependencies import OrdersSettings

router = APIRouter(tags=["partners"])

OrderId = Annotated[str, Path(max_length=40)]


async def partner_admin(
    principal: Annotated[Principal, require(Scope.ADMIN_PARTNERS)],
) -> Principal:
    if principal.kind != "staff":  # admin scopes are staff-only already; never rely on one check
        raise Forbidden("only staff assign partners")
    return principal


async def partner_duty(principal: Annotated[Principal, Depends(current_principal)]) -> service.Duty:
    return service.duty_of(principal)


PartnerAdmin = Annotated[Principal, Depends(partner_admin)]
PartnerDuty = Annotated[service.Duty, Depends(partner_duty)]


@router.put(
    "/admin/orders/{order_id}/partners",
    response_model=AssignmentView,
    summary="Assign the logistics partner and, for cross-border goods, the customs broker",
)
async def assign_partners(
    order_id: OrderId,
    body: AssignmentRequest,
    session: SessionDep,
    context: ContextDep,
    principal: PartnerAdmin,
) -> AssignmentView:
    return await service.assign_partners(
        session,
        events=context.events,
        catalogue=context.catalogue,
        order_id=order_id,
        request=body,
        staff_id=principal.subject,
    )


@router.get(
    "/partner/orders",
    response_model=PartnerOrderPage,
    response_model_exclude_unset=True,
    summary="The orders assigned to the calling partner, under its purpose, newest first",
)
async def list_partner_orders(
    *,
    session: SessionDep,
    context: ContextDep,
    settings: OrdersSettings,
    duty: PartnerDuty,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE_SIZE)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> PartnerOrderPage:
    return await service.list_partner_orders(
        session,
        cipher=context.cipher,
        events=context.events,
        catalogue=context.catalogue,
        duty=duty,
        limit=limit,
        cursor=cursor,
        virtual_number_prefix=settings.virtual_number_prefix,
        restrictions=context.restrictions,
    )


@router.get(
    "/partner/orders/{order_id}",
    response_model=PartnerOrderView,
    response_model_exclude_unset=True,
    summary="One order assigned to the calling partner (the privacy waybill or customs data)",
)
async def get_partner_order(
    order_id: OrderId,
    session: SessionDep,
    context: ContextDep,
    settings: OrdersSettings,
    duty: PartnerDuty,
) -> PartnerOrderView:
    return await service.get_partner_order(
        session,
        cipher=context.cipher,
        events=context.events,
        catalogue=context.catalogue,
        duty=duty,
        order_id=order_id,
        virtual_number_prefix=settings.virtual_number_prefix,
        restrictions=context.restrictions,
    )


@router.post(
    "/partner/orders/{order_id}/delivery",
    response_model=DeliveryView,
    summary="Report a delivery status (the order's logistics partner)",
)
async def report_delivery(
    order_id: OrderId,
    body: DeliveryReport,
    session: SessionDep,
    context: ContextDep,
    duty: PartnerDuty,
) -> DeliveryView:
    return await service.report_delivery(
        session, events=context.events, duty=duty, order_id=order_id, status=body.status
    )
