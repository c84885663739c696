"""Security and anti-fraud in identity (policy 2F, OB-2F-1; ``kit.fraud``). No HTTP here.

The rule ``failed_logins``: each failed login against an account's phone from a device
the account never signed in on is counted (``throttle.LoginGuard``); when the count
reaches ``IDENTITY_FRAUD_FAILED_LOGINS`` the account is flagged. The rule reads the count and
the phone's blind index only, never the number.

The security team reads the flags, and an account under ``security.anti_fraud``: its
phone as the catalogue shows that purpose, status, roles, verification level, and its
log data (the failed logins counted, the lock). That read leaves through the gateway,
which records it in the user's ledger (the route names ``account_id`` as owner); it is
not recorded here a second time.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit import fraud
from kit.catalogue import Catalogue
from kit.crypto import FieldCipher
from kit.errors import NotFound
from kit.masking import apply_mask
from kit.outbox import EventWriter
from services.identity.models import Account, LoginThrottle, SecurityFlag
from services.identity.security.schemas import SecurityAccountView

SERVICE: Final = "identity"
RESOURCE: Final = "identity.account"
PHONE_CONTEXT: Final = "identity.account.phone"


def phone_key(phone_index: str) -> str:
    """The throttle key failed logins against a phone count under."""
    return f"phone:{phone_index}"


async def after_login_failure(
    session: AsyncSession, *, events: EventWriter, account_id: str, failures: int, flag_at: int
) -> None:
    """The rule ``failed_logins``, after a failure counted against the account's phone:
    the account is flagged once ``failures`` reaches ``flag_at``."""
    if failures >= flag_at:
        await fraud.raise_flag(
            session,
            events=events,
            table=SecurityFlag,
            service=SERVICE,
            account_id=account_id,
            rule="failed_logins",
            evidence={"failed_logins": failures},
        )


async def flags(session: AsyncSession, *, limit: int, offset: int) -> list[fraud.FlagView]:
    return await fraud.flags(
        session, table=SecurityFlag, service=SERVICE, limit=limit, offset=offset
    )


async def account(
    session: AsyncSession, *, cipher: FieldCipher, catalogue: Catalogue, account_id: str
) -> SecurityAccountView:
    """A user's account as ``security.anti_fraud`` sees it; staff accounts are not here."""
    found = await session.get(Account, account_id)
    if found is None or found.kind != "user":
        raise NotFound("no such account")
    phone: str | None = None
    rule = catalogue.masking_for(RESOURCE, "phone", fraud.PURPOSE)
    if rule is not None and found.status == "active":
        number = await cipher.decrypt(
            session, subject=found.id, token=found.phone_encrypted, context=PHONE_CONTEXT
        )
        phone = apply_mask(number, rule)
    counter = await session.get(LoginThrottle, phone_key(found.phone_index))
    return SecurityAccountView(
        account_id=found.id,
        kind=found.kind,
        status=found.status,
        phone=phone,
        roles=found.roles,
        verification_level=found.verification_level,
        created_at=found.created_at,
        failed_logins=counter.failures if counter is not None else 0,
        locked_until=counter.locked_until if counter is not None else None,
        flags=await fraud.flags(session, table=SecurityFlag, service=SERVICE, account_id=found.id),
    )


async def delete_flags(session: AsyncSession, *, account_id: str) -> None:
    """With the account: its flags go too."""
    await session.execute(delete(SecurityFlag).where(col(SecurityFlag.account_id) == account_id))
