"""Order endpoints: place an order, and the owner's list and view."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Response, status

from kit.app import ContextDep
from kit.db import ReadsDep, SessionDep
from services.orders.dependencies import OrdersSettings, Reader, Writer
from services.orders.orders import service
from services.orders.orders.schemas import OrderCreate, OrderPage, OrderView
from services.orders.security.rules import Thresholds

router = APIRouter(prefix="/orders", tags=["orders"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="a retry with the same key and body returns the same order (200); "
        "the same key with another body is 409. Keys are per user.",
    ),
]


@router.post(
    "",
    response_model=OrderView,
    status_code=status.HTTP_201_CREATED,
    summary="Place an order",
    responses={200: {"model": OrderView, "description": "a retry: the order placed before"}},
)
async def place_order(
    body: OrderCreate,
    *,
    response: Response,
    session: SessionDep,
    context: ContextDep,
    principal: Writer,
    settings: OrdersSettings,
    idempotency_key: IdempotencyKey = None,
) -> OrderView:
    placed = await service.place_order(
        session,
        cipher=context.cipher,
        events=context.events,
        catalogue=context.catalogue,
        buyer_id=principal.subject,
        buyer_verified=principal.verified,
        request=body,
        idempotency_key=idempotency_key,
        fraud_thresholds=Thresholds.of(settings),
    )
    if not placed.created:
        response.status_code = status.HTTP_200_OK
    return placed.order


@router.get("", response_model=OrderPage, summary="The caller's orders, newest first")
async def list_orders(
    reads: ReadsDep,  # Core statements, no session; no write lock on SQLite
    context: ContextDep,
    principal: Reader,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE_SIZE)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> OrderPage:
    return await service.list_orders(
        reads,
        cipher=context.cipher,
        catalogue=context.catalogue,
        buyer_id=principal.subject,
        limit=limit,
        cursor=cursor,
    )


@router.get("/{order_id}", response_model=OrderView, summary="One of the caller's orders")
async def get_order(
    order_id: Annotated[str, Path(max_length=40)],
    reads: ReadsDep,
    context: ContextDep,
    principal: Reader,
) -> OrderView:
    return await service.get_order(
        reads,
        cipher=context.cipher,
        catalogue=context.catalogue,
        buyer_id=principal.subject,
        order_id=order_id,
    )
