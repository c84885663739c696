"""Orders' anti-fraud rules (``kit.fraud``; policy 2F), run when an order is placed.

Placing an order keeps a :class:`FraudSignal`: keyed blind indexes of the consignee phone
and of the delivery address (province, city, district and detail), made while the values
are at hand; the rules then compare indexes and count, and never read a value:

- ``orders_to_many_addresses``: the buyer placed at least ``many_orders`` orders to at
  least ``many_addresses`` different addresses within ``window_s``;
- ``shared_phone``: the consignee phone is on orders of at least ``sharing_accounts``
  different accounts: each of them is flagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import and_, bindparam, distinct, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from kit import fraud
from kit.crypto import FieldCipher
from kit.db import UtcDateTime
from kit.outbox import EventWriter
from services.orders.config import Settings
from services.orders.models import FraudSignal, SecurityFlag

SERVICE: Final = "orders"
PHONE_CONTEXT: Final = "orders.fraud_signal.phone"
ADDRESS_CONTEXT: Final = "orders.fraud_signal.address"


def _address_key(province: str, city: str, district: str, detail: str) -> str:
    return "|".join(part.strip().replace(" ", "") for part in (province, city, district, detail))


_SIGNALS = FraudSignal.__table__  # type: ignore[attr-defined]
_INSERT_SIGNAL: Final = insert(_SIGNALS)
_RECENT = and_(
    _SIGNALS.c.buyer_id == bindparam("buyer_id"),
    _SIGNALS.c.placed_at > bindparam("since", type_=UtcDateTime()),
)
#: What both rules count, in one round trip: the buyer's recent orders, their distinct
#: addresses, and the accounts whose orders carry this phone.
_COUNTS: Final = select(
    select(func.count()).where(_RECENT).scalar_subquery().label("orders"),
    select(func.count(distinct(_SIGNALS.c.address_index)))
    .where(_RECENT)
    .scalar_subquery()
    .label("addresses"),
    select(func.count(distinct(_SIGNALS.c.buyer_id)))
    .where(_SIGNALS.c.phone_index == bindparam("phone_index"))
    .scalar_subquery()
    .label("accounts"),
)
_SHARING: Final = (
    select(_SIGNALS.c.buyer_id).where(_SIGNALS.c.phone_index == bindparam("phone_index")).distinct()
)


@dataclass(frozen=True)
class Thresholds:
    """When the rules fire (``ORDERS_FRAUD_*`` settings)."""

    many_orders: int = 5
    many_addresses: int = 3
    window_s: int = 3600
    sharing_accounts: int = 3

    @classmethod
    def of(cls, settings: Settings) -> Thresholds:
        return cls(
            many_orders=settings.fraud_many_orders,
            many_addresses=settings.fraud_many_addresses,
            window_s=settings.fraud_window_s,
            sharing_accounts=settings.fraud_sharing_accounts,
        )


async def order_placed(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    thresholds: Thresholds,
    order_id: str,
    buyer_id: str,
    phone: str,
    address: tuple[str, str, str, str],
    placed_at: datetime,
) -> None:
    """Keep the order's signal and run the rules on it (Core statements: the signal, then
    one query counting for both rules)."""
    phone_index = cipher.blind_index(phone.strip(), context=PHONE_CONTEXT)
    await session.execute(
        _INSERT_SIGNAL,
        {
            "order_id": order_id,
            "buyer_id": buyer_id,
            "phone_index": phone_index,
            "address_index": cipher.blind_index(_address_key(*address), context=ADDRESS_CONTEXT),
            "placed_at": placed_at,
        },
    )
    counts = (
        await session.execute(
            _COUNTS,
            {
                "buyer_id": buyer_id,
                "since": placed_at - timedelta(seconds=thresholds.window_s),
                "phone_index": phone_index,
            },
        )
    ).one()
    orders, addresses = int(counts.orders), int(counts.addresses)
    if orders >= thresholds.many_orders and addresses >= thresholds.many_addresses:
        await fraud.raise_flag(
            session,
            events=events,
            table=SecurityFlag,
            service=SERVICE,
            account_id=buyer_id,
            rule="orders_to_many_addresses",
            evidence={
                "orders": orders,
                "addresses": addresses,
                "window_s": thresholds.window_s,
            },
        )
    if int(counts.accounts) >= thresholds.sharing_accounts:
        await _shared_phone(session, events=events, phone_index=phone_index)


async def _shared_phone(session: AsyncSession, *, events: EventWriter, phone_index: str) -> None:
    accounts = sorted(await session.scalars(_SHARING, {"phone_index": phone_index}))
    for account_id in accounts:
        await fraud.raise_flag(
            session,
            events=events,
            table=SecurityFlag,
            service=SERVICE,
            account_id=account_id,
            rule="shared_phone",
            evidence={"accounts": len(accounts)},
        )
