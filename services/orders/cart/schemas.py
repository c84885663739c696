"""Cart API shapes. ``cart_items`` is the catalogue's field ``orders.cart.cart_items``; a
shared cart shows goods and quantities only, nothing about its owner."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

MAX_QUANTITY = 99


class CartItemAdd(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    goods_id: str = Field(min_length=1, max_length=40)
    quantity: int = Field(default=1, ge=1, le=MAX_QUANTITY)


class CartItemChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quantity: int = Field(ge=1, le=MAX_QUANTITY)


class CartItemView(BaseModel):
    item_id: str
    goods_id: str
    name: str
    quantity: int
    price_at_adding: Decimal
    current_price: Decimal
    currency: str
    added_at: datetime


class CartView(BaseModel):
    cart_items: list[CartItemView]
    item_count: int


class CartShareView(BaseModel):
    share_id: str
    item_count: int
    created_at: datetime
    revoked_at: datetime | None


class CartShareCreated(CartShareView):
    token: str = Field(description="the link's secret, shown this once: GET /shared-carts/{token}")


class SharedGoods(BaseModel):
    goods_id: str
    name: str
    price: Decimal
    currency: str
    quantity: int


class SharedCartView(BaseModel):
    """What anyone with the link sees: goods and quantities. No owner, no times."""

    goods: list[SharedGoods]


class PriceDrop(BaseModel):
    """Goods in the cart now cheaper than when added (and than the last reminder)."""

    item_id: str
    goods_id: str
    price_at_adding: Decimal
    current_price: Decimal
    currency: str
