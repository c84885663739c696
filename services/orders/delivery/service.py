"""Partner assignment, the partners' view of their orders, delivery status. No HTTP here.

Roles and purposes (OB-3-1, OB-3-2). A partner acts in one role per token, given by its
scope, and each role is served under exactly one entrusted purpose of the catalogue:

    role       scope               purpose              sees (catalogue)
    logistics  partner:logistics   logistics.delivery   the privacy waybill
    customs    partner:customs     customs.clearance    the customs identity

A partner token must carry that purpose among its registered purposes (identity puts them
in the token), else 403 ``purpose-not-allowed``: a partner registered for another purpose
cannot read orders under this one.

Ownership (OWASP API1). A partner reads an order only while it is assigned to it *in that
role* and open for the duty (``assigned``, ``shipped``, ``delivered``); any other order,
including one it delivered that has since completed or been cancelled, is 404, as if it did
not exist. Its duty is over, so its access is too.

The view. Only the fields the catalogue gives the purpose are decrypted and returned,
masked as the catalogue says (``kit.masking``); every read is a processing record (actor:
the partner, the purpose, the categories actually shown) for the user's ledger.

Virtual numbers. With ``virtual_number_prefix`` set, the logistics view carries
``<prefix>-<extension>`` instead of the consignee's phone, which is then neither decrypted
nor shown. The extension is 6 digits from a keyed hash (``FieldCipher.blind_index``) of the
*order number*, so it is stable per order, unguessable without the master key and never
derived from the phone. It stands in for a telephony provider's privacy-number binding
(AXB): in production the provider maps prefix + extension to the consignee for the life of
the delivery, and would also resolve the rare extension clash between open orders.

Delivery status (the logistics partner only):

    picked_up   assigned -> shipped
    in_transit  shipped, no status change (tracking only)
    delivered   shipped -> delivered -> completed
    failed      assigned or shipped, no status change; staff decide what follows

Decided: ``delivered`` completes the order at once, so the retention clock
(``order_completed``) starts at delivery. The catalogue's after-sales window
(``fulfilment_contact``, 90 days) is counted from completion, so returns and after-sales
keep what they need; a separate confirmation step (buyer confirms receipt, or an automatic
confirmation some days after delivery) can replace this without changing the partner API.
A repeated report of the partner's last status is answered again without a new record
(retries are safe). Every report is kept in ``delivery_update`` and published as
``order.delivery_updated``; status moves go through ``orders.service.change_status``
(``order.status_changed``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from sqlalchemy import Row, Select, and_, bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit import contracts
from kit.auth import InsufficientScope, Principal, Scope
from kit.catalogue import Catalogue
from kit.crypto import FieldCipher, FieldOpener
from kit.db import UtcDateTime
from kit.errors import Conflict, Forbidden, NotFound
from kit.events import Event
from kit.masking import mask_value
from kit.models import utcnow
from kit.outbox import EventWriter
from kit.restriction import Restrictions
from services.orders.delivery.schemas import (
    AssignmentRequest,
    AssignmentView,
    DeliveryStatus,
    DeliveryView,
    PartnerOrderPage,
    PartnerOrderView,
    PartnerRole,
)
from services.orders.models import DeliveryUpdate, Order, OrderLine
from services.orders.orders import service as orders
from services.orders.orders.service import (
    EVENT_PREFIX,
    FULFILMENT,
    MAX_PAGE_SIZE,
    PERSONAL_FIELDS,
    PURCHASE_RECORD_FIELDS,
    RESOURCE,
    InvalidOrder,
)

#: Statuses in which an assigned partner's duty is running and it may read the order.
OPEN_STATUSES: Final = frozenset({"assigned", "shipped", "delivered"})
#: Statuses in which staff may (re)assign partners: paid, and not yet picked up.
ASSIGNABLE_STATUSES: Final = frozenset({"paid", "assigned"})
VIRTUAL_NUMBER_CONTEXT: Final = "orders.order.virtual_number"
VIRTUAL_NUMBER_DIGITS: Final = 6

OrderStatusName = Literal["paid", "assigned", "shipped", "delivered", "completed", "cancelled"]


@dataclass(frozen=True)
class Role:
    name: PartnerRole
    scope: Scope
    purpose: str
    field: str  # the Order column holding the partner's id in this role


ROLES: Final[Mapping[PartnerRole, Role]] = {
    "logistics": Role(
        "logistics", Scope.PARTNER_LOGISTICS, "logistics.delivery", "logistics_partner_id"
    ),
    "customs": Role("customs", Scope.PARTNER_CUSTOMS, "customs.clearance", "customs_broker_id"),
}

#: Which order statuses a reported delivery status may come from, and the steps it makes.
DELIVERY_STEPS: Final[Mapping[str, tuple[frozenset[str], tuple[OrderStatusName, ...]]]] = {
    "picked_up": (frozenset({"assigned"}), ("shipped",)),
    "in_transit": (frozenset({"shipped"}), ()),
    "delivered": (frozenset({"shipped"}), ("delivered", "completed")),
    "failed": (frozenset({"assigned", "shipped"}), ()),
}


class NotAPartner(Forbidden):
    code, title = "partner-only", "Partners only"


class AmbiguousDuty(Forbidden):
    code, title = "ambiguous-duty", "One duty per token"


class PurposeNotAllowed(Forbidden):
    """The partner's token does not carry the purpose its role is served under."""

    code, title = "purpose-not-allowed", "Purpose not allowed"


