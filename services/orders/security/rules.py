"""Orders' anti-fraud rules (``kit.fraud``; policy 2F), run when an order is placed.

Placing an order keeps a :class:`FraudSignal`: keyed blind indexes of the consignee phone
and of the delivery address (province, city, district and detail), made while the values
are at hand; the rules then compare indexes and count, and never read a value:

- ``orders_to_many_addresses``: the buyer placed at least ``MANY_ORDERS`` orders to at
  least ``MANY_ADDRESSES`` different addresses within ``SHORT_TIME``;
- ``shared_phone``: the consignee phone is on orders of at least ``SHARING_ACCOUNTS``
  different accounts: each of them is flagged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit import fraud
from kit.crypto import FieldCipher
from kit.outbox import EventWriter
from services.orders.models import FraudSignal, SecurityFlag

SERVICE: Final = "orders"
PHONE_CONTEXT: Final = "orders.fraud_signal.phone"
ADDRESS_CONTEXT: Final = "orders.fraud_signal.address"


def _address_key(province: str, city: str, district: str, detail: str) -> str:
    return "|".join(part.strip().replace(" ", "") for part in (province, city, district, detail))


async def order_placed(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    order_id: str,
    buyer_id: str,
    phone: str,
    address: tuple[str, str, str, str],
    placed_at: datetime,
) -> None:
    """Keep the order's signal and run the rules on it."""
    signal = FraudSignal(
        order_id=order_id,
        buyer_id=buyer_id,
        phone_index=cipher.blind_index(phone.strip(), context=PHONE_CONTEXT),
        address_index=cipher.blind_index(_address_key(*address), context=ADDRESS_CONTEXT),
        placed_at=placed_at,
    )
    session.add(signal)
    await session.flush()
    await _many_addresses(session, events=events, buyer_id=buyer_id, now=placed_at)
    await _shared_phone(session, events=events, phone_index=signal.phone_index)


async def _many_addresses(
    session: AsyncSession, *, events: EventWriter, buyer_id: str, now: datetime
) -> None:
    row = (
        await session.execute(
            select(func.count(), func.count(distinct(col(FraudSignal.address_index)))).where(
                col(FraudSignal.buyer_id) == buyer_id,
                col(FraudSignal.placed_at) > now - fraud.SHORT_TIME,
            )
        )
    ).one()
    orders, addresses = int(row[0]), int(row[1])
    if orders >= fraud.MANY_ORDERS and addresses >= fraud.MANY_ADDRESSES:
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
                "window_s": int(fraud.SHORT_TIME.total_seconds()),
            },
        )


async def _shared_phone(session: AsyncSession, *, events: EventWriter, phone_index: str) -> None:
    accounts = sorted(
        await session.scalars(
            select(col(FraudSignal.buyer_id))
            .where(col(FraudSignal.phone_index) == phone_index)
            .distinct()
        )
    )
    if len(accounts) < fraud.SHARING_ACCOUNTS:
        return
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
