"""The cart: add, change, remove, list; shared-cart links; price-drop reminders. No HTTP.

Cart contents are the catalogue's ``orders.cart.cart_items`` (purchase behaviour): every
read and write is recorded as processing under the purpose ``cart``, and each change is
published as ``cart.changed`` with ids and counts only.

A shared link is a *snapshot* of goods and quantities taken when it is made, so whoever has
the link cannot follow the owner's cart as it changes. Only the SHA-256 of its token is
stored; the owner can list and revoke links, and a revoked or unknown token is 404. Views
of a link are not recorded as processing of the owner's data: the owner chose to publish
that snapshot, and anonymous traffic must not be able to fill the outbox.

Price-drop reminders are an additional function (``marketing.price_drop``): they run only
for a subject whose consent ``consent_granted(subject, purpose)`` confirms; without it
nothing about the cart is read for marketing and the cart itself works the same (OB-0-2).
Once the privacy center has declared the purpose ceased (``cessation.service``), none are
sent, and a sweep deletes the reminder state (the last price reminded of) instead.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence
from typing import Final, Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit import contracts
from kit.catalogue import Catalogue
from kit.errors import Conflict, DomainError, NotFound
from kit.ids import new_id
from kit.models import utcnow
from kit.outbox import EventWriter
from services.orders.cart.schemas import (
    MAX_QUANTITY,
    CartItemView,
    CartShareCreated,
    CartShareView,
    CartView,
    PriceDrop,
    SharedCartView,
    SharedGoods,
)
from services.orders.cessation import service as cessation
from services.orders.goods.service import goods_by_id
from services.orders.models import CartItem, CartShare, Goods

RESOURCE: Final = "orders.cart"
FIELD: Final = "cart_items"
PURPOSE: Final = "cart"
PRICE_DROP_PURPOSE: Final = "marketing.price_drop"
EVENT_PREFIX: Final = "com.signature.orders.cart"
MAX_ITEMS: Final = 100
MAX_ACTIVE_SHARES: Final = 20

ConsentCheck = Callable[[str, str], bool]
"""``consent_granted(subject, purpose)``: whether the subject consents to the purpose now,
e.g. ``lambda s, p: view.ready and view.state_of(s).granted(p)`` over
``kit.consent_state.ConsentStateView`` (not ready yet: no consent, fail closed)."""


class QuantityLimit(DomainError):
    status, code, title = 422, "quantity-limit", "Quantity limit"


class CartFull(Conflict):
    code, title = "cart-full", "Cart full"


class UnknownGoods(DomainError):
    status, code, title = 422, "unknown-goods", "Unknown goods"


def _categories(catalogue: Catalogue) -> list[str]:
    return [catalogue.field_policy(RESOURCE, FIELD).category]


def _record(
    session: AsyncSession,
    *,
    events: EventWriter,
    catalogue: Catalogue,
    owner_id: str,
    action: Literal["read", "write", "delete"],
    purpose: str = PURPOSE,
    actor: str | None = None,
) -> None:
    events.field_processing(
        session,
        catalogue=catalogue,
        resource=RESOURCE,
        field=FIELD,
        owner_id=owner_id,
        action=action,
        purpose=purpose,
        actor=actor,
    )


def _item_view(item: CartItem, goods: Goods) -> CartItemView:
    return CartItemView(
        item_id=item.id,
        goods_id=item.goods_id,
        name=goods.name,
        quantity=item.quantity,
        price_at_adding=item.price_at_adding,
        current_price=goods.price,
        currency=item.currency,
        added_at=item.added_at,
    )


async def _items_with_goods(session: AsyncSession, owner_id: str) -> list[tuple[CartItem, Goods]]:
    rows = await session.execute(
        select(CartItem, Goods)
        .join(Goods, col(Goods.id) == col(CartItem.goods_id))
        .where(col(CartItem.owner_id) == owner_id)
        .order_by(col(CartItem.added_at), col(CartItem.id))
    )
    return [(item, goods) for item, goods in rows]


async def _count(session: AsyncSession, owner_id: str) -> int:
    count = await session.scalar(
        select(func.count()).select_from(CartItem).where(col(CartItem.owner_id) == owner_id)
    )
    return int(count or 0)


async def _owned_item(session: AsyncSession, owner_id: str, item_id: str) -> CartItem:
    item = await session.get(CartItem, item_id)
    if item is None or item.owner_id != owner_id:
        raise NotFound("no such cart item")
    return item


def _changed(
    session: AsyncSession,
    *,
    events: EventWriter,
    catalogue: Catalogue,
    owner_id: str,
    action: str,
    goods_id: str,
    quantity: int,
    item_count: int,
) -> None:
    events.add(
        session,
        type=f"{EVENT_PREFIX}.changed.v1",
        subject=owner_id,
        purpose=PURPOSE,
        data=contracts.CartChanged(
            action=action, goods_id=goods_id, quantity=quantity, item_count=item_count
        ),
        categories=_categories(catalogue),
    )
    _record(session, events=events, catalogue=catalogue, owner_id=owner_id, action="write")


# --------------------------------------------------------------------------- items


async def list_cart(session: AsyncSession, *, owner_id: str) -> CartView:
    """The owner's cart. Not recorded here: the answer leaves through the gateway, whose
    access event is the one ledger entry of this read (README, "Recording each read once")."""
    rows = await _items_with_goods(session, owner_id)
    return CartView(
        cart_items=[_item_view(item, goods) for item, goods in rows], item_count=len(rows)
    )


async def add_item(
    session: AsyncSession,
    *,
    events: EventWriter,
    catalogue: Catalogue,
    owner_id: str,
    goods_id: str,
    quantity: int,
) -> CartItemView:
    """Put goods in the cart at today's price; goods already there get more quantity and
    keep the price they were first added at."""
    goods = await session.get(Goods, goods_id)
    if goods is None:
        raise UnknownGoods("no such goods", extra={"errors": [_error("body.goods_id")]})
    item = await session.scalar(
        select(CartItem).where(
            col(CartItem.owner_id) == owner_id, col(CartItem.goods_id) == goods_id
        )
    )
    if item is None:
        if await _count(session, owner_id) >= MAX_ITEMS:
            raise CartFull(f"a cart holds at most {MAX_ITEMS} different goods")
        item = CartItem(
            id=new_id("cit"),
            owner_id=owner_id,
            goods_id=goods_id,
            quantity=quantity,
            price_at_adding=goods.price,
            currency=goods.currency,
        )
        session.add(item)
        action = "added"
    else:
        if item.quantity + quantity > MAX_QUANTITY:
            raise QuantityLimit(f"at most {MAX_QUANTITY} of one goods per cart")
        item.quantity += quantity
        item.updated_at = utcnow()
        action = "updated"
    await session.flush()
    _changed(
        session,
        events=events,
        catalogue=catalogue,
        owner_id=owner_id,
        action=action,
        goods_id=goods_id,
        quantity=item.quantity,
        item_count=await _count(session, owner_id),
    )
    return _item_view(item, goods)


async def change_item(
    session: AsyncSession,
    *,
    events: EventWriter,
    catalogue: Catalogue,
    owner_id: str,
    item_id: str,
    quantity: int,
) -> CartItemView:
    item = await _owned_item(session, owner_id, item_id)
    goods = await session.get(Goods, item.goods_id)
    assert goods is not None  # a foreign key
    item.quantity = quantity
    item.updated_at = utcnow()
    _changed(
        session,
        events=events,
        catalogue=catalogue,
        owner_id=owner_id,
        action="updated",
        goods_id=item.goods_id,
        quantity=quantity,
        item_count=await _count(session, owner_id),
    )
    return _item_view(item, goods)


async def remove_item(
    session: AsyncSession,
    *,
    events: EventWriter,
    catalogue: Catalogue,
    owner_id: str,
    item_id: str,
) -> None:
    item = await _owned_item(session, owner_id, item_id)
    await session.delete(item)
    await session.flush()
    _changed(
        session,
        events=events,
        catalogue=catalogue,
        owner_id=owner_id,
        action="removed",
        goods_id=item.goods_id,
        quantity=0,
        item_count=await _count(session, owner_id),
    )


# --------------------------------------------------------------------------- shared carts


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _share_view(share: CartShare) -> CartShareView:
    return CartShareView(
        share_id=share.id,
        item_count=len(share.snapshot),
        created_at=share.created_at,
        revoked_at=share.revoked_at,
    )


async def share_cart(
    session: AsyncSession, *, events: EventWriter, catalogue: Catalogue, owner_id: str
) -> CartShareCreated:
    """A link to a snapshot of the cart's goods and quantities; the token is shown once."""
    rows = await _items_with_goods(session, owner_id)
    if not rows:
        raise Conflict("the cart is empty: there is nothing to share")
    active = await session.scalar(
        select(func.count())
        .select_from(CartShare)
        .where(col(CartShare.owner_id) == owner_id, col(CartShare.revoked_at).is_(None))
    )
    if int(active or 0) >= MAX_ACTIVE_SHARES:
        raise Conflict(f"at most {MAX_ACTIVE_SHARES} shared links at once: revoke one first")
    token = f"shc_{secrets.token_urlsafe(32)}"
    share = CartShare(
        id=new_id("shr"),
        owner_id=owner_id,
        token_hash=_token_hash(token),
        snapshot=[{"goods_id": item.goods_id, "quantity": item.quantity} for item, _ in rows],
    )
    session.add(share)
    await session.flush()
    events.add(
        session,
        type=f"{EVENT_PREFIX}.shared.v1",
        subject=owner_id,
        purpose=PURPOSE,
        data=contracts.CartShared(share_id=share.id, item_count=len(share.snapshot)),
        categories=_categories(catalogue),
    )
    _record(session, events=events, catalogue=catalogue, owner_id=owner_id, action="write")
    return CartShareCreated(**_share_view(share).model_dump(), token=token)


