"""Goods and discount API shapes. Prices are exact decimals with two places (JSON strings
on the way out)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["CNY"])]
Price = Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=2, examples=["199.00"])]
DiscountCode = Annotated[str, Field(pattern=r"^[A-Z0-9][A-Z0-9_-]{2,39}$", examples=["WELCOME10"])]


class GoodsCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    price: Price
    currency: Currency = "CNY"
    cross_border: bool = Field(
        default=False, description="sold from abroad: the buyer's customs identity is needed"
    )
    special_category: bool = Field(
        default=False, description="special goods: the buyer must be real-name verified"
    )
    payment_window: str | None = Field(
        default=None,
        max_length=40,
        description="a payment window of the catalogue (e.g. scarce); none: the default",
    )


class GoodsPriceChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    price: Price


class GoodsView(BaseModel):
    goods_id: str
    name: str
    price: Decimal
    currency: str
    cross_border: bool
    special_category: bool
    payment_window: str | None = None


class DiscountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    code: DiscountCode
    amount: Price
    currency: Currency = "CNY"


class DiscountView(BaseModel):
    code: str
    amount: Decimal
    currency: str
    active: bool
    created_at: datetime
