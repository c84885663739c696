"""Order API shapes.

The request is strict (OB-0-3): unknown fields are refused, every missing required field
is named in one problem+json (``errors[].field`` such as ``body.address.city``), values
are validated without echoing them. An order needs the consignee's name and mobile phone
and a structured delivery address (OB-2D-2); extra contact numbers, a delivery window, the
postal code and remarks are optional (OB-2D-4); an invoice is asked for by giving
``invoice``, and only then are its title, taxpayer ID and email taken (OB-2D-5); the
customs identity is for cross-border goods only (OB-2D-3, checked by the service, which
knows the goods).

The view's personal fields carry the catalogue's names (``orders.order``), so the
catalogue's masking and the gateway's filter apply to them by name; ``order_id`` is the
order number.
"""

from __future__ import annotations

import re
from datetime import datetime, time
from decimal import Decimal
from typing import Annotated, Final, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from kit.events import personal_shape
from kit.id_number import InvalidIdNumber, validate_id_number
from services.orders.goods.schemas import DiscountCode
from services.orders.orders.tax_id import validate_taxpayer_id

MAX_LINES: Final = 50
MAX_QUANTITY: Final = 99
MAX_EXTRA_PHONES: Final = 3
MAX_DISCOUNT_CODES: Final = 5

_MOBILE = re.compile(r"1[3-9]\d{9}")
_LANDLINE = re.compile(r"0\d{2,3}-?\d{7,8}")
_EMAIL = re.compile(r"[^@\s]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


def _mobile(value: str) -> str:
    number = re.sub(r"[\s\-]", "", value).removeprefix("+86").removeprefix("0086")
    if not _MOBILE.fullmatch(number):
        raise ValueError("a mainland mobile number has 11 digits and starts with 13-19")
    return number


def _contact_number(value: str) -> str:
    try:
        return _mobile(value)
    except ValueError:
        number = re.sub(r"\s", "", value)
        if _LANDLINE.fullmatch(number):
            return number
    raise ValueError(
        "a contact number is a mainland mobile number or a landline with its area code"
    )


def _email(value: str) -> str:
    if len(value) > 254 or not _EMAIL.fullmatch(value):
        raise ValueError("not an email address")
    return value


def _id_number(value: str) -> str:
    try:
        return validate_id_number(value)
    except InvalidIdNumber as error:  # its detail never holds the number
        raise ValueError(error.detail) from None


def _taxpayer_id(value: str) -> str:
    return validate_taxpayer_id(value)


def _no_numbers_or_addresses(value: str) -> str:
    if shape := personal_shape(value):
        raise ValueError(f"remarks may not hold a {shape}; give contact numbers in extra_phones")
    return value


MobilePhone = Annotated[str, Field(max_length=20), AfterValidator(_mobile)]
ContactNumber = Annotated[str, Field(max_length=20), AfterValidator(_contact_number)]
Email = Annotated[str, Field(max_length=254), AfterValidator(_email)]
IdNumber = Annotated[str, Field(max_length=30), AfterValidator(_id_number)]
TaxpayerId = Annotated[str, Field(max_length=30), AfterValidator(_taxpayer_id)]
PostalCode = Annotated[str, Field(pattern=r"^\d{6}$")]
Remarks = Annotated[str, Field(max_length=200), AfterValidator(_no_numbers_or_addresses)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class OrderItem(_Strict):
    goods_id: str = Field(min_length=1, max_length=40)
    quantity: int = Field(ge=1, le=MAX_QUANTITY)


class Address(_Strict):
    """A mainland delivery address: region levels, then the street detail."""

    province: str = Field(min_length=1, max_length=20, examples=["浙江省"])
    city: str = Field(min_length=1, max_length=30, examples=["杭州市"])
    district: str = Field(min_length=1, max_length=30, examples=["西湖区"])
    detail: str = Field(min_length=1, max_length=120, examples=["文三路 100 号 2 幢 301 室"])
    postal_code: PostalCode | None = Field(default=None, description="optional")


class DeliveryWindow(_Strict):
    """When deliveries suit: which days, and optionally between which times. A choice, not
    free text, so it carries nothing but the preference."""

    days: Literal["any", "weekdays", "weekends"] = "any"
    start: time | None = None
    end: time | None = None

    @model_validator(mode="after")
    def _times_make_a_window(self) -> Self:
        if (self.start is None) != (self.end is None):
            raise ValueError("give both start and end, or neither")
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError("start must be before end")
        return self


class Invoice(_Strict):
    """Asked for by giving it; then all three fields are needed (OB-2D-5)."""

    title: str = Field(min_length=1, max_length=100, description="person or company name")
    tax_id: TaxpayerId = Field(
        description="unified social credit code (18), or a legacy tax number (15 or 20)"
    )
    email: Email = Field(description="where the electronic invoice is sent")


class Customs(_Strict):
    """The buyer's identity for customs clearance: cross-border goods only (OB-2D-3)."""

    name: str = Field(min_length=1, max_length=50, description="as on the ID card")
    id_number: IdNumber = Field(description="18-character resident ID number (GB 11643)")


class OrderCreate(_Strict):
    items: list[OrderItem] = Field(min_length=1, max_length=MAX_LINES)
    consignee_name: str = Field(min_length=1, max_length=50)
    consignee_phone: MobilePhone
    address: Address
    extra_phones: list[ContactNumber] = Field(default_factory=list, max_length=MAX_EXTRA_PHONES)
    delivery_window: DeliveryWindow | None = None
    invoice: Invoice | None = None
    customs: Customs | None = None
    discount_codes: list[DiscountCode] = Field(default_factory=list, max_length=MAX_DISCOUNT_CODES)
    remarks: Remarks | None = None


# --------------------------------------------------------------------------- views


class AddressRegion(BaseModel):
    province: str
    city: str
    district: str


class OrderLineView(BaseModel):
    goods_id: str
    name: str
    quantity: int
    unit_price: Decimal
    line_total: Decimal
    cross_border: bool
    special_category: bool


class DiscountApplied(BaseModel):
    code: str
    amount: Decimal


OrderStatus = Literal[
    "placed", "paid", "assigned", "shipped", "delivered", "completed", "cancelling", "cancelled"
]


class StatusEntry(BaseModel):
    status: OrderStatus
    at: datetime


class OrderView(BaseModel):
    """An order as its owner sees it (purpose ``order.query``): the facts in full, the
    personal fields as the catalogue shows them to that purpose (the customs ID number
    masked), ``None`` where absent."""

    order_id: str = Field(description="the order number")
    status: OrderStatus
    created_at: datetime
    currency: str
    lines: list[OrderLineView]
    subtotal: Decimal
    discounts: list[DiscountApplied]
    discount_total: Decimal
    amount_payable: Decimal
    status_history: list[StatusEntry]
    invoice_requested: bool
    delivery_window: DeliveryWindow | None
    pay_by: datetime | None = Field(
        default=None, description="pay before this; an order still unpaid then is cancelled"
    )
    consignee_name: str | None
    consignee_phone: str | None
    address_region: AddressRegion | None
    address_detail: str | None
    postal_code: str | None
    extra_phones: list[str] | None
    invoice_title: str | None
    invoice_tax_id: str | None
    invoice_email: str | None
    customs_name: str | None
    customs_id_number: str | None
    remarks: str | None


class OrderPage(BaseModel):
    items: list[OrderView]
    next_cursor: str | None = Field(description="give as ?cursor= for the next page")
