"""Security and anti-fraud (policy 2F, OB-2F-1): the one home of what every service's
rule engine shares.

Each service runs its own rules over its own data, without reading plaintext: counters
and keyed blind indexes only (``FieldCipher.blind_index``). A rule that fires raises a
*flag* on the account: one row per (account, rule) in the service's ``security_flag``
table, raised again (``times`` counts) while the rule keeps firing, and an event
``com.signature.<service>.security.flagged.v1`` naming the account as subject, the rule and
counts: never a value. The security team (role ``security``, scope ``security:read``)
reads the flags and, under the purpose ``security.anti_fraud``, the flagged account's
data through the gateway, which filters it as the catalogue says for that purpose and
records each read in the user's ledger.

The rules, with thresholds the security team tunes in each service's settings (no code
change):

- ``failed_logins`` (identity): the failures counted against the account's phone reach
  ``IDENTITY_FRAUD_FAILED_LOGINS`` (5);
- ``orders_to_many_addresses`` (orders): at least ``ORDERS_FRAUD_MANY_ORDERS`` (5) orders
  to at least ``ORDERS_FRAUD_MANY_ADDRESSES`` (3) different delivery addresses within
  ``ORDERS_FRAUD_WINDOW_S`` (an hour);
- ``shared_phone`` (orders): one consignee phone on the orders of at least
  ``ORDERS_FRAUD_SHARING_ACCOUNTS`` (3) different accounts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, Final, Literal, Protocol

from fastapi import Depends
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kit import contracts
from kit.auth import Principal, Scope, require
from kit.errors import Forbidden
from kit.ids import new_id
from kit.models import utcnow
from kit.outbox import EventWriter

PURPOSE: Final = "security.anti_fraud"
Rule = Literal["failed_logins", "orders_to_many_addresses", "shared_phone"]


class FlagRow(Protocol):
    """A service's ``security_flag`` table row."""

    id: str
    account_id: str
    rule: str
    evidence: dict[str, Any]
    times: int
    first_at: datetime
    last_at: datetime


class FlagView(BaseModel):
    """A flagged account's case: which rule fired, how often, on what counts."""

    flag_id: str
    account_id: str = Field(description="the pseudonymous account id")
    service: str = Field(description="the service whose rule fired")
    rule: str
    evidence: dict[str, int] = Field(description="the counts the rule saw; never a value")
    times: int = Field(description="how often the rule fired for this account")
    first_at: datetime
    last_at: datetime


async def raise_flag(
    session: AsyncSession,
    *,
    events: EventWriter,
    table: type[Any],
    service: str,
    account_id: str,
    rule: Rule,
    evidence: Mapping[str, int],
) -> FlagRow:
    """Flag ``account_id`` under ``rule`` (again, if already flagged) and publish it."""
    now = utcnow()
    flag: FlagRow | None = await session.scalar(
        select(table).where(table.account_id == account_id, table.rule == rule)
    )
    if flag is None:
        flag = table(
            id=new_id("flg"),
            account_id=account_id,
            rule=rule,
            evidence=dict(evidence),
            times=1,
            first_at=now,
            last_at=now,
        )
        session.add(flag)
    else:
        flag.evidence, flag.times, flag.last_at = dict(evidence), flag.times + 1, now
    assert flag is not None
    events.add(
        session,
        type=f"com.signature.{service}.security.flagged.v1",
        subject=account_id,
        purpose=PURPOSE,
        data=contracts.SecurityFlagged(flag_id=flag.id, rule=rule, times=flag.times, **evidence),
    )
    return flag


def view(flag: FlagRow, *, service: str) -> FlagView:
    return FlagView(
        flag_id=flag.id,
        account_id=flag.account_id,
        service=service,
        rule=flag.rule,
        evidence=flag.evidence,
        times=flag.times,
        first_at=flag.first_at,
        last_at=flag.last_at,
    )


async def flags(
    session: AsyncSession,
    *,
    table: type[Any],
    service: str,
    account_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[FlagView]:
    """The flags, most recently raised first (of one account, if named)."""
    query = select(table)
    if account_id is not None:
        query = query.where(table.account_id == account_id)
    rows: Sequence[FlagRow] = list(
        await session.scalars(
            query.order_by(table.last_at.desc(), table.id).limit(limit).offset(offset)
        )
    )
    return [view(flag, service=service) for flag in rows]


async def security_staff(
    principal: Annotated[Principal, require(Scope.SECURITY_READ)],
) -> Principal:
    """Staff with ``security:read`` (the ``security`` role, or the privacy officer)."""
    if principal.kind != "staff":  # staff-only scope already; never rely on one check
        raise Forbidden("only the security team reads this")
    return principal


SecurityStaff = Annotated[Principal, Depends(security_staff)]
