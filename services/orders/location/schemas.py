"""Location API shapes. Coordinates are WGS-84 decimal degrees; they are validated without
being echoed (kit.errors never echoes input) and never stored."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.orders.goods.schemas import GoodsView

Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]


class Coordinates(BaseModel):
    model_config = ConfigDict(extra="forbid")

    latitude: Latitude
    longitude: Longitude


class RegionSuggestion(BaseModel):
    """A structured region to fill ``address.province/city/district`` of an order; the
    user still types the street detail and confirms."""

    province: str
    city: str
    district: str | None = Field(description="null when only the city is known")


class AddressSuggestion(BaseModel):
    region: RegionSuggestion | None = Field(description="null outside the built-in table")
    source: Literal["built-in-table"] = Field(
        description="the lookup that answered: a small built-in table standing in for a map "
        "service's reverse geocoding"
    )


class NearbyGoods(BaseModel):
    city: str | None = Field(description="the city the point lies in; null if unknown")
    goods: list[GoodsView]


class GoodsCityRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    city: str = Field(min_length=1, max_length=30, examples=["杭州市"])


class GoodsCityView(BaseModel):
    goods_id: str
    city: str