async def list_shares(session: AsyncSession, *, owner_id: str) -> list[CartShareView]:
    shares = await session.scalars(
        select(CartShare)
        .where(col(CartShare.owner_id) == owner_id)
        .order_by(col(CartShare.created_at), col(CartShare.id))
    )
    return [_share_view(share) for share in shares]


async def revoke_share(
    session: AsyncSession, *, events: EventWriter, owner_id: str, share_id: str
) -> None:
    """Revoke a link of the owner's; revoking twice is harmless."""
    share = await session.get(CartShare, share_id)
    if share is None or share.owner_id != owner_id:
        raise NotFound("no such shared cart")
    if share.revoked_at is None:
        share.revoked_at = utcnow()
        events.add(
            session,
            type=f"{EVENT_PREFIX}.share_revoked.v1",
            subject=owner_id,
            purpose=PURPOSE,
            data=contracts.CartShareRevoked(share_id=share.id),
        )


async def shared_cart(session: AsyncSession, *, token: str) -> SharedCartView:
    """The goods of a live link, for anyone holding it: goods and quantities only."""
    share = await session.scalar(
        select(CartShare).where(col(CartShare.token_hash) == _token_hash(token))
    )
    if share is None or share.revoked_at is not None:
        raise NotFound("no such shared cart")
    goods = await goods_by_id(session, (line["goods_id"] for line in share.snapshot))
    return SharedCartView(
        goods=[
            SharedGoods(
                goods_id=item.id,
                name=item.name,
                price=item.price,
                currency=item.currency,
                quantity=int(line["quantity"]),
            )
            for line in share.snapshot
            if (item := goods.get(str(line["goods_id"]))) is not None
        ]
    )


