"""Corrections at orders (OB-R-1, PIPL art. 46). No HTTP here: the corrections are read
from the privacy center by the caller (``kit.rights.CorrectionsFetcher``) and handed in.

What the user may ask orders to correct, per order (``{"order_id": ..., <field>: value}``;
several orders as ``{"orders": [{...}, ...]}``):

- the consignee, while the goods have not left (status ``placed``, ``paid`` or
  ``assigned``): ``consignee_name``, ``consignee_phone`` (a mainland mobile number) and the
  address, whole (``address``: province, city, district, detail and an optional postal code,
  as when ordering) or by part (``address_region``, ``address_detail``, ``postal_code``).
  A shipped order is refused ("the waybill is printed"), a delivered or completed one too
  (the delivery is part of the transaction record), a cancelled one as nothing is delivered;
- the invoice title and email, while the invoice has not been issued (an invoice was asked
  for and the order is neither completed nor cancelled).

Anything else is refused with a reason per field: the taxpayer ID and the customs identity
were declared to the tax office or customs, remarks and extra phones are not corrected on
request, unknown fields are not fields of an order, and orders of someone else (or gone)
are "no such order of yours". Values are validated as when ordering and never echoed.

Each corrected order is re-encrypted under the buyer's key and recorded as processing
(action ``write``, purpose ``rights.access``, the categories changed). The outcome is
``done`` when everything asked was applied, ``partial`` when some was, ``refused`` when
none was; the reason names order ids and fields only, never a value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Final

from pydantic import Field, TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit import rights
from kit.catalogue import Catalogue
from kit.crypto import FieldCipher
from kit.outbox import EventWriter
from services.orders.models import Order
from services.orders.orders import service as orders
from services.orders.orders.schemas import Address, Email, MobilePhone, PostalCode
from services.orders.orders.service import RESOURCE as ORDER

ACTOR: Final = "orders.rights"
MAX_ORDERS: Final = 50
#: Statuses in which the goods have not left yet: the consignee may still change.
NOT_SHIPPED: Final = frozenset({"placed", "paid", "assigned"})
#: Statuses in which the invoice has not been issued yet (it is issued at completion).
NOT_INVOICED: Final = frozenset({"placed", "paid", "assigned", "shipped", "delivered"})
CONSIGNEE: Final = frozenset(
    {
        "consignee_name",
        "consignee_phone",
        "address",
        "address_region",
        "address_detail",
        "postal_code",
    }
)
INVOICE: Final = frozenset({"invoice_title", "invoice_email"})
#: Fields of an order that are never corrected on request, and why.
NOT_CORRECTABLE: Final[Mapping[str, str]] = {
    "invoice_tax_id": "the taxpayer ID is declared to the tax office: ask for a new invoice",
    "customs_name": "the customs identity is declared to customs and not corrected on request",
    "customs_id_number": (
        "the customs identity is declared to customs and not corrected on request"
    ),
    "remarks": "remarks are part of the order record and not corrected on request",
    "extra_phones": "extra contact numbers are not corrected on request",
}
SHIPPED_REASONS: Final[Mapping[str, str]] = {
    "shipped": "order shipped: the waybill is printed",
    "delivered": "order delivered: the delivery is part of the transaction record",
    "completed": "order completed: the delivery is part of the transaction record",
    "cancelled": "order cancelled: nothing will be delivered",
}

_Name = Annotated[str, Field(min_length=1, max_length=50)]
_Title = Annotated[str, Field(min_length=1, max_length=100)]
_Detail = Annotated[str, Field(min_length=1, max_length=120)]
_Part = Annotated[str, Field(min_length=1, max_length=30)]
_VALIDATORS: Final[Mapping[str, tuple[TypeAdapter[Any], str]]] = {
    "consignee_name": (TypeAdapter(_Name), "a name of 1-50 characters"),
    "consignee_phone": (TypeAdapter(MobilePhone), "a mainland mobile number"),
    "address": (
        TypeAdapter(Address),
        "a structured address: province, city, district, detail, optional postal_code",
    ),
    "address_region": (
        TypeAdapter(dict[str, _Part]),
        "province, city and district",
    ),
    "address_detail": (TypeAdapter(_Detail), "a street detail of 1-120 characters"),
    "postal_code": (TypeAdapter(PostalCode), "a 6-digit postal code"),
    "invoice_title": (TypeAdapter(_Title), "a title of 1-100 characters"),
    "invoice_email": (TypeAdapter(Email), "an email address"),
}
_REGION_KEYS: Final = frozenset({"province", "city", "district"})
_ORDER_ID: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")


@dataclass
class CorrectionResult:
    """What a correction did: fields applied and refused (with why), categories changed."""

    applied: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    categories: set[str] = field(default_factory=set)

    @property
    def outcome(self) -> rights.Outcome:
        if not self.refused:
            return "done"
        return "partial" if self.applied else "refused"

    def reason(self) -> str:
        parts: list[str] = []
        if self.applied:
            parts.append("corrected: " + ", ".join(self.applied))
        if self.refused:
            parts.append("refused: " + "; ".join(self.refused))
        return ". ".join(parts) if parts else "nothing to correct"


def _asked(corrections: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    """The per-order corrections in orders' part, or None if it has no known shape."""
    many = corrections.get("orders")
    if isinstance(many, list) and set(corrections) == {"orders"}:
        if all(isinstance(item, Mapping) for item in many) and 0 < len(many) <= MAX_ORDERS:
            return list(many)
        return None
    return [corrections]


