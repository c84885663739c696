"""Goods: the public list, and staff routes to add goods and discount codes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from kit.app import ContextDep
from kit.db import SessionDep
from kit.pagination import PageLimit, PageOffset
from services.orders.dependencies import CatalogueAdmin
from services.orders.goods import service
from services.orders.goods.schemas import (
    DiscountCreate,
    DiscountView,
    GoodsCreate,
    GoodsPriceChange,
    GoodsView,
)

router = APIRouter(tags=["goods"])


@router.get("/goods", response_model=list[GoodsView], summary="Goods for sale (public)")
async def list_goods(
    session: SessionDep, limit: PageLimit = 50, offset: PageOffset = 0
) -> list[GoodsView]:
    return await service.list_goods(session, limit=limit, offset=offset)


@router.get("/goods/{goods_id}", response_model=GoodsView, summary="One item for sale (public)")
async def get_goods(
    goods_id: Annotated[str, Path(max_length=40)], session: SessionDep
) -> GoodsView:
    return await service.get_goods(session, goods_id=goods_id)


@router.post(
    "/admin/goods",
    response_model=GoodsView,
    status_code=status.HTTP_201_CREATED,
    summary="Add goods (staff with admin:catalogue)",
)
async def add_goods(
    body: GoodsCreate, session: SessionDep, context: ContextDep, admin: CatalogueAdmin
) -> GoodsView:
    return await service.add_goods(
        session,
        events=context.events,
        catalogue=context.catalogue,
        request=body,
        added_by=admin.subject,
    )


@router.patch(
    "/admin/goods/{goods_id}",
    response_model=GoodsView,
    summary="Change the price of goods (staff with admin:catalogue)",
)
async def change_price(
    goods_id: Annotated[str, Path(max_length=40)],
    body: GoodsPriceChange,
    session: SessionDep,
    context: ContextDep,
    admin: CatalogueAdmin,
) -> GoodsView:
    return await service.change_price(
        session, events=context.events, goods_id=goods_id, request=body, changed_by=admin.subject
    )


@router.get(
    "/admin/goods",
    response_model=list[GoodsView],
    summary="Every item (staff with admin:catalogue)",
)
async def admin_list_goods(
    session: SessionDep, admin: CatalogueAdmin, limit: PageLimit = 50, offset: PageOffset = 0
) -> list[GoodsView]:
    return await service.list_goods(session, limit=limit, offset=offset)


@router.post(
    "/admin/discounts",
    response_model=DiscountView,
    status_code=status.HTTP_201_CREATED,
    summary="Add a discount code (staff with admin:catalogue)",
)
async def add_discount(
    body: DiscountCreate, session: SessionDep, context: ContextDep, admin: CatalogueAdmin
) -> DiscountView:
    return await service.add_discount(
        session, events=context.events, request=body, added_by=admin.subject
    )


@router.get(
    "/admin/discounts",
    response_model=list[DiscountView],
    summary="Every discount code (staff with admin:catalogue)",
)
async def list_discounts(session: SessionDep, admin: CatalogueAdmin) -> list[DiscountView]:
    return await service.list_discounts(session)
