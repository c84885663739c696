"""Partner API shapes: the assignment staff make, the order as a partner sees it, the
delivery status a logistics partner reports.

A partner's view carries only non-personal facts it needs (order number, goods lines,
amounts, status, delivery window) plus the personal fields the catalogue lets its purpose
see, under the catalogue's field names and masked as the catalogue says. A personal field
the purpose may not see is *absent* from the response (the routes serialise with
``exclude_unset``); a visible field without a value is ``null``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.orders.orders.schemas import AddressRegion, DeliveryWindow, OrderStatus

PartnerId = Annotated[
    str,
    Field(
        pattern=r"^ptn_[A-Za-z0-9]{8,36}$",
        description="a partner's client id, as identity registered it",
        examples=["ptn_3JkTq9ZrVw2mXbY7cNd4Ea"],
    ),
]
PartnerRole = Literal["logistics", "customs"]
DeliveryStatus = Literal["picked_up", "in_transit", "delivered", "failed"]


class AssignmentRequest(BaseModel):
    """Who delivers the order and, for cross-border goods only, who clears customs."""

    model_config = ConfigDict(extra="forbid")

    logistics_partner_id: PartnerId
    customs_broker_id: PartnerId | None = Field(
        default=None,
        description="required for an order with cross-border goods, refused for any other",
    )


class PartnerAssigned(BaseModel):
    partner_id: str
    role: PartnerRole
    purpose: str


class AssignmentView(BaseModel):
    order_id: str
    status: OrderStatus
    cross_border: bool
    partners: list[PartnerAssigned]
    assigned_at: datetime
    assigned_by: str


class PartnerOrderLine(BaseModel):
    goods_id: str
    name: str
    quantity: int
    unit_price: Decimal
    line_total: Decimal
    cross_border: bool


class PartnerOrderView(BaseModel):
    """An order as an assigned partner sees it under its purpose (``logistics.delivery``:
    the privacy waybill; ``customs.clearance``: the customs identity). Personal fields are
    present only when the catalogue lets the purpose see them."""

    order_id: str = Field(description="the order number")
    account_id: str | None = Field(
        default=None,
        description="the buyer's account id, on one order's read only: for the gateway's "
        "check of the buyer's restrictions and legal hold (policy/routes.yaml owner_field), "
        "which removes it before the partner sees the answer",
    )
    status: OrderStatus
    role: PartnerRole
    purpose: str = Field(description="the one purpose this response was served under")
    created_at: datetime
    currency: str
    cross_border: bool
    delivery_window: DeliveryWindow | None
    virtual_number: str | None = Field(
        default=None,
        description="logistics only, when the platform has a privacy-number line: "
        "'<prefix>-<extension>' to call instead of the consignee's phone",
    )
    amount_payable: Decimal | None = Field(
        default=None, description="the purchase record: only for purposes that need it"
    )
    lines: list[PartnerOrderLine] | None = Field(
        default=None, description="the purchase record: only for purposes that need it"
    )
    consignee_name: str | None = None
    consignee_phone: str | None = None
    address_region: AddressRegion | None = None
    address_detail: str | None = None
    postal_code: str | None = None
    extra_phones: list[str] | None = None
    invoice_title: str | None = None
    invoice_tax_id: str | None = None
    invoice_email: str | None = None
    customs_name: str | None = None
    customs_id_number: str | None = None
    remarks: str | None = None


class PartnerOrderPage(BaseModel):
    items: list[PartnerOrderView]
    next_cursor: str | None = Field(description="give as ?cursor= for the next page")


class DeliveryReport(BaseModel):
    """A delivery status from the logistics partner. A status only: no free text."""

    model_config = ConfigDict(extra="forbid")

    status: DeliveryStatus


class DeliveryView(BaseModel):
    order_id: str
    delivery_status: DeliveryStatus
    order_status: OrderStatus
    at: datetime