def _valid(name: str, value: Any) -> Any:
    adapter, _ = _VALIDATORS[name]
    checked = adapter.validate_python(value)
    if name == "address_region" and set(checked) != _REGION_KEYS:
        raise ValueError("address_region needs province, city and district")
    return checked


def _values(name: str, checked: Any) -> dict[str, Any]:
    """The catalogue fields a corrected value replaces (an address: region, detail and
    postal code together; a postal code left out is removed, as it may not fit)."""
    if name == "address":
        assert isinstance(checked, Address)
        return {
            "address_region": {
                "province": checked.province,
                "city": checked.city,
                "district": checked.district,
            },
            "address_detail": checked.detail,
            "postal_code": checked.postal_code,
        }
    return {name: checked}


def _refusal(order: Order, name: str) -> str | None:
    """Why ``name`` may not be corrected on ``order`` now; None if it may."""
    if name in CONSIGNEE:
        if order.status in NOT_SHIPPED:
            return None
        return SHIPPED_REASONS.get(order.status, f"order {order.status}: not correctable now")
    if name in INVOICE:
        if not order.invoice_requested:
            return "no invoice was asked for on this order"
        if order.status == "completed":
            return "order completed: the invoice is issued"
        if order.status == "cancelled":
            return "order cancelled: no invoice is issued"
        return None if order.status in NOT_INVOICED else f"order {order.status}: invoice issued"
    return NOT_CORRECTABLE.get(name, "not a field of an order")


async def _own_order(session: AsyncSession, subject: str, order_id: Any) -> Order | None:
    if not isinstance(order_id, str) or not order_id or len(order_id) > 40:
        return None
    return await session.scalar(
        select(Order)
        .where(
            col(Order.id) == order_id,
            col(Order.buyer_id) == subject,
            col(Order.anonymised_at).is_(None),
        )
        .with_for_update()
    )


async def apply_corrections(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    catalogue: Catalogue,
    subject: str,
    corrections: Mapping[str, Any],
) -> CorrectionResult:
    """Apply what may be corrected of ``corrections`` (orders' part of the request) to the
    subject's orders; refuse the rest, field by field (see the module docstring)."""
    result = CorrectionResult()
    asked = _asked(corrections)
    if asked is None:
        result.refused.append(
            'not understood: give {"order_id": ..., <field>: value} or {"orders": [...]}'
        )
        return result
    for item in asked:
        order_id = item.get("order_id")
        names = sorted(name for name in item if name != "order_id")
        # An order number names no one; anything else the user typed stays out of the reason.
        label = order_id if isinstance(order_id, str) and _ORDER_ID.fullmatch(order_id) else "order"
        if not isinstance(order_id, str) or not order_id:
            result.refused.append("name the order to correct (order_id)")
            continue
        if not names:
            result.refused.append(f"{label}: no field to correct")
            continue
        order = await _own_order(session, subject, order_id)
        if order is None:
            result.refused.append(f"{label}: no such order of yours")
            continue
        values: dict[str, Any] = {}
        applied: list[str] = []
        for name in names:
            why = _refusal(order, name)
            if why is None:
                try:
                    values |= _values(name, _valid(name, item[name]))
                except (ValidationError, ValueError):
                    why = "not " + _VALIDATORS[name][1]
                else:
                    applied.append(name)
            if why is not None:
                result.refused.append(f"{label}.{name}: {why}")
        if not values:
            continue
        removed = [name for name, value in values.items() if value is None]
        await orders.encrypt_fields(
            session,
            cipher,
            order,
            {name: value for name, value in values.items() if value is not None},
        )
        for name in removed:
            setattr(order, f"{name}_encrypted", None)
        changed = {catalogue.field_policy(ORDER, name).category for name in values}
        result.categories |= changed
        result.applied.extend(f"{label}.{name}" for name in applied)
        events.processing(
            session,
            subject=subject,
            actor=ACTOR,
            action="write",
            purpose=rights.PURPOSE,
            resource=ORDER,
            categories=sorted(changed),
        )
    await session.flush()
    return result