# --------------------------------------------------------------------------- price drops


async def price_drop_reminders(
    session: AsyncSession,
    *,
    events: EventWriter,
    catalogue: Catalogue,
    owner_id: str,
    consent_granted: ConsentCheck,
    actor: str = "orders.price_drop",
) -> list[PriceDrop]:
    """The owner's cart goods now cheaper than when added and than the last reminder, and
    a ``cart.price_dropped`` event for the notifier. Without the owner's consent to
    ``marketing.price_drop`` nothing is read and the answer is empty."""
    if not consent_granted(owner_id, PRICE_DROP_PURPOSE):
        return []
    if await cessation.is_ceased(session, PRICE_DROP_PURPOSE):
        return []
    rows = await _items_with_goods(session, owner_id)
    if not rows:
        return []
    _record(
        session,
        events=events,
        catalogue=catalogue,
        owner_id=owner_id,
        action="read",
        purpose=PRICE_DROP_PURPOSE,
        actor=actor,
    )
    drops: list[PriceDrop] = []
    for item, goods in rows:
        threshold = item.price_at_adding
        if item.reminded_price is not None:
            threshold = min(threshold, item.reminded_price)
        if goods.currency == item.currency and goods.price < threshold:
            drops.append(
                PriceDrop(
                    item_id=item.id,
                    goods_id=goods.id,
                    price_at_adding=item.price_at_adding,
                    current_price=goods.price,
                    currency=goods.currency,
                )
            )
            item.reminded_price = goods.price
    if drops:
        events.add(
            session,
            type=f"{EVENT_PREFIX}.price_dropped.v1",
            subject=owner_id,
            purpose=PRICE_DROP_PURPOSE,
            data=contracts.PriceDropped(goods_ids=[d.goods_id for d in drops], count=len(drops)),
            categories=_categories(catalogue),
        )
    return drops


async def price_drop_sweep(
    session: AsyncSession,
    *,
    events: EventWriter,
    catalogue: Catalogue,
    consent_granted: ConsentCheck,
) -> dict[str, Sequence[PriceDrop]]:
    """:func:`price_drop_reminders` for every owner with a cart; the owners reminded and
    their drops. Owners without the consent are skipped without reading their carts; once
    the purpose has ceased nothing is sent and the reminder state is deleted."""
    if await cessation.is_ceased(session, PRICE_DROP_PURPOSE):
        await cessation.forget_price_drops(session)
        return {}
    owners = await session.scalars(select(col(CartItem.owner_id)).distinct())
    reminded: dict[str, Sequence[PriceDrop]] = {}
    for owner_id in list(owners):
        drops = await price_drop_reminders(
            session,
            events=events,
            catalogue=catalogue,
            owner_id=owner_id,
            consent_granted=consent_granted,
        )
        if drops:
            reminded[owner_id] = drops
    return reminded


def _error(field: str) -> dict[str, str]:
    return {"field": field, "message": "no such goods", "type": "unknown_goods"}


def check_catalogue(catalogue: Catalogue) -> None:
    """Refuse to start if the catalogue does not describe the cart's contents."""
    resource = catalogue.resources.get(RESOURCE)
    if resource is None or FIELD not in resource.fields:
        raise RuntimeError(f"the catalogue lacks {RESOURCE}.{FIELD}")
