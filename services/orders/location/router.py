"""Location endpoints (users, with the ``location`` consent) and goods' cities (staff).

The consent check is ``request.app.state.consent_granted(subject, purpose)``: the app sets
it at start from the consent-state view; tests replace it with a stub. When it is missing,
every answer is "not granted" (fail closed).

``GET /location/nearby`` takes the coordinates in its query string, which uvicorn's access
log would print; :func:`install_access_log_filter` removes the query string of every
``/location/`` request line before it is logged.
"""

from __future__ import annotations

import logging
from typing import Annotated, Final

from fastapi import APIRouter, Depends, Path, Query, Request

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
    Latitude,
    Longitude,
    NearbyGoods,
)

router = APIRouter(tags=["location"])

LOCATION_PATH: Final = "/location/"
ACCESS_LOGGER: Final = "uvicorn.access"


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


@router.get(
    "/location/nearby",
    response_model=NearbyGoods,
    summary="Goods offered in the city of the device location (needs consent)",
)
async def nearby(
    *,
    latitude: Annotated[Latitude, Query()],
    longitude: Annotated[Longitude, Query()],
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
        point=Coordinates(latitude=latitude, longitude=longitude),
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


class DropLocationQuery(logging.Filter):
    """Strip the query string from access-log lines of ``/location/`` requests (uvicorn's
    record args are ``(client, method, path_with_query, http_version, status)``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path, _, query = args[2].partition("?")
            if query and LOCATION_PATH in path:
                record.args = (*args[:2], path, *args[3:])
        return True


def install_access_log_filter() -> None:
    """Add :class:`DropLocationQuery` to uvicorn's access logger (once)."""
    access = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, DropLocationQuery) for f in access.filters):
        access.addFilter(DropLocationQuery())
