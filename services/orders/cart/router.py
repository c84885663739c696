"""Cart endpoints: the owner's cart and shared links, and the public shared-cart view."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from kit.app import ContextDep
from kit.db import SessionDep
from services.orders.cart import service
from services.orders.cart.schemas import (
    CartItemAdd,
    CartItemChange,
    CartItemView,
    CartShareCreated,
    CartShareView,
    CartView,
    SharedCartView,
)
from services.orders.dependencies import Reader, Writer

router = APIRouter(tags=["cart"])

ItemId = Annotated[str, Path(max_length=40)]
ShareId = Annotated[str, Path(max_length=40)]
ShareToken = Annotated[str, Path(min_length=8, max_length=100)]


@router.get("/cart", response_model=CartView, summary="The caller's cart")
async def get_cart(session: SessionDep, principal: Reader) -> CartView:
    return await service.list_cart(session, owner_id=principal.subject)


@router.post(
    "/cart/items",
    response_model=CartItemView,
    status_code=status.HTTP_201_CREATED,
    summary="Add goods to the cart (more of the same goods adds to its quantity)",
)
async def add_item(
    body: CartItemAdd, session: SessionDep, context: ContextDep, principal: Writer
) -> CartItemView:
    return await service.add_item(
        session,
        events=context.events,
        catalogue=context.catalogue,
        owner_id=principal.subject,
        goods_id=body.goods_id,
        quantity=body.quantity,
    )


@router.patch(
    "/cart/items/{item_id}", response_model=CartItemView, summary="Change an item's quantity"
)
async def change_item(
    item_id: ItemId,
    body: CartItemChange,
    session: SessionDep,
    context: ContextDep,
    principal: Writer,
) -> CartItemView:
    return await service.change_item(
        session,
        events=context.events,
        catalogue=context.catalogue,
        owner_id=principal.subject,
        item_id=item_id,
        quantity=body.quantity,
    )


@router.delete(
    "/cart/items/{item_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Remove an item from the cart",
)
async def remove_item(
    item_id: ItemId, session: SessionDep, context: ContextDep, principal: Writer
) -> None:
    await service.remove_item(
        session,
        events=context.events,
        catalogue=context.catalogue,
        owner_id=principal.subject,
        item_id=item_id,
    )


@router.post(
    "/cart/shares",
    response_model=CartShareCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Share a snapshot of the cart's goods by link; the token is shown once",
)
async def share_cart(
    session: SessionDep, context: ContextDep, principal: Writer
) -> CartShareCreated:
    return await service.share_cart(
        session, events=context.events, catalogue=context.catalogue, owner_id=principal.subject
    )


@router.get("/cart/shares", response_model=list[CartShareView], summary="The caller's links")
async def list_shares(session: SessionDep, principal: Reader) -> list[CartShareView]:
    return await service.list_shares(session, owner_id=principal.subject)


@router.delete(
    "/cart/shares/{share_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Revoke a shared link",
)
async def revoke_share(
    share_id: ShareId, session: SessionDep, context: ContextDep, principal: Writer
) -> None:
    await service.revoke_share(
        session, events=context.events, owner_id=principal.subject, share_id=share_id
    )


@router.get(
    "/shared-carts/{token}",
    response_model=SharedCartView,
    summary="A shared cart's goods (public; nothing about its owner)",
)
async def shared_cart(token: ShareToken, session: SessionDep) -> SharedCartView:
    return await service.shared_cart(session, token=token)
