"""Orders: place one, read one, list them, move the status on. No HTTP here.

Placing an order (policy 2C, 2D):

- the goods decide what else is needed: cross-border goods need the customs identity and
  ordinary goods refuse it (OB-2D-3, 422 naming the fields); special goods need a real-name
  verified buyer (OB-2A-1, 403 ``verification-required``);
- prices come from the goods and discounts from the staff-set codes the buyer names, never
  from the request; amounts are exact decimals rounded half-up to 0.01 (OB-2D-6);
- the personal fields (the catalogue's ``orders.order`` fields) are encrypted under the
  buyer's key with the context ``orders.order.<field>``; goods, amounts, status and times
  stay plain for reconciliation and tax (OB-4-7);
- an ``Idempotency-Key`` (per buyer) makes a retry return the first order; the same key
  with another request is a 409. A request racing the first with its key waits for it and
  answers like a retry; a refused request leaves its key unused. Key and request are kept
  only as keyed hashes;
- events: ``order.placed`` (ids, amounts, flags: no personal data) and a processing record
  for every write (purpose ``order.fulfilment``) and read (``order.query``) of personal
  fields, with the categories the catalogue gives them.

Only the buyer reads an order: anyone else gets 404 by id and never sees it in a list
(OB-4-7, OWASP API1).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, Final, Literal, Protocol

from sqlalchemy import (
    Row,
    and_,
    bindparam,
    cast,
    insert,
    literal_column,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from kit.catalogue import Catalogue, MaskingRule
from kit.contracts import OrderPlaced, OrderStatusChanged
from kit.crypto import SUBJECT_KEY_COLUMNS, SUBJECT_KEYS, FieldCipher, FieldOpener
from kit.db import UtcDateTime, insert_ignoring_duplicates, to_cents
from kit.errors import Conflict, DomainError, NotFound
from kit.ids import new_id
from kit.masking import mask_value
from kit.models import utcnow
from kit.outbox import EventWriter
from services.orders.goods.service import discounts_by_code
from services.orders.models import (
    Goods,
    Order,
    OrderIdempotencyKey,
    OrderLine,
    OrderStatusChange,
)
from services.orders.orders.schemas import OrderCreate, OrderPage, OrderView
from services.orders.security import rules as fraud_rules

RESOURCE: Final = "orders.order"
FULFILMENT: Final = "order.fulfilment"
QUERY: Final = "order.query"
EVENT_PREFIX: Final = "com.signature.orders.order"
MAX_PAGE_SIZE: Final = 100

#: The personal fields of an order: the catalogue's ``orders.order`` fields, each stored
#: encrypted in the column ``<field>_encrypted``.
PERSONAL_FIELDS: Final = (
    "consignee_name",
    "consignee_phone",
    "address_region",
    "address_detail",
    "postal_code",
    "extra_phones",
    "invoice_title",
    "invoice_tax_id",
    "invoice_email",
    "customs_name",
    "customs_id_number",
    "remarks",
)
_JSON_FIELDS: Final = frozenset({"address_region", "extra_phones"})
#: The purchase record: the catalogue's ``orders.order`` fields kept plain in the order's
#: columns (reconciliation and tax read them), yet the buyer's personal data (GB/T
#: 35273-2020 Appendix B): shown only to the purposes the catalogue lists on them, and
#: never put in an event.
PURCHASE_RECORD_FIELDS: Final = (
    "lines",
    "subtotal",
    "discounts",
    "discount_total",
    "amount_payable",
)
IDEMPOTENCY_KEY_CONTEXT: Final = "orders.order.idempotency_key"
IDEMPOTENCY_REQUEST_CONTEXT: Final = "orders.order.idempotency_request"

#: Which status may follow which. ``completed`` and ``cancelled`` start the retention clock;
#: ``cancelling`` waits for the payment provider's refund (``payments``).
TRANSITIONS: Final[Mapping[str, frozenset[str]]] = {
    "placed": frozenset({"paid", "cancelled"}),
    "paid": frozenset({"assigned", "cancelling", "cancelled"}),
    "assigned": frozenset({"shipped", "cancelling", "cancelled"}),
    "cancelling": frozenset({"cancelled"}),
    "shipped": frozenset({"delivered"}),
    "delivered": frozenset({"completed"}),
    "completed": frozenset(),
    "cancelled": frozenset(),
}


class InvalidOrder(DomainError):
    """Fields missing, refused or wrong for these goods: named like a validation error."""

    status, code, title = 422, "validation-error", "Invalid request"

    def __init__(self, problems: Sequence[Mapping[str, str]]) -> None:
        fields = ", ".join(problem["field"] for problem in problems)
        super().__init__(
            f"invalid or missing fields: {fields}", extra={"errors": [dict(p) for p in problems]}
        )


class VerificationRequired(DomainError):
    """Special goods need a real-name verified buyer (policy 2A, OB-2A-1)."""

    status, code, title = 403, "verification-required", "Verification required"


class IdempotencyKeyReused(Conflict):
    code, title = "idempotency-key-reused", "Idempotency key reused"


class InvalidCursor(DomainError):
    status, code, title = 422, "invalid-cursor", "Invalid cursor"


class InvalidTransition(Conflict):
    code, title = "invalid-status-transition", "Invalid status transition"


@dataclass(frozen=True)
class PlacedOrder:
    order: OrderView
    created: bool  # False: an earlier order returned for a repeated Idempotency-Key


def check_catalogue(catalogue: Catalogue) -> None:
    """Refuse to start if the catalogue does not describe every personal field stored."""
    resource = catalogue.resources.get(RESOURCE)
    stored = {*PERSONAL_FIELDS, *PURCHASE_RECORD_FIELDS}
    missing = stored - set(resource.fields if resource else ())
    if missing:
        raise RuntimeError(f"{RESOURCE} in the catalogue lacks fields: {sorted(missing)}")
    for purpose in (QUERY, FULFILMENT):  # the owner's view always holds the record
        hidden = set(PURCHASE_RECORD_FIELDS) - set(catalogue.visible_fields(RESOURCE, purpose))
        if hidden:
            raise RuntimeError(f"{purpose} must see the purchase record: {sorted(hidden)}")


def _problem(field: str, message: str, type_: str) -> dict[str, str]:
    return {"field": field, "message": message, "type": type_}


def _categories(catalogue: Catalogue, fields: Iterable[str]) -> list[str]:
    return sorted({catalogue.field_policy(RESOURCE, field).category for field in fields})


# --------------------------------------------------------------------------- personal data


def personal_values(request: OrderCreate) -> dict[str, Any]:
    """The request's personal fields by catalogue name; absent optional ones left out."""
    address = request.address
    values: dict[str, Any] = {
        "consignee_name": request.consignee_name,
        "consignee_phone": request.consignee_phone,
        "address_region": {
            "province": address.province,
            "city": address.city,
            "district": address.district,
        },
        "address_detail": address.detail,
        "postal_code": address.postal_code,
        "extra_phones": list(request.extra_phones) or None,
        "remarks": request.remarks or None,
    }
    if request.invoice is not None:
        values |= {
            "invoice_title": request.invoice.title,
            "invoice_tax_id": request.invoice.tax_id,
            "invoice_email": request.invoice.email,
        }
    if request.customs is not None:
        values |= {
            "customs_name": request.customs.name,
            "customs_id_number": request.customs.id_number,
        }
    return {field: value for field, value in values.items() if value is not None}


