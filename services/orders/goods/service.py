"""Goods and discount codes: add and list. No HTTP here.

Goods and discount codes hold no personal data; their events name the staff member who
made the change by account id only.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit import contracts
from kit.catalogue import Catalogue
from kit.db import to_cents
from kit.errors import Conflict, DomainError, NotFound
from kit.ids import new_id
from kit.outbox import EventWriter
from services.orders.goods.schemas import (
    DiscountCreate,
    DiscountView,
    GoodsCreate,
    GoodsPriceChange,
    GoodsView,
)
from services.orders.models import Discount, Goods

EVENT_PREFIX = "com.signature.orders"


class InvalidGoods(DomainError):
    status, code, title = 422, "validation-error", "Invalid request"

    def __init__(self, message: str) -> None:
        field = "body.payment_window"
        problem = {"field": field, "message": message, "type": "unknown_payment_window"}
        super().__init__(f"invalid field: {field}", extra={"errors": [problem]})


def goods_view(goods: Goods) -> GoodsView:
    return GoodsView(
        goods_id=goods.id,
        name=goods.name,
        price=goods.price,
        currency=goods.currency,
        cross_border=goods.cross_border,
        special_category=goods.special_category,
        payment_window=goods.payment_window,
    )


def _discount_view(discount: Discount) -> DiscountView:
    return DiscountView.model_validate(discount, from_attributes=True)


def _check_payment_window(catalogue: Catalogue, window: str | None) -> None:
    """Goods may name only a payment window of the catalogue (422 naming the field)."""
    if window is None:
        return
    try:
        catalogue.payment_window(window)
    except KeyError:
        known = ", ".join(w.id for w in catalogue.payment_windows)
        raise InvalidGoods(f"no such payment window; the catalogue has: {known}") from None


async def add_goods(
    session: AsyncSession,
    *,
    events: EventWriter,
    catalogue: Catalogue,
    request: GoodsCreate,
    added_by: str,
) -> GoodsView:
    _check_payment_window(catalogue, request.payment_window)
    goods = Goods(
        id=new_id("gds"),
        name=request.name,
        price=to_cents(request.price),
        currency=request.currency,
        cross_border=request.cross_border,
        special_category=request.special_category,
        payment_window=request.payment_window,
        created_by=added_by,
    )
    session.add(goods)
    events.add(
        session,
        type=f"{EVENT_PREFIX}.goods.added.v1",
        subject=goods.id,
        purpose="browse",
        data=contracts.GoodsAdded(
            currency=goods.currency,
            cross_border=goods.cross_border,
            special_category=goods.special_category,
            by=added_by,
        ),
    )
    return goods_view(goods)


async def list_goods(session: AsyncSession, *, limit: int, offset: int) -> list[GoodsView]:
    goods = await session.scalars(
        select(Goods).order_by(col(Goods.created_at), col(Goods.id)).limit(limit).offset(offset)
    )
    return [goods_view(item) for item in goods]


async def get_goods(session: AsyncSession, *, goods_id: str) -> GoodsView:
    goods = await session.get(Goods, goods_id)
    if goods is None:
        raise NotFound("no such goods")
    return goods_view(goods)


async def change_price(
    session: AsyncSession,
    *,
    events: EventWriter,
    goods_id: str,
    request: GoodsPriceChange,
    changed_by: str,
) -> GoodsView:
    """A new price for goods; carts keep the price they were added at (price drops)."""
    goods = await session.get(Goods, goods_id)
    if goods is None:
        raise NotFound("no such goods")
    goods.price = to_cents(request.price)
    events.add(
        session,
        type=f"{EVENT_PREFIX}.goods.price_changed.v1",
        subject=goods.id,
        purpose="browse",
        data=contracts.GoodsPriceChanged(
            price=str(goods.price), currency=goods.currency, by=changed_by
        ),
    )
    return goods_view(goods)


async def goods_by_id(session: AsyncSession, goods_ids: Iterable[str]) -> dict[str, Goods]:
    """The goods with these ids that exist, by id."""
    wanted = set(goods_ids)
    if not wanted:
        return {}
    found = await session.scalars(select(Goods).where(col(Goods.id).in_(wanted)))
    return {goods.id: goods for goods in found}


async def add_discount(
    session: AsyncSession, *, events: EventWriter, request: DiscountCreate, added_by: str
) -> DiscountView:
    if await session.get(Discount, request.code) is not None:
        raise Conflict("a discount with this code exists")
    discount = Discount(
        code=request.code,
        amount=to_cents(request.amount),
        currency=request.currency,
        created_by=added_by,
    )
    session.add(discount)
    await session.flush()
    events.add(
        session,
        type=f"{EVENT_PREFIX}.discount.added.v1",
        subject=f"discount:{discount.code}",
        purpose="order.fulfilment",
        data=contracts.DiscountAdded(code=discount.code, currency=discount.currency, by=added_by),
    )
    return _discount_view(discount)


async def list_discounts(session: AsyncSession) -> list[DiscountView]:
    discounts = await session.scalars(select(Discount).order_by(col(Discount.created_at)))
    return [_discount_view(discount) for discount in discounts]


async def discounts_by_code(session: AsyncSession, codes: Iterable[str]) -> dict[str, Discount]:
    """The active discounts with these codes, by code."""
    wanted = set(codes)
    if not wanted:
        return {}
    found = await session.scalars(
        select(Discount).where(col(Discount.code).in_(wanted), col(Discount.active))
    )
    return {discount.code: discount for discount in found}
