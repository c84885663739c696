"""What orders gives the privacy center about one subject (``GET /rights/export/{subject}``)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from kit.rights import ExportedField
from services.orders.support.schemas import CaseView


class OrderLineExport(BaseModel):
    goods_id: str
    goods_name: str
    quantity: int
    unit_price: Decimal
    line_total: Decimal


class OrderExport(BaseModel):
    order_id: str
    status: str
    currency: str
    subtotal: Decimal
    discounts: list[dict[str, str]]
    discount_total: Decimal
    amount_payable: Decimal
    cross_border: bool
    invoice_requested: bool
    delivery_window: dict[str, Any] | None
    created_at: datetime
    completed_at: datetime | None
    retention_starts_at: datetime | None
    lines: list[OrderLineExport]
    fields: dict[str, ExportedField] = Field(
        description="personal fields as rights.access sees them (the ID number masked)"
    )


class CartItemExport(BaseModel):
    goods_id: str
    goods_name: str | None
    quantity: int
    price_at_adding: Decimal
    currency: str
    added_at: datetime


class CartShareExport(BaseModel):
    share_id: str
    created_at: datetime
    revoked_at: datetime | None


class CartExport(BaseModel):
    items: list[CartItemExport]
    shares: list[CartShareExport]
    about: ExportedField = Field(
        description="the cart's category, purposes and retention (value: the item count)"
    )


class SearchEntryExport(BaseModel):
    entry_id: str
    query: str
    result_count: int
    searched_at: datetime
    feeds_recommendations: bool = Field(
        description="made with the recommendation.personalised consent, so it may feed them"
    )


class SearchHistoryExport(BaseModel):
    entries: list[SearchEntryExport]
    about: ExportedField = Field(
        description="the search history's category, purposes and retention (value: the count)"
    )


class OrdersExport(BaseModel):
    """Everything orders holds about the subject. Anonymised orders no longer name anyone
    and are not part of it."""

    service: str = "orders"
    subject: str
    orders: list[OrderExport]
    cart: CartExport
    search_history: SearchHistoryExport | None = None
    support_cases: list[CaseView] | None = Field(
        default=None, description="customer-service cases with their communication record"
    )
    note: str | None = None
