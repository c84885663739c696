"""Location endpoints (users, with the ``location`` consent) and goods' cities (staff).

The consent check is ``request.app.state.consent_granted(subject, purpose)``: the app sets
it at start from the consent-state view; tests replace it with a stub. When it is missing,
every answer is "not granted" (fail closed).

Coordinates travel only in a POST body (``POST /location/address-autofill``,
``POST /location/nearby``), never in a URL: a query string reaches access lines and proxies'
logs, a body does not.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from kit.app import ContextDep
from kit.db import SessionDep
from services.orders.cart.service import ConsentCheck
from services.orders.dependencies import CatalogueAdmin, Reader
from services.orders.location import service
from services.orders.location.schemas import (
    AddressSuggestion,
    Coordinates,
    GoodsCityRequest,
    GoodsCityView,
    NearbyGoods,
)

router = APIRouter(tags=["location"])


def _never(subject: str, purpose: str) -> bool:
    return False


async def consent_check(request: Request) -> ConsentCheck:
    check: ConsentCheck = getattr(request.app.state, "consent_granted", _never)
    return check


ConsentDep = Annotated[ConsentCheck, Depends(consent_check)]


@router.post(
    "/location/address-autofill",
    response_model=AddressSuggestion,
    summary="Suggest province/city/district from the device location (needs consent)",
)
async def address_autofill(
    body: Coordinates,
    session: SessionDep,
    context: ContextDep,
    principal: Reader,
    consent_granted: ConsentDep,
) -> AddressSuggestion:
    return await service.address_autofill(
        session,
        events=context.events,
        catalogue=context.catalogue,
        consent_granted=consent_granted,
        subject=principal.subject,
        point=body,
    )


@router.post(
    "/location/nearby",
    response_model=NearbyGoods,
    summary="Goods offered in the city of the device location (needs consent)",
)
async def nearby(
    body: Coordinates,
    session: SessionDep,
    context: ContextDep,
    principal: Reader,
    consent_granted: ConsentDep,
) -> NearbyGoods:
    return await service.nearby_goods(
        session,
        events=context.events,
        catalogue=context.catalogue,
        consent_granted=consent_granted,
        subject=principal.subject,
        point=body,
    )


@router.put(
    "/admin/goods/{goods_id}/city",
    response_model=GoodsCityView,
    summary="Offer goods in a city (for nearby recommendations)",
)
async def tag_goods_city(
    goods_id: Annotated[str, Path(max_length=40)],
    body: GoodsCityRequest,
    session: SessionDep,
    context: ContextDep,
    principal: CatalogueAdmin,
) -> GoodsCityView:
    return await service.tag_goods_city(
        session,
        events=context.events,
        goods_id=goods_id,
        city=body.city,
        staff_id=principal.subject,
    )