class WrongDuty(Forbidden):
    code, title = "wrong-duty", "Not this partner's duty"


class AssignmentNotAllowed(Conflict):
    code, title = "assignment-not-allowed", "Assignment not allowed"


class DeliveryStatusConflict(Conflict):
    code, title = "delivery-status-conflict", "Delivery status conflict"


@dataclass(frozen=True)
class Duty:
    """A partner acting in one role, under that role's one purpose."""

    partner_id: str
    role: PartnerRole

    @property
    def purpose(self) -> str:
        return ROLES[self.role].purpose

    def assigned(self) -> Any:
        """The condition: the order is assigned to this partner in this role."""
        return col(getattr(Order, ROLES[self.role].field)) == self.partner_id


def check_catalogue(catalogue: Catalogue) -> None:
    """Refuse to start unless every role's purpose is an entrusted purpose of the catalogue
    whose visible order fields are fields this service stores."""
    for role in ROLES.values():
        if not catalogue.has_purpose(role.purpose) or not catalogue.purpose(role.purpose).entrusted:
            raise RuntimeError(f"{role.purpose} must be an entrusted purpose in the catalogue")
        unknown = (
            set(catalogue.visible_fields(RESOURCE, role.purpose))
            - set(PERSONAL_FIELDS)
            - set(PURCHASE_RECORD_FIELDS)
        )
        if unknown:
            raise RuntimeError(f"{role.purpose} sees fields orders does not store: {unknown}")


def duty_of(principal: Principal) -> Duty:
    """The role a partner acts in (from its scope) once its token carries the role's
    purpose; 403 for anyone else, for a token with both roles or without the purpose."""
    if principal.kind != "partner":
        raise NotAPartner("only partners read assigned orders")
    roles = [role for role in ROLES.values() if principal.has(role.scope)]
    if not roles:
        raise InsufficientScope([Scope.PARTNER_LOGISTICS, Scope.PARTNER_CUSTOMS])
    if len(roles) > 1:
        raise AmbiguousDuty("a partner token serves one duty: logistics or customs")
    [role] = roles
    if role.purpose not in principal.purposes:
        raise PurposeNotAllowed(
            f"the {role.name} role is served under the purpose {role.purpose}, which this "
            "partner's token does not carry",
            extra={"purpose": role.purpose},
        )
    return Duty(partner_id=principal.subject, role=role.name)


def _categories(catalogue: Catalogue, fields: Sequence[str]) -> list[str]:
    return sorted({catalogue.field_policy(RESOURCE, field).category for field in fields})


# --------------------------------------------------------------------------- assignment


def _assignment_problems(order: Order, request: AssignmentRequest) -> list[dict[str, str]]:
    field = "body.customs_broker_id"
    broker = request.customs_broker_id
    if order.cross_border and broker is None:
        return [
            {
                "field": field,
                "message": "cross-border goods need a customs broker",
                "type": "missing",
            }
        ]
    if not order.cross_border and broker is not None:
        message = "a customs broker is assigned for cross-border goods only"
        return [{"field": field, "message": message, "type": "extra_forbidden"}]
    if broker is not None and broker == request.logistics_partner_id:
        message = "one partner, one duty: the broker cannot be the logistics partner"
        return [{"field": field, "message": message, "type": "same_partner"}]
    return []