async def _encrypt(
    session: AsyncSession, cipher: FieldCipher, order: Order, values: Mapping[str, Any]
) -> None:
    for field, value in values.items():
        text = json.dumps(value, ensure_ascii=False) if field in _JSON_FIELDS else str(value)
        token = await cipher.encrypt(
            session, subject=order.buyer_id, value=text, context=f"{RESOURCE}.{field}"
        )
        setattr(order, f"{field}_encrypted", token)


async def encrypt_fields(
    session: AsyncSession, cipher: FieldCipher, order: Order, values: Mapping[str, Any]
) -> None:
    """Store ``values`` (catalogue field -> plain value) encrypted under the buyer's key,
    as placing an order does (a correction replaces them this way)."""
    await _encrypt(session, cipher, order, values)


async def decrypt_fields(
    session: AsyncSession, cipher: FieldCipher, order: Order, fields: Iterable[str]
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field in fields:
        token: str | None = getattr(order, f"{field}_encrypted")
        if not token:  # never given, or removed when its retention ended
            continue
        text = await cipher.decrypt(
            session, subject=order.buyer_id, token=token, context=f"{RESOURCE}.{field}"
        )
        values[field] = json.loads(text) if field in _JSON_FIELDS else text
    return values


def _view(
    order: Order | Row[Any] | SimpleNamespace,
    lines: Sequence[OrderLine | Row[Any] | SimpleNamespace],
    history: Sequence[OrderStatusChange | Row[Any] | SimpleNamespace],
    personal: Mapping[str, Any],
    *,
    shown: Mapping[str, MaskingRule],
) -> OrderView:
    """The owner's view; ``shown``: the fields its purpose sees, with their masks
    (``Catalogue.visible_fields``). The order, lines and history: ORM objects, Core rows,
    or the values just written (namespaces)."""
    masked: dict[str, Any] = {}
    for field in PERSONAL_FIELDS:
        rule = shown.get(field)
        value = personal.get(field)
        masked[field] = None if rule is None or value is None else mask_value(value, rule)
    return OrderView.model_validate(
        {
            "order_id": order.id,
            "status": order.status,
            "created_at": order.created_at,
            "currency": order.currency,
            "lines": [
                {
                    "goods_id": line.goods_id,
                    "name": line.goods_name,
                    "quantity": line.quantity,
                    "unit_price": line.unit_price,
                    "line_total": line.line_total,
                    "cross_border": line.cross_border,
                    "special_category": line.special_category,
                }
                for line in lines
            ],
            "subtotal": order.subtotal,
            "discounts": order.discounts,
            "discount_total": order.discount_total,
            "amount_payable": order.amount_payable,
            "status_history": [{"status": c.status, "at": c.at} for c in history],
            "invoice_requested": order.invoice_requested,
            "delivery_window": order.delivery_window,
            "pay_by": order.pay_by,
            **masked,
        }
    )


# --------------------------------------------------------------------------- placing

_ORDERS = Order.__table__  # type: ignore[attr-defined]
_LINES = OrderLine.__table__  # type: ignore[attr-defined]
_HISTORY = OrderStatusChange.__table__  # type: ignore[attr-defined]


def payment_deadline(
    catalogue: Catalogue, windows: Iterable[str | None], placed_at: datetime
) -> datetime:
    """When an order must be paid: the shortest payment window of its goods (``None``:
    the catalogue's default window)."""
    return min(catalogue.payment_window(window).period.after(placed_at) for window in windows)


def _goods_problems(
    request: OrderCreate, goods: Mapping[str, Goods | Row[Any]]
) -> list[dict[str, str]]:
    problems: list[dict[str, str]] = []
    seen: set[str] = set()
    for index, item in enumerate(request.items):
        field = f"body.items.{index}.goods_id"
        if item.goods_id not in goods:
            problems.append(_problem(field, "no such goods", "unknown_goods"))
        elif item.goods_id in seen:
            problems.append(_problem(field, "goods listed twice", "duplicate_goods"))
        seen.add(item.goods_id)
    currencies = {goods[i.goods_id].currency for i in request.items if i.goods_id in goods}
    if len(currencies) > 1:
        problems.append(
            _problem("body.items", "goods in one order share one currency", "mixed_currency")
        )
    return problems


def _customs_problems(request: OrderCreate, *, cross_border: bool) -> list[dict[str, str]]:
    """Cross-border goods need the customs identity; other goods must not be sent it."""
    fields = ("body.customs.name", "body.customs.id_number")
    if cross_border and request.customs is None:
        message = "Field required: cross-border goods need the customs identity"
        return [_problem(field, message, "missing") for field in fields]
    if not cross_border and request.customs is not None:
        message = "customs identity is taken only for cross-border goods"
        return [_problem(field, message, "extra_forbidden") for field in fields]
    return []


async def _apply_discounts(
    session: AsyncSession, request: OrderCreate, *, currency: str, subtotal: Decimal
) -> tuple[list[dict[str, str]], Decimal, list[dict[str, str]]]:
    """The discounts applied ({code, amount}), their total (never above the subtotal) and
    the problems with the codes named."""
    found = await discounts_by_code(session, request.discount_codes)
    problems: list[dict[str, str]] = []
    applied: list[dict[str, str]] = []
    remaining = subtotal
    seen: set[str] = set()
    for index, code in enumerate(request.discount_codes):
        field = f"body.discount_codes.{index}"
        discount = found.get(code)
        if code in seen:
            problems.append(_problem(field, "code given twice", "duplicate_discount"))
        elif discount is None:
            problems.append(_problem(field, "no such discount code", "unknown_discount"))
        elif discount.currency != currency:
            problems.append(_problem(field, "code is for another currency", "currency"))
        else:
            amount = min(discount.amount, remaining)
            remaining -= amount
            applied.append({"code": code, "amount": str(to_cents(amount))})
        seen.add(code)
    return applied, to_cents(subtotal - remaining), problems


def _canonical(request: OrderCreate) -> str:
    return json.dumps(
        request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


async def _replay(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    catalogue: Catalogue,
    buyer_id: str,
    key_index: str,
    digest: str,
) -> OrderView:
    """The order placed first with this key (its claim is in the table)."""
    record = (
        await session.execute(_KEY_RECORD, {"buyer_id": buyer_id, "key_index": key_index})
    ).one()
    if record.request_digest != digest:
        raise IdempotencyKeyReused("this Idempotency-Key was used for a different order request")
    return await _replay_view(
        session,
        cipher=cipher,
        catalogue=catalogue,
        buyer_id=buyer_id,
        order_id=record.order_id,
    )


# Placing runs on Core statements built once (no ORM objects, no unit of work), in the
# request's transaction: the key claimed (only with an Idempotency-Key), the goods read
# with the buyer's key row, then the order, its lines, its first status, the fraud signal
# and one query for the fraud rules, and the two events in one insert. Nothing is read
# back: the answer is built from the values written.

_GOODS = Goods.__table__  # type: ignore[attr-defined]
_KEYS = OrderIdempotencyKey.__table__  # type: ignore[attr-defined]
_KEY_RECORD: Final = select(_KEYS.c.request_digest, _KEYS.c.order_id).where(
    _KEYS.c.buyer_id == bindparam("buyer_id"), _KEYS.c.key_index == bindparam("key_index")
)
#: The goods bought, each row with the buyer's key row (outer-joined: none before the
#: buyer's first order), so the data key costs no query of its own.
_GOODS_WITH_KEY: Final = (
    select(_GOODS, *SUBJECT_KEY_COLUMNS)
    .select_from(_GOODS.outerjoin(SUBJECT_KEYS, SUBJECT_KEYS.c.subject == bindparam("buyer_id")))
    .where(_GOODS.c.id.in_(bindparam("ids", expanding=True)))
)
_INSERT_ORDER: Final = insert(_ORDERS)
_INSERT_LINE: Final = insert(_LINES)
_INSERT_STATUS: Final = insert(_HISTORY)
_ENCRYPTED_COLUMNS: Final = tuple(f"{field}_encrypted" for field in PERSONAL_FIELDS)


async def _claim_key(
    session: AsyncSession, *, buyer_id: str, key_index: str, digest: str, order_id: str
) -> bool:
    """Record the Idempotency-Key for ``order_id``; False if the buyer used it before
    (a concurrent request with it waits for the first to commit or roll back). The claim
    goes with the transaction: a refused request leaves the key unused."""
    result: Any = await session.execute(
        insert_ignoring_duplicates(session, _KEYS),
        {
            "buyer_id": buyer_id,
            "key_index": key_index,
            "request_digest": digest,
            "order_id": order_id,
            "created_at": utcnow(),
        },
    )
    return bool(result.rowcount == 1)


async def place_order(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    catalogue: Catalogue,
    buyer_id: str,
    buyer_verified: bool,
    request: OrderCreate,
    fraud_thresholds: fraud_rules.Thresholds,
    idempotency_key: str | None = None,
) -> PlacedOrder:
    order_id = new_id("ord")
    if idempotency_key is not None:
        key_index = cipher.blind_index(idempotency_key, context=IDEMPOTENCY_KEY_CONTEXT)
        digest = cipher.blind_index(_canonical(request), context=IDEMPOTENCY_REQUEST_CONTEXT)
        claimed = await _claim_key(
            session, buyer_id=buyer_id, key_index=key_index, digest=digest, order_id=order_id
        )
        if not claimed:
            replayed = await _replay(
                session,
                cipher=cipher,
                catalogue=catalogue,
                buyer_id=buyer_id,
                key_index=key_index,
                digest=digest,
            )
            return PlacedOrder(order=replayed, created=False)

    rows = await session.execute(
        _GOODS_WITH_KEY,
        {"buyer_id": buyer_id, "ids": list({item.goods_id for item in request.items})},
    )
    goods: dict[str, Row[Any]] = {row.id: row for row in rows}
    problems = _goods_problems(request, goods)
    if problems:
        raise InvalidOrder(problems)
    bought = [(goods[item.goods_id], item.quantity) for item in request.items]
    cross_border = any(item.cross_border for item, _ in bought)
    special = any(item.special_category for item, _ in bought)
    currency = bought[0][0].currency
    line_totals = [to_cents(item.price * quantity) for item, quantity in bought]
    subtotal = to_cents(sum(line_totals, Decimal(0)))
    applied, discount_total, discount_problems = await _apply_discounts(
        session, request, currency=currency, subtotal=subtotal
    )
    problems = _customs_problems(request, cross_border=cross_border) + discount_problems
    if problems:
        raise InvalidOrder(problems)
    if special and not buyer_verified:
        raise VerificationRequired(
            "special goods need real-name verification; verify at identity's /verifications",
            extra={"action": "buy_special_goods"},
        )

    now = utcnow()
    personal = personal_values(request)
    sealer = await cipher.sealer(session, subject=buyer_id, key_row=bought[0][0])
    encrypted: dict[str, str | None] = dict.fromkeys(_ENCRYPTED_COLUMNS)
    for field, value in personal.items():
        text = json.dumps(value, ensure_ascii=False) if field in _JSON_FIELDS else str(value)
        encrypted[f"{field}_encrypted"] = sealer.encrypt(text, context=f"{RESOURCE}.{field}")
    order = {
        "id": order_id,
        "buyer_id": buyer_id,
        "status": "placed",
        "currency": currency,
        "subtotal": subtotal,
        "discounts": applied,
        "discount_total": discount_total,
        "amount_payable": subtotal - discount_total,
        "cross_border": cross_border,
        "special_category": special,
        "invoice_requested": request.invoice is not None,
        "delivery_window": (
            request.delivery_window.model_dump(mode="json") if request.delivery_window else None
        ),
        "pay_by": payment_deadline(catalogue, [item.payment_window for item, _ in bought], now),
        "created_at": now,
        **encrypted,
    }
    lines = [
        {
            "order_id": order_id,
            "position": position,
            "goods_id": item.id,
            "goods_name": item.name,
            "quantity": quantity,
            "unit_price": item.price,
            "line_total": total,
            "cross_border": item.cross_border,
            "special_category": item.special_category,
        }
        for position, ((item, quantity), total) in enumerate(zip(bought, line_totals, strict=True))
    ]
    placed = {"order_id": order_id, "status": "placed", "actor": buyer_id, "at": now}
    await session.execute(_INSERT_ORDER, order)  # the order before the rows that refer to it
    await session.execute(_INSERT_LINE, lines)
    await session.execute(_INSERT_STATUS, placed)
    address = request.address
    await fraud_rules.order_placed(
        session,
        cipher=cipher,
        events=events,
        thresholds=fraud_thresholds,
        order_id=order_id,
        buyer_id=buyer_id,
        phone=request.consignee_phone,
        address=(address.province, address.city, address.district, address.detail),
        placed_at=now,
    )

    categories = _categories(catalogue, personal)
    await events.insert(
        session,
        [
            events.event(
                type=f"{EVENT_PREFIX}.placed.v1",
                subject=buyer_id,
                purpose=FULFILMENT,
                data=OrderPlaced(
                    order_id=order_id,
                    status="placed",
                    currency=currency,
                    discount_codes=[discount["code"] for discount in applied],
                    goods_ids=[item.id for item, _ in bought],
                    line_count=len(lines),
                    cross_border=cross_border,
                    special_category=special,
                    invoice_requested=request.invoice is not None,
                ),
                categories=categories,
            ),
            events.processing_event(
                subject=buyer_id,
                actor=buyer_id,
                action="write",
                purpose=FULFILMENT,
                resource=RESOURCE,
                categories=categories,
            ),
        ],
    )
    # The answer echoes what the buyer just sent, shown as the owner's view shows it.
    view = _view(
        SimpleNamespace(**order),
        [SimpleNamespace(**line) for line in lines],
        [SimpleNamespace(**placed)],
        personal,
        shown=catalogue.visible_fields(RESOURCE, QUERY),
    )
    return PlacedOrder(order=view, created=True)


# --------------------------------------------------------------------------- reading
#
# The owner's reads run on plain Core statements over ``Database.reads`` (no session, no
# ORM objects), each built once here: the orders with their buyer's key row (one query),
# then the lines and the status history of the page's orders, in one statement.

#: Orders, each with its buyer's key row: what a Core read that decrypts them selects
#: (:func:`open_fields`), the owner's and the partners' alike.
ORDERS_WITH_KEY: Final = select(_ORDERS, *SUBJECT_KEY_COLUMNS).select_from(
    _ORDERS.outerjoin(SUBJECT_KEYS, SUBJECT_KEYS.c.subject == _ORDERS.c.buyer_id)
)
_NEWEST_FIRST = (_ORDERS.c.created_at.desc(), _ORDERS.c.id.desc())
_ONE_OWNED = ORDERS_WITH_KEY.where(
    _ORDERS.c.id == bindparam("order_id"), _ORDERS.c.buyer_id == bindparam("buyer_id")
)
_FIRST_PAGE = (
    ORDERS_WITH_KEY.where(_ORDERS.c.buyer_id == bindparam("buyer_id"))
    .order_by(*_NEWEST_FIRST)
    .limit(bindparam("limit"))
)
_NEXT_PAGE = (
    ORDERS_WITH_KEY.where(
        _ORDERS.c.buyer_id == bindparam("buyer_id"),
        or_(
            _ORDERS.c.created_at < bindparam("created_at", type_=UtcDateTime()),
            and_(
                _ORDERS.c.created_at == bindparam("created_at", type_=UtcDateTime()),
                _ORDERS.c.id < bindparam("order_id"),
            ),
        ),
    )
    .order_by(*_NEWEST_FIRST)
    .limit(bindparam("limit"))
)
#: The lines and the status history of a page's orders in one round trip: the lines'
#: rows (``kind`` 0, by position), then the history's (``kind`` 1, oldest first).
_PAGE_DETAILS = union_all(
    select(
        _LINES.c.order_id,
        literal_column("0").label("kind"),
        _LINES.c.position.label("n"),
        _LINES.c.goods_id,
        _LINES.c.goods_name,
        _LINES.c.quantity,
        _LINES.c.unit_price,
        _LINES.c.line_total,
        _LINES.c.cross_border,
        _LINES.c.special_category,
        cast(null(), _HISTORY.c.status.type).label("status"),
        cast(null(), UtcDateTime()).label("at"),
    ).where(_LINES.c.order_id.in_(bindparam("ids", expanding=True))),
    select(
        _HISTORY.c.order_id,
        literal_column("1"),
        _HISTORY.c.id,
        *(null() for _ in range(7)),
        _HISTORY.c.status,
        _HISTORY.c.at,
    ).where(_HISTORY.c.order_id.in_(bindparam("ids", expanding=True))),
).order_by(literal_column("kind"), literal_column("n"))


async def _details(
    connection: AsyncConnection | AsyncSession, ids: Sequence[str]
) -> tuple[dict[str, list[Row[Any]]], dict[str, list[Row[Any]]]]:
    """The lines and the status history of the orders ``ids``, in one query."""
    lines: dict[str, list[Row[Any]]] = defaultdict(list)
    history: dict[str, list[Row[Any]]] = defaultdict(list)
    for row in await connection.execute(_PAGE_DETAILS, {"ids": list(ids)}):
        (history if row.kind else lines)[row.order_id].append(row)
    return lines, history


async def _owner_views(
    connection: AsyncConnection,
    *,
    cipher: FieldCipher,
    catalogue: Catalogue,
    buyer_id: str,
    orders: Sequence[Row[Any]],
) -> list[OrderView]:
    """The owner's views of ``orders`` (all the buyer's, each row with the buyer's key
    columns). No processing record: an owner reads only through the gateway, which records
    what left through it after filtering (README, "Recording each read once")."""
    if not orders:
        return []
    lines, history = await _details(connection, [order.id for order in orders])
    shown = catalogue.visible_fields(RESOURCE, QUERY)
    encrypted = [field for field in PERSONAL_FIELDS if field in shown]
    opener = cipher.opener(buyer_id, orders[0])
    return [
        _view(
            order,
            lines[order.id],
            history[order.id],
            open_fields(opener, order, encrypted),
            shown=shown,
        )
        for order in orders
    ]


def open_fields(opener: FieldOpener, order: Row[Any], fields: Iterable[str]) -> dict[str, Any]:
    """The personal ``fields`` of an order read with its buyer's key row (a Core read),
    by catalogue name; a field never given, or removed when its retention ended, is left
    out (as :func:`decrypt_fields` does)."""
    values: dict[str, Any] = {}
    for field in fields:
        token: str | None = getattr(order, f"{field}_encrypted")
        if token:  # None or "": never given, or removed when its retention ended
            text = opener.decrypt(token, context=f"{RESOURCE}.{field}")
            values[field] = json.loads(text) if field in _JSON_FIELDS else text
    return values


async def purpose_views(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    catalogue: Catalogue,
    orders: Sequence[Order],
    purpose: str,
) -> list[OrderView]:
    """``orders`` as ``purpose`` sees them: only the personal fields the catalogue gives
    it, masked as it says (the security team's ``security.anti_fraud``, customer
    service's ``customer_service``)."""
    if not orders:
        return []
    lines, history = await _details(session, [order.id for order in orders])
    shown = catalogue.visible_fields(RESOURCE, purpose)
    fields = [field for field in PERSONAL_FIELDS if field in shown]
    return [
        _view(
            order,
            lines[order.id],
            history[order.id],
            await decrypt_fields(session, cipher, order, fields),
            shown=shown,
        )
        for order in orders
    ]


async def get_order(
    connection: AsyncConnection,
    *,
    cipher: FieldCipher,
    catalogue: Catalogue,
    buyer_id: str,
    order_id: str,
) -> OrderView:
    """The buyer's own order; any other order, whoever owns it, is 404."""
    order = (
        await connection.execute(_ONE_OWNED, {"order_id": order_id, "buyer_id": buyer_id})
    ).first()
    if order is None:
        raise NotFound("no such order")
    [view] = await _owner_views(
        connection, cipher=cipher, catalogue=catalogue, buyer_id=buyer_id, orders=[order]
    )
    return view


async def _replay_view(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    catalogue: Catalogue,
    buyer_id: str,
    order_id: str,
) -> OrderView:
    """The order an earlier request placed, read in the placing session."""
    connection = await session.connection()
    return await get_order(
        connection, cipher=cipher, catalogue=catalogue, buyer_id=buyer_id, order_id=order_id
    )


class _Cursored(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def created_at(self) -> datetime: ...


def encode_cursor(order: _Cursored) -> str:
    raw = f"{order.created_at.isoformat()}|{order.id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
        stamp, order_id = raw.split("|", 1)
        created_at = datetime.fromisoformat(stamp)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidCursor("the cursor is not one this service gave") from exc
    if created_at.tzinfo is None or not order_id:
        raise InvalidCursor("the cursor is not one this service gave")
    return created_at, order_id


async def list_orders(
    connection: AsyncConnection,
    *,
    cipher: FieldCipher,
    catalogue: Catalogue,
    buyer_id: str,
    limit: int,
    cursor: str | None = None,
) -> OrderPage:
    """The buyer's orders, newest first, ``limit`` (at most :data:`MAX_PAGE_SIZE`) a page."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    params: dict[str, Any] = {"buyer_id": buyer_id, "limit": limit + 1}
    query = _FIRST_PAGE
    if cursor is not None:
        params["created_at"], params["order_id"] = decode_cursor(cursor)
        query = _NEXT_PAGE
    orders = list(await connection.execute(query, params))
    more = len(orders) > limit
    orders = orders[:limit]
    views = await _owner_views(
        connection, cipher=cipher, catalogue=catalogue, buyer_id=buyer_id, orders=orders
    )
    return OrderPage(items=views, next_cursor=encode_cursor(orders[-1]) if more else None)


# --------------------------------------------------------------------------- status


async def change_status(
    session: AsyncSession,
    *,
    events: EventWriter,
    order_id: str,
    status: Literal[
        "paid", "assigned", "shipped", "delivered", "completed", "cancelling", "cancelled"
    ],
    actor: str,
) -> None:
    """Move the order on (see :data:`TRANSITIONS`) and keep the step in its history;
    ``completed`` and ``cancelled`` start the retention clock. For payment, partner and
    delivery flows."""
    order = await session.get(Order, order_id)
    if order is None:
        raise NotFound("no such order")
    if status not in TRANSITIONS[order.status]:
        raise InvalidTransition(f"an order {order.status} cannot become {status}")
    now = utcnow()
    order.status = status
    if status == "completed":
        order.completed_at = now
    if status in ("completed", "cancelled"):
        order.retention_starts_at = now
    session.add(OrderStatusChange(order_id=order_id, status=status, actor=actor, at=now))
    events.add(
        session,
        type=f"{EVENT_PREFIX}.status_changed.v1",
        subject=order.buyer_id,
        purpose=FULFILMENT,
        data=OrderStatusChanged(order_id=order_id, status=status, by=actor),
    )
