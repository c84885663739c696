"""Rights requests at orders (OB-R-1, OB-4-1, OB-4-2). No HTTP here.

Export (:func:`export`): every order still linked to the subject, with its goods, amounts,
status and times, and its personal fields decrypted and masked as the catalogue says for
``rights.access`` (the customs ID number stays masked), each with its category, purposes
and retention (``until`` once the order's retention clock has started); and the cart (items
and share links). Anonymised orders name nobody and are not part of it. Every export that
shows personal data is a processing record (actor: the calling service's client id).

Deletion first ends the subject's orders not yet picked up (``placed``, ``paid``,
``assigned``): they are cancelled as the buyer would cancel them
(``payments.service.cancel_open_orders``), unpaid ones at once and paid ones refunded
(``cancelling`` until the provider's refund notification), so their courier loses them and
nobody delivers to a person who asked to be forgotten. Decided (README, "Deleting an
account with open orders"): an account closed at the user's request ends the service the
orders were for (PIPL art. 47(1)-(2): the purpose can no longer be achieved, the service
ends), and the refund returns the buyer's money. An order already picked up (``shipped``,
``delivered``) cannot be cancelled: what is left of it is held as below, storage-only
(``kit.restriction``: its courier reads nothing more).

Then (:func:`delete_subject`): for each of the subject's orders, a field whose retention
is a legal record (:data:`LEGAL_RECORDS`: ``transaction_record``, ``tax_record``) and whose
period has not ended is kept under a legal hold, reported with the retention's legal basis
and ``until`` (the end of its period; none yet for an order still open, whose clock starts
at completion). Every other personal field is deleted now, as the retention sweeper deletes
(``retention.rules``, the same cleared values); an order left with no personal field is
anonymised (``retention.anonymise``). The cart, its share links and the buyer's
idempotency keys are deleted. The subject's key is not shredded: the kept records must stay
readable until their period ends, when the sweeper deletes them.

Correction (``rights.corrections``): orders' part is read from the privacy center
(``kit.rights.CorrectionsFetcher``, a service token for ``rights.access``); the consignee
of an order not yet shipped and the invoice title and email of an order not yet invoiced
are corrected, anything else refused with a reason per field. Without a corrections source
(no service client configured) the correction is refused and says so; when the privacy
center cannot be reached after retries the handler raises
(:class:`kit.rights.CorrectionsUnavailable`), so the consumer tries again and finally
dead-letters it (the request then reads overdue).

Withdraw all (:func:`withdraw_all`): the privacy center withdraws the consents itself; what
depended on them here stops by itself (the location features and price-drop reminders ask
the consent state on every use), and the price-drop reminder state kept on the subject's
cart items (the last price reminded of, held for ``marketing.price_drop`` only) is deleted.
Coordinates were never stored. Answered ``done``, saying so.

:func:`handle` answers a ``rights.requested`` naming orders: ``deletion`` as above
(``partial`` when something is kept, else ``done``), ``access`` ``done`` (the export is
fetched over HTTP), ``correction`` and ``withdraw_all`` as above; the answer goes through
the outbox in the same transaction as the changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Final

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit import rights
from kit.catalogue import Catalogue
from kit.crypto import FieldCipher, SubjectKeyShredded
from kit.events import Event
from kit.masking import mask_value
from kit.models import utcnow
from kit.outbox import EventWriter
from services.orders.cart.service import FIELD as CART_FIELD
from services.orders.cart.service import RESOURCE as CART
from services.orders.models import (
    CartItem,
    CartShare,
    Goods,
    Order,
    OrderIdempotencyKey,
    OrderLine,
)
from services.orders.orders import service as orders
from services.orders.orders.service import PERSONAL_FIELDS
from services.orders.orders.service import RESOURCE as ORDER
from services.orders.payments import service as payments
from services.orders.retention import service as retention
from services.orders.rights import corrections as correcting
from services.orders.rights.schemas import (
    CartExport,
    CartItemExport,
    CartShareExport,
    OrderExport,
    OrderLineExport,
    OrdersExport,
    SearchEntryExport,
    SearchHistoryExport,
)
from services.orders.search import service as search
from services.orders.security import service as security
from services.orders.support import service as support

SERVICE: Final = "orders"
ACTOR: Final = "orders.rights"
#: Retention periods that are legal records: kept despite a deletion request until they end.
LEGAL_RECORDS: Final = frozenset({"transaction_record", "tax_record"})
SHREDDED_NOTE: Final = "the subject's key was shredded: personal values are gone"
NO_CORRECTIONS_SOURCE: Final = (
    "orders cannot read the corrections from the privacy center: no service client is "
    "configured; nothing was changed"
)
NO_CORRECTIONS: Final = "the privacy center holds no corrections for orders in this request"
WITHDRAWN: Final = (
    "location features and price-drop reminders refuse without consent from now on; the "
    "price-drop reminder state of the cart was deleted; coordinates were never stored"
)


# --------------------------------------------------------------------------- export


async def export(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    catalogue: Catalogue,
    actor: str,
    subject: str,
) -> OrdersExport:
    found = list(
        await session.scalars(
            select(Order)
            .where(col(Order.buyer_id) == subject, col(Order.anonymised_at).is_(None))
            .order_by(col(Order.created_at), col(Order.id))
        )
    )
    lines: dict[str, list[OrderLine]] = {order.id: [] for order in found}
    if found:
        for line in await session.scalars(
            select(OrderLine)
            .where(col(OrderLine.order_id).in_(list(lines)))
            .order_by(col(OrderLine.position))
        ):
            lines[line.order_id].append(line)
    visible = catalogue.visible_fields(ORDER, rights.PURPOSE)
    wanted = [name for name in PERSONAL_FIELDS if name in visible]
    categories: set[str] = set()
    shredded = False
    exported: list[OrderExport] = []
    for order in found:
        try:
            values = await orders.decrypt_fields(session, cipher, order, wanted)
        except SubjectKeyShredded:
            values, shredded = {}, True
        fields = {
            name: rights.exported_field(
                catalogue,
                ORDER,
                name,
                mask_value(value, visible[name]),
                # the sweeper stamps the clock later; completion is when it starts
                started=order.retention_starts_at or order.completed_at,
            )
            for name, value in values.items()
        }
        categories |= {item.category for item in fields.values()}
        exported.append(
            OrderExport(
                order_id=order.id,
                status=order.status,
                currency=order.currency,
                subtotal=order.subtotal,
                discounts=list(order.discounts),
                discount_total=order.discount_total,
                amount_payable=order.amount_payable,
                cross_border=order.cross_border,
                invoice_requested=order.invoice_requested,
                delivery_window=order.delivery_window,
                created_at=order.created_at,
                completed_at=order.completed_at,
                retention_starts_at=order.retention_starts_at,
                lines=[
                    OrderLineExport(
                        goods_id=line.goods_id,
                        goods_name=line.goods_name,
                        quantity=line.quantity,
                        unit_price=line.unit_price,
                        line_total=line.line_total,
                    )
                    for line in lines[order.id]
                ],
                fields=fields,
            )
        )
    cart = await _cart(session, catalogue=catalogue, subject=subject)
    if categories:
        events.processing(
            session,
            subject=subject,
            actor=actor,
            action="read",
            purpose=rights.PURPOSE,
            resource=ORDER,
            categories=sorted(categories),
        )
    if cart.items:
        events.processing(
            session,
            subject=subject,
            actor=actor,
            action="read",
            purpose=rights.PURPOSE,
            resource=CART,
            categories=[cart.about.category],
        )
    searches = await _search_history(session, cipher=cipher, catalogue=catalogue, subject=subject)
    if searches.entries:
        events.processing(
            session,
            subject=subject,
            actor=actor,
            action="read",
            purpose=rights.PURPOSE,
            resource=search.RESOURCE,
            categories=[searches.about.category],
        )
    cases = await support.export_cases(session, cipher=cipher, account_id=subject)
    if cases:
        events.processing(
            session,
            subject=subject,
            actor=actor,
            action="read",
            purpose=rights.PURPOSE,
            resource=support.RESOURCE,
            categories=[catalogue.field_policy(support.RESOURCE, support.FIELD).category],
        )
    return OrdersExport(
        subject=subject,
        orders=exported,
        cart=cart,
        search_history=searches,
        support_cases=cases,
        note=SHREDDED_NOTE if shredded else None,
    )


async def _search_history(
    session: AsyncSession, *, cipher: FieldCipher, catalogue: Catalogue, subject: str
) -> SearchHistoryExport:
    found = await search.decrypted(
        session, cipher, await search.entries_of(session, owner_id=subject)
    )
    return SearchHistoryExport(
        entries=[
            SearchEntryExport(
                entry_id=entry.id,
                query=words,
                result_count=entry.result_count,
                searched_at=entry.searched_at,
                feeds_recommendations=entry.personalise,
            )
            for entry, words in found
        ],
        about=rights.exported_field(catalogue, search.RESOURCE, search.FIELD, len(found)),
    )


async def _cart(session: AsyncSession, *, catalogue: Catalogue, subject: str) -> CartExport:
    rows = (
        await session.execute(
            select(CartItem, Goods)
            .join(Goods, col(Goods.id) == col(CartItem.goods_id), isouter=True)
            .where(col(CartItem.owner_id) == subject)
            .order_by(col(CartItem.added_at), col(CartItem.id))
        )
    ).all()
    shares = await session.scalars(
        select(CartShare)
        .where(col(CartShare.owner_id) == subject)
        .order_by(col(CartShare.created_at))
    )
    return CartExport(
        items=[
            CartItemExport(
                goods_id=item.goods_id,
                goods_name=goods.name if goods is not None else None,
                quantity=item.quantity,
                price_at_adding=item.price_at_adding,
                currency=item.currency,
                added_at=item.added_at,
            )
            for item, goods in rows
        ],
        shares=[
            CartShareExport(
                share_id=share.id, created_at=share.created_at, revoked_at=share.revoked_at
            )
            for share in shares
        ],
        about=rights.exported_field(catalogue, CART, CART_FIELD, len(rows)),
    )


# --------------------------------------------------------------------------- deletion


@dataclass
class Erasure:
    """What a deletion did: categories deleted, what is kept under a legal hold."""

    deleted: set[str] = field(default_factory=set)
    #: (category, retention id) -> the latest end of the hold; None while an order is open
    held: dict[tuple[str, str], date | None] = field(default_factory=dict)
    orders_anonymised: int = 0
    open_orders: int = 0
    #: Orders the deletion cancelled, and how many of them are refunded.
    cancelled: int = 0
    refunded: int = 0

    def hold(self, category: str, retention_id: str, until: date | None) -> None:
        key = (category, retention_id)
        if key not in self.held:
            self.held[key] = until
            return
        current = self.held[key]
        if current is None or until is None:
            self.held[key] = None
        else:
            self.held[key] = max(current, until)

    def kept(self, catalogue: Catalogue) -> list[rights.Kept]:
        return [
            rights.Kept(
                category=category,
                retention=retention_id,
                legal_basis=catalogue.retention_period(retention_id).legal_basis,
                until=until,
            )
            for (category, retention_id), until in sorted(self.held.items())
        ]


async def delete_subject(
    session: AsyncSession,
    *,
    events: EventWriter,
    catalogue: Catalogue,
    subject: str,
    now: datetime,
) -> Erasure:
    """Delete what orders holds about ``subject`` but its legal records (module docstring)."""
    await retention.start_clocks(session)
    field_rules = retention.rules(catalogue)
    erasure = Erasure()
    emptied: list[Order] = []
    found = list(
        await session.scalars(
            select(Order)
            .where(col(Order.buyer_id) == subject, col(Order.anonymised_at).is_(None))
            .order_by(col(Order.created_at), col(Order.id))
            .with_for_update()
            .execution_options(populate_existing=True)  # clocks stamped by a bulk update
        )
    )
    for order in found:
        started = order.retention_starts_at
        if started is None:
            erasure.open_orders += 1
        removed: list[str] = []
        for rule in field_rules:
            if not getattr(order, f"{rule.field}_encrypted"):
                continue
            category = catalogue.field_policy(ORDER, rule.field).category
            ends = rule.period.expires_at(started) if started is not None else None
            if rule.period.id in LEGAL_RECORDS and (ends is None or ends > now):
                erasure.hold(category, rule.period.id, ends.date() if ends else None)
                continue
            setattr(order, f"{rule.field}_encrypted", rule.cleared)
            removed.append(category)
        if not removed:
            continue
        erasure.deleted |= set(removed)
        events.processing(
            session,
            subject=subject,
            actor=ACTOR,
            action="delete",
            purpose=rights.PURPOSE,
            resource=ORDER,
            categories=sorted(set(removed)),
        )
        left = any(getattr(order, f"{rule.field}_encrypted") for rule in field_rules)
        if not left and started is not None:
            emptied.append(order)
    await retention.anonymise(session, events=events, orders=emptied, now=now)
    erasure.orders_anonymised = len(emptied)
    cart_items = await session.execute(delete(CartItem).where(col(CartItem.owner_id) == subject))
    shares = await session.execute(delete(CartShare).where(col(CartShare.owner_id) == subject))
    await session.execute(
        delete(OrderIdempotencyKey).where(col(OrderIdempotencyKey.buyer_id) == subject)
    )

    def deleted(resource: str, field: str) -> None:
        """One resource's data of the subject deleted: counted and recorded."""
        category = catalogue.field_policy(resource, field).category
        erasure.deleted.add(category)
        events.processing(
            session,
            subject=subject,
            actor=ACTOR,
            action="delete",
            purpose=rights.PURPOSE,
            resource=resource,
            categories=[category],
        )

    if getattr(cart_items, "rowcount", 0) or getattr(shares, "rowcount", 0):
        deleted(CART, CART_FIELD)
    await security.delete_subject(session, account_id=subject)
    if await support.delete_subject(session, account_id=subject):
        deleted(support.RESOURCE, support.FIELD)
    if await search.delete_all(session, owner_id=subject):
        deleted(search.RESOURCE, search.FIELD)
    await session.flush()
    return erasure