def _assignment_view(order: Order) -> AssignmentView:
    assert order.assigned_at is not None and order.assigned_by is not None
    partners = [
        {"partner_id": partner_id, "role": role.name, "purpose": role.purpose}
        for role in ROLES.values()
        if (partner_id := getattr(order, role.field)) is not None
    ]
    return AssignmentView.model_validate(
        {
            "order_id": order.id,
            "status": order.status,
            "cross_border": order.cross_border,
            "partners": partners,
            "assigned_at": order.assigned_at,
            "assigned_by": order.assigned_by,
        }
    )


async def assign_partners(
    session: AsyncSession,
    *,
    events: EventWriter,
    catalogue: Catalogue,
    order_id: str,
    request: AssignmentRequest,
    staff_id: str,
    now: datetime | None = None,
) -> AssignmentView:
    """Assign (or, before pick-up, reassign) the order's partners; a paid order becomes
    ``assigned``. Publishes ``order.assigned`` with ids and roles, no personal data."""
    order = await session.get(Order, order_id)
    if order is None or order.anonymised_at is not None:
        raise NotFound("no such order")
    if order.status not in ASSIGNABLE_STATUSES:
        raise AssignmentNotAllowed(
            f"an order {order.status} cannot be assigned: it must be paid and not picked up"
        )
    problems = _assignment_problems(order, request)
    if problems:
        raise InvalidOrder(problems)
    order.logistics_partner_id = request.logistics_partner_id
    order.customs_broker_id = request.customs_broker_id
    order.assigned_at = now or utcnow()
    order.assigned_by = staff_id
    if order.status == "paid":
        await orders.change_status(
            session, events=events, order_id=order.id, status="assigned", actor=staff_id
        )
    view = _assignment_view(order)
    shared = [
        field
        for partner in view.partners
        for field in catalogue.visible_fields(RESOURCE, partner.purpose)
    ]
    events.add(
        session,
        type=f"{EVENT_PREFIX}.assigned.v1",
        subject=order.buyer_id,
        purpose=FULFILMENT,
        data=contracts.OrderAssigned(
            order_id=order.id,
            partners=[partner.model_dump() for partner in view.partners],
            by=staff_id,
        ),
        categories=_categories(catalogue, shared),
    )
    return view


# --------------------------------------------------------------------------- partner views


def virtual_number(cipher: FieldCipher, order_id: str, prefix: str) -> str:
    """``<prefix>-<extension>``: 6 digits from a keyed hash of the order number (see the
    module docstring); never derived from the phone."""
    digest = cipher.blind_index(order_id, context=VIRTUAL_NUMBER_CONTEXT)
    extension = int(digest, 16) % 10**VIRTUAL_NUMBER_DIGITS
    return f"{prefix}-{extension:0{VIRTUAL_NUMBER_DIGITS}d}"


# The partners' reads run on Core statements built once (no ORM objects): the orders
# with their buyers' key rows in one query, the lines only for a purpose that sees them,
# and the reads' processing records in one insert, in the request's transaction.

_ORDERS = Order.__table__  # type: ignore[attr-defined]
_LINES = OrderLine.__table__  # type: ignore[attr-defined]
_LINES_OF: Final = (
    select(_LINES)
    .where(_LINES.c.order_id.in_(bindparam("ids", expanding=True)))
    .order_by(_LINES.c.order_id, _LINES.c.position)
)


def _open_statements(role: Role) -> tuple[Select[Any], Select[Any], Select[Any]]:
    """One order, the first page and a next page of the orders open for ``role``'s duty
    and assigned to the partner (``partner_id``), each row with its buyer's key row."""
    open_for = orders.ORDERS_WITH_KEY.where(
        _ORDERS.c[role.field] == bindparam("partner_id"),
        _ORDERS.c.status.in_(sorted(OPEN_STATUSES)),
    )
    newest_first = (_ORDERS.c.created_at.desc(), _ORDERS.c.id.desc())
    one = open_for.where(_ORDERS.c.id == bindparam("order_id"))
    first = open_for.order_by(*newest_first).limit(bindparam("limit"))
    after = or_(
        _ORDERS.c.created_at < bindparam("created_at", type_=UtcDateTime()),
        and_(
            _ORDERS.c.created_at == bindparam("created_at", type_=UtcDateTime()),
            _ORDERS.c.id < bindparam("after_id"),
        ),
    )
    following = open_for.where(after).order_by(*newest_first).limit(bindparam("limit"))
    return one, first, following


