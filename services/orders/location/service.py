"""Location features: address autofill and nearby goods, behind the ``location`` consent.
No HTTP here.

Consent (OB-2G-1, OB-0-2). ``location`` is an additional purpose: each feature first asks
``consent_granted(subject, "location")`` (in the app: the consent-state view materialised
from the compacted ``consent.state`` topic, failing closed while it is not ready) and,
without it, refuses with 403 ``consent-required`` naming the purpose, before anything is
computed or recorded. Nothing else in the service asks for this consent, so refusing it
never blocks placing orders.

Cessation (OB-2J-1). Once the privacy center has declared ``location`` ceased, both
features refuse with 410 ``purpose-ceased`` from the effective date (China time), before
the consent is asked (``cessation.service.check_not_ceased``); nothing was stored to delete.

Coordinates (``orders.location`` in the catalogue: precise location, sensitive, PIPL art.
28) live only in the request: they are not stored, not put in events (the catalogue names
``latitude`` and ``longitude`` as personal fields, so the event guard refuses them by name)
and not logged (they come in a POST body, never a URL; access lines carry no query string
either, :class:`kit.observability.DropQueryString`).
Each use is recorded as processing (purpose ``location``, category
``user.location.precise``, no values) for the user's ledger.

Where a point is. :data:`REGIONS` is a small built-in table of bounding boxes for a few
districts and cities, standing in for a map service's reverse geocoding; the first box that
holds the point wins (districts before their city). Boxes are coarse rectangles in WGS-84
and do not follow real borders (nor the GCJ-02 offset Chinese maps use): replace the table
with a geocoding adapter before real use.

Nearby goods are the goods staff tagged with the city the point lies in (``goods_city``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit import contracts
from kit.catalogue import Catalogue
from kit.errors import DomainError, Forbidden, NotFound
from kit.models import utcnow
from kit.outbox import EventWriter
from services.orders.cart.service import ConsentCheck
from services.orders.cessation import service as cessation
from services.orders.goods.service import goods_view
from services.orders.location.schemas import (
    AddressSuggestion,
    Coordinates,
    GoodsCityView,
    NearbyGoods,
    RegionSuggestion,
)
from services.orders.models import Goods, GoodsCity

PURPOSE: Final = "location"
RESOURCE: Final = "orders.location"
FIELDS: Final = ("latitude", "longitude")
ACTOR: Final = "orders.location"
EVENT_PREFIX: Final = "com.signature.orders"
MAX_NEARBY: Final = 50


@dataclass(frozen=True)
class Box:
    """A region and the rectangle standing in for its area (degrees, WGS-84)."""

    province: str
    city: str
    district: str | None
    south: float
    west: float
    north: float
    east: float

    def holds(self, point: Coordinates) -> bool:
        return (
            self.south <= point.latitude <= self.north and self.west <= point.longitude <= self.east
        )


#: A stand-in for reverse geocoding: a few districts, then their cities. First match wins.
REGIONS: Final[tuple[Box, ...]] = (
    Box("北京市", "北京市", "东城区", 39.86, 116.38, 39.97, 116.45),
    Box("北京市", "北京市", "海淀区", 39.88, 116.05, 40.16, 116.38),
    Box("上海市", "上海市", "黄浦区", 31.19, 121.46, 31.25, 121.51),
    Box("上海市", "上海市", "浦东新区", 30.85, 121.51, 31.40, 121.98),
    Box("浙江省", "杭州市", "西湖区", 30.13, 119.98, 30.35, 120.16),
    Box("浙江省", "杭州市", "上城区", 30.16, 120.16, 30.32, 120.26),
    Box("广东省", "深圳市", "福田区", 22.50, 114.00, 22.59, 114.10),
    Box("广东省", "深圳市", "南山区", 22.48, 113.88, 22.62, 114.00),
    Box("广东省", "广州市", "天河区", 23.10, 113.30, 23.25, 113.45),
    Box("北京市", "北京市", None, 39.44, 115.42, 41.06, 117.51),
    Box("上海市", "上海市", None, 30.67, 120.85, 31.88, 122.20),
    Box("浙江省", "杭州市", None, 29.18, 118.34, 30.57, 120.72),
    Box("广东省", "深圳市", None, 22.43, 113.75, 22.87, 114.63),
    Box("广东省", "广州市", None, 22.56, 112.95, 23.93, 113.74),
)
CITIES: Final = frozenset(box.city for box in REGIONS)


class ConsentRequired(Forbidden):
    """An additional function used without its consent (OB-0-1); names the purpose."""

    code, title = "consent-required", "Consent required"


class UnknownCity(DomainError):
    status, code, title = 422, "unknown-city", "Unknown city"


def check_catalogue(catalogue: Catalogue) -> None:
    """Refuse to start unless the catalogue knows the purpose and the coordinates."""
    if not catalogue.has_purpose(PURPOSE) or catalogue.purpose(PURPOSE).kind != "additional":
        raise RuntimeError(f"{PURPOSE} must be an additional purpose in the catalogue")
    resource = catalogue.resources.get(RESOURCE)
    if resource is None or set(FIELDS) - set(resource.fields):
        raise RuntimeError(f"the catalogue lacks {RESOURCE} with {FIELDS}")


def region_of(point: Coordinates) -> Box | None:
    return next((box for box in REGIONS if box.holds(point)), None)


def _require_consent(consent_granted: ConsentCheck, subject: str) -> None:
    if not consent_granted(subject, PURPOSE):
        raise ConsentRequired(
            f"this function uses your location and needs your consent to '{PURPOSE}'; "
            "ordering works without it",
            extra={"purpose": PURPOSE},
        )


def _record(
    session: AsyncSession, *, events: EventWriter, catalogue: Catalogue, subject: str
) -> None:
    categories = {catalogue.field_policy(RESOURCE, field).category for field in FIELDS}
    events.processing(
        session,
        subject=subject,
        actor=ACTOR,
        action="read",
        purpose=PURPOSE,
        resource=RESOURCE,
        categories=categories,
    )


async def address_autofill(
    session: AsyncSession,
    *,
    events: EventWriter,
    catalogue: Catalogue,
    consent_granted: ConsentCheck,
    subject: str,
    point: Coordinates,
    today: date | None = None,
) -> AddressSuggestion:
    """The region the point lies in, to prefill an address; only with the consent."""
    await cessation.check_not_ceased(session, PURPOSE, today=today)
    _require_consent(consent_granted, subject)
    box = region_of(point)
    _record(session, events=events, catalogue=catalogue, subject=subject)
    region = (
        None
        if box is None
        else RegionSuggestion(province=box.province, city=box.city, district=box.district)
    )
    return AddressSuggestion(region=region, source="built-in-table")


async def nearby_goods(
    session: AsyncSession,
    *,
    events: EventWriter,
    catalogue: Catalogue,
    consent_granted: ConsentCheck,
    subject: str,
    point: Coordinates,
    today: date | None = None,
) -> NearbyGoods:
    """Goods offered in the city the point lies in; only with the consent."""
    await cessation.check_not_ceased(session, PURPOSE, today=today)
    _require_consent(consent_granted, subject)
    box = region_of(point)
    _record(session, events=events, catalogue=catalogue, subject=subject)
    if box is None:
        return NearbyGoods(city=None, goods=[])
    found = await session.scalars(
        select(Goods)
        .join(GoodsCity, col(GoodsCity.goods_id) == col(Goods.id))
        .where(col(GoodsCity.city) == box.city)
        .order_by(col(Goods.created_at), col(Goods.id))
        .limit(MAX_NEARBY)
    )
    return NearbyGoods(city=box.city, goods=[goods_view(item) for item in found])


async def tag_goods_city(
    session: AsyncSession, *, events: EventWriter, goods_id: str, city: str, staff_id: str
) -> GoodsCityView:
    """Offer goods in a city of the built-in table (replacing an earlier city)."""
    if city not in CITIES:
        raise UnknownCity(
            "the city is not in the built-in region table", extra={"cities": sorted(CITIES)}
        )
    if await session.get(Goods, goods_id) is None:
        raise NotFound("no such goods")
    tag = await session.get(GoodsCity, goods_id)
    if tag is None:
        tag = GoodsCity(goods_id=goods_id, city=city, tagged_by=staff_id)
        session.add(tag)
    else:
        tag.city, tag.tagged_by, tag.tagged_at = city, staff_id, utcnow()
    events.add(
        session,
        type=f"{EVENT_PREFIX}.goods.city_tagged.v1",
        subject=goods_id,
        purpose="browse",
        data=contracts.GoodsCityTagged(city=city, by=staff_id),
    )
    return GoodsCityView(goods_id=goods_id, city=city)