def _reason(erasure: Erasure) -> str:
    parts: list[str] = []
    if erasure.cancelled:
        refunded = f", {erasure.refunded} of them refunded" if erasure.refunded else ""
        parts.append(
            f"{erasure.cancelled} order(s) not yet picked up were cancelled{refunded}, so no "
            "courier delivers them"
        )
    if erasure.held:
        parts.append(
            "transaction and tax records are kept under a legal hold until their retention "
            "period ends, then deleted or anonymised"
        )
    if erasure.open_orders:
        parts.append(
            "orders on their way, or whose refund is under way, keep their records until "
            "they end and the period after it"
        )
    if erasure.deleted:
        parts.append(
            "every other personal field, the cart, the search history and the support cases "
            "were deleted"
        )
    if not parts:
        parts.append("orders held no personal data about this subject")
    return "; ".join(parts)


# --------------------------------------------------------------------------- withdraw all


async def withdraw_all(session: AsyncSession, *, subject: str) -> int:
    """Delete the price-drop reminder state of ``subject``'s cart (held for
    ``marketing.price_drop`` only); how many items had one."""
    result = await session.execute(
        update(CartItem)
        .where(col(CartItem.owner_id) == subject, col(CartItem.reminded_price).is_not(None))
        .values(reminded_price=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


# --------------------------------------------------------------------------- answers


async def _correct(
    session: AsyncSession,
    *,
    cipher: FieldCipher | None,
    events: EventWriter,
    catalogue: Catalogue,
    corrections: rights.CorrectionsSource | None,
    request: rights.RightsRequested,
) -> Event:
    if corrections is None or cipher is None:
        return rights.answer(
            session,
            events=events,
            service=SERVICE,
            request=request,
            outcome="refused",
            reason=NO_CORRECTIONS_SOURCE,
        )
    asked = await corrections.fetch(request_id=request.request_id, service=SERVICE)
    if not asked:
        return rights.answer(
            session,
            events=events,
            service=SERVICE,
            request=request,
            outcome="refused",
            reason=NO_CORRECTIONS,
        )
    result = await correcting.apply_corrections(
        session,
        cipher=cipher,
        events=events,
        catalogue=catalogue,
        subject=request.subject,
        corrections=asked,
    )
    return rights.answer(
        session,
        events=events,
        service=SERVICE,
        request=request,
        outcome=result.outcome,
        reason=result.reason(),
    )


async def handle(
    session: AsyncSession,
    *,
    events: EventWriter,
    catalogue: Catalogue,
    event: Event,
    now: datetime | None = None,
    cipher: FieldCipher | None = None,
    corrections: rights.CorrectionsSource | None = None,
    refunds: payments.Refunds | None = None,
) -> Event | None:
    """Answer a ``rights.requested`` event that names orders; None for other events.
    ``refunds``: how a deletion refunds the subject's paid orders (module docstring)."""
    request = rights.requested_of(event, SERVICE)
    if request is None:
        return None
    if request.kind == "correction":
        return await _correct(
            session,
            cipher=cipher,
            events=events,
            catalogue=catalogue,
            corrections=corrections,
            request=request,
        )
    if request.kind == "withdraw_all":
        await withdraw_all(session, subject=request.subject)
        return rights.answer(
            session,
            events=events,
            service=SERVICE,
            request=request,
            outcome="done",
            reason=WITHDRAWN,
        )
    if request.kind != "deletion":
        return rights.answer_unsupported(session, events=events, service=SERVICE, request=request)
    now = now or utcnow()
    cancelled = await payments.cancel_open_orders(
        session, events=events, refunds=refunds, buyer_id=request.subject, actor=ACTOR, now=now
    )
    erasure = await delete_subject(
        session, events=events, catalogue=catalogue, subject=request.subject, now=now
    )
    erasure.cancelled = len(cancelled)
    erasure.refunded = sum(1 for view in cancelled if view.refund_id is not None)
    kept = erasure.kept(catalogue)
    return rights.answer(
        session,
        events=events,
        service=SERVICE,
        request=request,
        outcome="partial" if kept else "done",
        deleted=erasure.deleted,
        kept=kept,
        reason=_reason(erasure),
    )