#: Per role: (one order, first page, next page); see :func:`_open_statements`.
_OPEN: Final = {name: _open_statements(role) for name, role in ROLES.items()}


async def _lines(session: AsyncSession, order_ids: Sequence[str]) -> dict[str, list[Row[Any]]]:
    lines: dict[str, list[Row[Any]]] = {order_id: [] for order_id in order_ids}
    if order_ids:
        for line in await session.execute(_LINES_OF, {"ids": list(order_ids)}):
            lines[line.order_id].append(line)
    return lines


def _partner_view(
    order: Row[Any],
    lines: Sequence[Row[Any]],
    personal: Mapping[str, Any],
    *,
    duty: Duty,
    catalogue: Catalogue,
    number: str | None,
) -> PartnerOrderView:
    values: dict[str, Any] = {
        "order_id": order.id,
        "status": order.status,
        "role": duty.role,
        "purpose": duty.purpose,
        "created_at": order.created_at,
        "currency": order.currency,
        "cross_border": order.cross_border,
        "delivery_window": order.delivery_window,
    }
    visible = catalogue.visible_fields(RESOURCE, duty.purpose)
    if "amount_payable" in visible:
        values["amount_payable"] = order.amount_payable
    if "lines" in visible:  # the purchase record: a courier never sees it
        values["lines"] = [
            {
                "goods_id": line.goods_id,
                "name": line.goods_name,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "line_total": line.line_total,
                "cross_border": line.cross_border,
            }
            for line in lines
        ]
    if number is not None:
        values["virtual_number"] = number
    for field, rule in visible.items():
        if field in PURCHASE_RECORD_FIELDS:
            continue
        if field == "consignee_phone" and number is not None:
            continue  # the virtual number replaces it
        value = personal.get(field)
        values[field] = None if value is None else mask_value(value, rule)
    return PartnerOrderView.model_validate(values)


async def _partner_views(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    catalogue: Catalogue,
    duty: Duty,
    found: Sequence[Row[Any]],
    virtual_number_prefix: str,
    restrictions: Restrictions | None = None,
) -> list[PartnerOrderView]:
    """The views of ``found`` for ``duty``, one processing record per order read. The
    order of a buyer who restricted the duty's purpose or a category it shows, or whose
    deleted account left it under a legal hold, is refused (OB-L-2, OB-L-5)."""
    if restrictions is not None:
        shown = _categories(catalogue, list(catalogue.visible_fields(RESOURCE, duty.purpose)))
        for order in found:
            restrictions.check(order.buyer_id, duty.purpose, shown)
    visible = catalogue.visible_fields(RESOURCE, duty.purpose)
    lines = await _lines(session, [order.id for order in found] if "lines" in visible else [])
    use_number = duty.role == "logistics" and bool(virtual_number_prefix)
    fields = [
        field
        for field in catalogue.visible_fields(RESOURCE, duty.purpose)
        if field in PERSONAL_FIELDS and not (use_number and field == "consignee_phone")
    ]
    # The purchase record the view shows (plain columns, yet the buyer's data).
    record = [
        field
        for field in ("amount_payable", "lines")
        if field in catalogue.visible_fields(RESOURCE, duty.purpose)
    ]
    views: list[PartnerOrderView] = []
    records: list[Event] = []
    openers: dict[str, FieldOpener] = {}  # a buyer's key unwrapped once for their orders
    for order in found:
        opener = openers.get(order.buyer_id)
        if opener is None:
            opener = openers[order.buyer_id] = cipher.opener(order.buyer_id, order)
        personal = orders.open_fields(opener, order, fields)
        number = virtual_number(cipher, order.id, virtual_number_prefix) if use_number else None
        views.append(
            _partner_view(
                order,
                lines.get(order.id, []),
                personal,
                duty=duty,
                catalogue=catalogue,
                number=number,
            )
        )
        if personal or record:
            records.append(
                events.processing_event(
                    subject=order.buyer_id,
                    actor=duty.partner_id,
                    action="read",
                    purpose=duty.purpose,
                    resource=RESOURCE,
                    categories=_categories(catalogue, [*personal, *record]),
                )
            )
    await events.insert(session, records)
    return views


