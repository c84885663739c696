"""Mini-program sign-in and the phone number by platform code. No HTTP here.

- :func:`sign_in`: exchange the platform's login code (the adapter); the openid is personal
  data, found by its keyed blind index (per platform and app) and stored as ciphertext
  under the subject's key, as is the unionid; the ``session_key`` is kept encrypted and
  replaced at each sign-in. A first sign-in opens an account without a phone number or
  password, agreeing to the policy version the user accepted.
- :func:`bind_phone`: exchange a ``getPhoneNumber`` code for the user's verified number and
  make it the account's phone (no SMS needed), recorded in the ledger under ``account``.
- :func:`forget_session_keys`: at logout and deletion, the ``session_key`` goes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit import contracts
from kit.catalogue import Catalogue
from kit.crypto import FieldCipher
from kit.errors import Conflict, NotFound
from kit.ids import new_id
from kit.masking import apply_mask
from kit.outbox import EventWriter
from services.identity.accounts.service import (
    EVENT_PREFIX,
    PHONE_CONTEXT,
    normalise_phone,
    open_account,
)
from services.identity.accounts.service import (
    RESOURCE as ACCOUNT_RESOURCE,
)
from services.identity.mini_program.platform import MiniProgramPlatform
from services.identity.mini_program.schemas import PhoneBound
from services.identity.models import Account, MiniProgramIdentity

__all__ = ["RESOURCE", "bind_phone", "forget_session_keys", "sign_in"]

RESOURCE: Final = "identity.mini_program"
OPENID_CONTEXT: Final = "identity.mini_program.openid"
UNIONID_CONTEXT: Final = "identity.mini_program.unionid"
SESSION_KEY_CONTEXT: Final = "identity.mini_program.session_key"
PLATFORM_CATEGORIES: Final = ["user.account.platform_id"]
PHONE_BOUND_EVENT: Final = f"{EVENT_PREFIX}.phone.bound.v1"


@dataclass(frozen=True)
class SignIn:
    account: Account
    new_account: bool


async def sign_in(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    platform: MiniProgramPlatform,
    code: str,
    policy_version: str,
) -> SignIn:
    exchanged = await platform.exchange_login_code(code)
    openid_index = cipher.blind_index(
        f"{platform.platform}:{platform.app_id}:{exchanged.openid}", context=OPENID_CONTEXT
    )
    known = await session.scalar(
        select(MiniProgramIdentity).where(col(MiniProgramIdentity.openid_index) == openid_index)
    )
    account = await session.get(Account, known.account_id) if known is not None else None
    new_account = account is None or account.status != "active"
    if account is None or account.status != "active":
        account = await open_account(
            session,
            cipher=cipher,
            events=events,
            number=None,
            policy_version=policy_version,
            channel="mini_program",
            categories=PLATFORM_CATEGORIES,
        )
        known = MiniProgramIdentity(
            id=new_id("mpi"),
            account_id=account.id,
            platform=platform.platform,
            app_id=platform.app_id,
            openid_index=openid_index,
            openid_encrypted=await cipher.encrypt(
                session, subject=account.id, value=exchanged.openid, context=OPENID_CONTEXT
            ),
            unionid_encrypted=(
                await cipher.encrypt(
                    session, subject=account.id, value=exchanged.unionid, context=UNIONID_CONTEXT
                )
                if exchanged.unionid
                else None
            ),
        )
        session.add(known)
    assert known is not None
    known.session_key_encrypted = await cipher.encrypt(
        session, subject=account.id, value=exchanged.session_key, context=SESSION_KEY_CONTEXT
    )
    return SignIn(account=account, new_account=new_account)


async def bind_phone(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    catalogue: Catalogue,
    platform: MiniProgramPlatform,
    account_id: str,
    code: str,
) -> PhoneBound:
    account = await session.get(Account, account_id, with_for_update=True)
    if account is None or account.status != "active":
        raise NotFound("no such account")
    number = normalise_phone(await platform.exchange_phone_code(code))
    phone_index = cipher.blind_index(number, context=PHONE_CONTEXT)
    holder = await session.scalar(
        select(col(Account.id)).where(col(Account.phone_index) == phone_index)
    )
    if holder is not None and holder != account.id:
        raise Conflict("this phone number belongs to another account")
    account.phone_index = phone_index
    account.phone_encrypted = await cipher.encrypt(
        session, subject=account.id, value=number, context=PHONE_CONTEXT
    )
    events.add(
        session,
        type=PHONE_BOUND_EVENT,
        subject=account.id,
        purpose="account",
        data=contracts.PhoneBound(source=f"{platform.platform}.getPhoneNumber"),
        categories=["user.contact.phone_number"],
    )
    events.processing(
        session,
        subject=account.id,
        actor=account.id,
        action="write",
        purpose="account",
        resource=ACCOUNT_RESOURCE,
        categories=["user.contact.phone_number"],
    )
    rule = catalogue.masking_for(ACCOUNT_RESOURCE, "phone", "account")
    return PhoneBound(
        account_id=account.id, phone=apply_mask(number, rule) if rule is not None else None
    )


async def forget_session_keys(session: AsyncSession, *, account_id: str) -> None:
    """The platform's session keys of ``account_id`` go (logout, deletion)."""
    await session.execute(
        update(MiniProgramIdentity)
        .where(col(MiniProgramIdentity.account_id) == account_id)
        .values(session_key_encrypted=None)
    )
