"""Payment endpoints: staff set up providers; buyers pay and cancel; providers notify
(public, authenticated by signature); the security team reads refusals; staff run the
unpaid-order sweep (also scheduled)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from kit.app import ContextDep
from kit.db import SessionDep
from kit.fraud import SecurityStaff
from kit.models import utcnow
from services.orders.delivery.router import PartnerAdmin
from services.orders.dependencies import OrdersSettings, Reader, Writer
from services.orders.payments import service
from services.orders.payments.provider import ProviderApi
from services.orders.payments.schemas import (
    CancellationView,
    Notification,
    NotificationAnswer,
    PaymentStart,
    PaymentView,
    ProviderChoice,
    ProviderCreate,
    ProviderView,
    RefusalView,
    UnpaidSweepReport,
)
from services.orders.retention.router import ClockDep, PolicyAdmin

router = APIRouter(tags=["payments"])

OrderId = Annotated[str, Path(max_length=40)]
ProviderPath = Annotated[str, Path(max_length=40)]


async def payment_api(request: Request) -> ProviderApi:
    api: ProviderApi = request.app.state.payment_api
    return api


PaymentApi = Annotated[ProviderApi, Depends(payment_api)]


# --------------------------------------------------------------------------- staff


@router.post(
    "/admin/payment-providers",
    response_model=ProviderView,
    status_code=status.HTTP_201_CREATED,
    summary="Set up a payment provider (registered as a partner in identity) with its key",
)
async def register_provider(
    body: ProviderCreate, session: SessionDep, context: ContextDep, admin: PartnerAdmin
) -> ProviderView:
    return await service.register_provider(
        session, cipher=context.cipher, events=context.events, request=body, staff_id=admin.subject
    )


@router.get(
    "/admin/payment-providers",
    response_model=list[ProviderView],
    summary="The payment providers (a handful: not paged)",
)
async def list_providers(
    session: SessionDep, context: ContextDep, admin: PartnerAdmin
) -> list[ProviderView]:
    return await service.list_providers(session, cipher=context.cipher)


@router.post(
    "/admin/payment-providers/{provider_id}/revoke",
    response_model=ProviderView,
    summary="Stop a payment provider: no new payments, its notifications refused",
)
async def revoke_provider(
    provider_id: ProviderPath, session: SessionDep, context: ContextDep, admin: PartnerAdmin
) -> ProviderView:
    return await service.revoke_provider(
        session,
        cipher=context.cipher,
        events=context.events,
        provider_id=provider_id,
        staff_id=admin.subject,
    )


@router.get(
    "/admin/payments/refusals",
    response_model=list[RefusalView],
    summary="Refused payment notifications, newest first (the security team)",
)
async def list_refusals(
    session: SessionDep,
    staff: SecurityStaff,
    limit: Annotated[int, Query(ge=1, le=service.MAX_REFUSALS_PAGE)] = 50,
) -> list[RefusalView]:
    return await service.list_refusals(session, limit=limit)


@router.post(
    "/admin/payments/unpaid-sweep",
    response_model=UnpaidSweepReport,
    summary="Cancel the orders whose payment window ended (also scheduled)",
)
async def unpaid_sweep(
    session: SessionDep,
    context: ContextDep,
    settings: OrdersSettings,
    clock: ClockDep,
    admin: PolicyAdmin,
) -> UnpaidSweepReport:
    cancelled = await service.expire_unpaid(
        session,
        events=context.events,
        now=clock(),
        window_s=settings.payment_notification_window_s,
    )
    return UnpaidSweepReport(cancelled=cancelled)


# --------------------------------------------------------------------------- buyers


@router.get(
    "/payment-providers",
    response_model=list[ProviderChoice],
    summary="The wallets a buyer may pay with",
)
async def provider_choices(session: SessionDep, principal: Reader) -> list[ProviderChoice]:
    return await service.provider_choices(session)


@router.post(
    "/orders/{order_id}/payment",
    response_model=PaymentView,
    status_code=status.HTTP_201_CREATED,
    summary="Start paying for one of the caller's orders: the reference the wallet opens",
    responses={200: {"model": PaymentView, "description": "the payment started before"}},
)
async def start_payment(
    order_id: OrderId,
    body: PaymentStart,
    *,
    response: Response,
    session: SessionDep,
    context: ContextDep,
    settings: OrdersSettings,
    api: PaymentApi,
    principal: Writer,
) -> PaymentView:
    started = await service.start_payment(
        session,
        cipher=context.cipher,
        events=context.events,
        catalogue=context.catalogue,
        api=api,
        notify_base_url=settings.payment_notify_base_url,
        buyer_id=principal.subject,
        order_id=order_id,
        provider_id=body.provider_id,
        now=utcnow(),
    )
    if not started.created:
        response.status_code = status.HTTP_200_OK
    return started.payment


@router.get(
    "/orders/{order_id}/payment",
    response_model=PaymentView,
    summary="The payment of one of the caller's orders",
)
async def get_payment(order_id: OrderId, session: SessionDep, principal: Reader) -> PaymentView:
    return await service.get_payment(session, buyer_id=principal.subject, order_id=order_id)


@router.post(
    "/orders/{order_id}/cancellation",
    response_model=CancellationView,
    summary="Cancel one of the caller's orders before pick-up (a paid one is refunded)",
)
async def cancel_order(
    order_id: OrderId,
    *,
    session: SessionDep,
    context: ContextDep,
    settings: OrdersSettings,
    api: PaymentApi,
    principal: Writer,
) -> CancellationView:
    return await service.cancel_order(
        session,
        cipher=context.cipher,
        events=context.events,
        api=api,
        notify_base_url=settings.payment_notify_base_url,
        buyer_id=principal.subject,
        order_id=order_id,
        now=utcnow(),
    )


# --------------------------------------------------------------------------- providers

_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"description": "unknown provider or key, bad or missing signature, stale, replayed"},
    404: {"description": "no payment of this order at this provider"},
    409: {"description": "the order or payment is not in a state the notification fits"},
    422: {"description": "another reference, amount or currency than the payment's"},
}


@router.post(
    "/payments/notifications/{provider_id}",
    response_model=NotificationAnswer,
    summary="A payment provider's signed notification (no token: its signature decides)",
    responses=_REFUSALS,
)
async def notification(
    provider_id: ProviderPath,
    body: Notification,
    *,
    request: Request,
    session: SessionDep,
    context: ContextDep,
    settings: OrdersSettings,
) -> NotificationAnswer:
    return await service.handle_notification(
        session,
        events=context.events,
        provider_id=provider_id,
        headers=request.headers,
        notification=body,
        raw=await request.body(),  # what was signed, byte for byte
        now=utcnow(),
        window_s=settings.payment_notification_window_s,
    )