async def get_partner_order(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    catalogue: Catalogue,
    duty: Duty,
    order_id: str,
    virtual_number_prefix: str = "",
    restrictions: Restrictions | None = None,
) -> PartnerOrderView:
    """An order assigned to the partner in its role and open for its duty; else 404."""
    one, _first, _next = _OPEN[duty.role]
    order = (
        await session.execute(one, {"order_id": order_id, "partner_id": duty.partner_id})
    ).first()
    if order is None:
        raise NotFound("no such order")
    [view] = await _partner_views(
        session,
        cipher=cipher,
        events=events,
        catalogue=catalogue,
        duty=duty,
        found=[order],
        virtual_number_prefix=virtual_number_prefix,
        restrictions=restrictions,
    )
    # Whose order it is, for the gateway's own check (OB-L-2, OB-L-5); never shown to the
    # partner (policy/routes.yaml: owner_hidden).
    view.account_id = order.buyer_id
    return view


async def list_partner_orders(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    catalogue: Catalogue,
    duty: Duty,
    limit: int,
    cursor: str | None = None,
    virtual_number_prefix: str = "",
    restrictions: Restrictions | None = None,
) -> PartnerOrderPage:
    """The orders assigned to the partner in its role and open for its duty, newest first;
    those of restricted or held buyers are left out (OB-L-2, OB-L-5)."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    _one, query, following = _OPEN[duty.role]
    params: dict[str, Any] = {"partner_id": duty.partner_id, "limit": limit + 1}
    if cursor is not None:
        params["created_at"], params["after_id"] = orders.decode_cursor(cursor)
        query = following
    found = list(await session.execute(query, params))
    more = len(found) > limit
    found = found[:limit]
    shown = _categories(catalogue, list(catalogue.visible_fields(RESOURCE, duty.purpose)))
    views = await _partner_views(
        session,
        cipher=cipher,
        events=events,
        catalogue=catalogue,
        duty=duty,
        found=[
            order
            for order in found
            if restrictions is None
            or restrictions.refusal(order.buyer_id, duty.purpose, shown) is None
        ],
        virtual_number_prefix=virtual_number_prefix,
    )
    return PartnerOrderPage(
        items=views, next_cursor=orders.encode_cursor(found[-1]) if more else None
    )


# --------------------------------------------------------------------------- delivery


def _delivery_view(order: Order, update: DeliveryUpdate) -> DeliveryView:
    return DeliveryView.model_validate(
        {
            "order_id": order.id,
            "delivery_status": update.status,
            "order_status": order.status,
            "at": update.at,
        }
    )


async def report_delivery(
    session: AsyncSession,
    *,
    events: EventWriter,
    duty: Duty,
    order_id: str,
    status: DeliveryStatus,
    now: datetime | None = None,
) -> DeliveryView:
    """Record a delivery status from the order's logistics partner and move the order
    (see :data:`DELIVERY_STEPS`); ``delivered`` completes it."""
    if duty.role != "logistics":
        raise WrongDuty("only the order's logistics partner reports delivery status")
    order = await session.scalar(select(Order).where(col(Order.id) == order_id, duty.assigned()))
    if order is None:
        raise NotFound("no such order")
    last = await session.scalar(
        select(DeliveryUpdate)
        .where(col(DeliveryUpdate.order_id) == order.id)
        .order_by(col(DeliveryUpdate.id).desc())
        .limit(1)
    )
    if last is not None and last.status == status and last.partner_id == duty.partner_id:
        return _delivery_view(order, last)  # a retry: already recorded
    allowed_from, steps = DELIVERY_STEPS[status]
    if order.status not in allowed_from:
        raise DeliveryStatusConflict(f"an order {order.status} cannot be reported {status}")
    for step in steps:
        await orders.change_status(
            session, events=events, order_id=order.id, status=step, actor=duty.partner_id
        )
    update = DeliveryUpdate(
        order_id=order.id, partner_id=duty.partner_id, status=status, at=now or utcnow()
    )
    session.add(update)
    await session.flush()
    events.add(
        session,
        type=f"{EVENT_PREFIX}.delivery_updated.v1",
        subject=order.buyer_id,
        purpose=duty.purpose,
        data=contracts.OrderDeliveryUpdated(
            order_id=order.id,
            delivery_status=status,
            order_status=order.status,
            partner_id=duty.partner_id,
        ),
    )
    return _delivery_view(order, update)
