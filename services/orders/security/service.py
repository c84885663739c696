"""Security and anti-fraud in orders (policy 2F, OB-2F-1; ``kit.fraud``). No HTTP here.

The rules are in :mod:`services.orders.security.rules`. The security team reads the flags
and a user's orders under ``security.anti_fraud``: only the personal fields the catalogue
gives that purpose, masked as it says. That read leaves through the gateway, which records
it in the user's ledger (the route names ``account_id`` as owner); it is not recorded here
a second time. Signals go with the account and after the catalogue's ``fraud_signal``
period; flags go with the account.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit import fraud
from kit.catalogue import Catalogue
from kit.crypto import FieldCipher
from kit.errors import NotFound
from services.orders.models import FraudSignal, Order, SecurityFlag
from services.orders.orders import service as orders
from services.orders.security.rules import SERVICE
from services.orders.security.schemas import SecurityOrdersView

RETENTION: Final = "fraud_signal"
MAX_ORDERS: Final = 100


async def flags(session: AsyncSession, *, limit: int, offset: int) -> list[fraud.FlagView]:
    return await fraud.flags(
        session, table=SecurityFlag, service=SERVICE, limit=limit, offset=offset
    )


async def account_orders(
    session: AsyncSession, *, cipher: FieldCipher, catalogue: Catalogue, account_id: str
) -> SecurityOrdersView:
    """The account's latest orders (not anonymised) and its flags, for the security team;
    an account orders knows nothing about is 404."""
    found = list(
        await session.scalars(
            select(Order)
            .where(col(Order.buyer_id) == account_id, col(Order.anonymised_at).is_(None))
            .order_by(col(Order.created_at).desc(), col(Order.id).desc())
            .limit(MAX_ORDERS)
        )
    )
    raised = await fraud.flags(session, table=SecurityFlag, service=SERVICE, account_id=account_id)
    if not found and not raised:
        raise NotFound("orders holds nothing about this account")
    return SecurityOrdersView(
        account_id=account_id,
        orders=await orders.purpose_views(
            session, cipher=cipher, catalogue=catalogue, orders=found, purpose=fraud.PURPOSE
        ),
        flags=raised,
    )


async def delete_subject(session: AsyncSession, *, account_id: str) -> int:
    """With the account: its signals and flags go; how many signals there were."""
    signals = await session.execute(
        delete(FraudSignal).where(col(FraudSignal.buyer_id) == account_id)
    )
    await session.execute(delete(SecurityFlag).where(col(SecurityFlag.account_id) == account_id))
    return int(getattr(signals, "rowcount", 0) or 0)


async def expire_signals(session: AsyncSession, *, catalogue: Catalogue, now: datetime) -> int:
    """Delete the signals whose ``fraud_signal`` period ended by ``now``."""
    period = catalogue.retention_period(RETENTION)
    oldest = list(
        await session.scalars(select(FraudSignal).order_by(col(FraudSignal.placed_at)).limit(1000))
    )
    due = [signal.order_id for signal in oldest if period.expires_at(signal.placed_at) <= now]
    if due:
        await session.execute(delete(FraudSignal).where(col(FraudSignal.order_id).in_(due)))
    return len(due)
