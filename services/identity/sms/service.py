"""SMS codes: send one (limited per phone, per account and per client address, with a
cool-down between sends, without telling whether a phone has an account), and sign in with
it (a first sign-in opens the account). No HTTP here.

A code is 6 random digits, valid ``sms_code_ttl_s``, used once, refused after
``sms_code_max_tries`` wrong tries; only its keyed hash (HMAC under the master key, bound to
the phone's blind index) is stored, and a new code replaces the phone's previous one.
"""

from __future__ import annotations

import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit.crypto import FieldCipher
from kit.errors import DomainError
from kit.ids import new_id
from kit.models import utcnow
from kit.outbox import EventWriter
from services.identity.accounts.service import PHONE_CONTEXT, normalise_phone, open_account
from services.identity.config import Settings
from services.identity.models import Account, LoginThrottle, SmsCode
from services.identity.sms.schemas import CodeSent
from services.identity.sms.sender import SmsSender

__all__ = ["CodeRejected", "SignIn", "TooManyCodes", "send_code", "sign_in"]

CODE_CONTEXT: Final = "identity.sms.code"
CODE_DIGITS: Final = 6
ACCOUNT_CATEGORIES: Final = ["user.contact.phone_number"]


class TooManyCodes(DomainError):
    """Sending refused for now (a cool-down, or the window's allowance is spent)."""

    status, code, title = 429, "too-many-codes", "Too many codes asked for"

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(retry_after_s)}


class CodeRejected(DomainError):
    """Wrong, expired, used or exhausted code, or no code at all: one answer for all. The
    wrong try is counted (``keep_changes``)."""

    status, code, title = 401, "sms-code-rejected", "Code rejected"
    keep_changes = True


@dataclass(frozen=True)
class SignIn:
    account: Account
    new_account: bool


def _code_hash(cipher: FieldCipher, phone_index: str, code: str) -> str:
    return cipher.blind_index(f"{phone_index}:{code}", context=CODE_CONTEXT)


@dataclass(frozen=True)
class _Allowance:
    key: str
    limit: int
    cool_down_s: int  # 0: none


async def _spend(
    session: AsyncSession, allowances: list[_Allowance], *, now: datetime, window_s: int
) -> None:
    """Count one send against each allowance (``LoginThrottle`` rows keyed ``sms:...``:
    ``failures`` counts the sends of the window, ``locked_until`` ends the cool-down), or
    raise :class:`TooManyCodes` with the longest wait."""
    rows: list[tuple[LoginThrottle, _Allowance]] = []
    waits: list[float] = []
    for allowance in allowances:
        row = await session.get(LoginThrottle, allowance.key, with_for_update=True)
        if row is None:
            row = LoginThrottle(key=allowance.key, failures=0, window_started_at=now)
            session.add(row)
        elif now - row.window_started_at >= timedelta(seconds=window_s):
            row.failures, row.window_started_at = 0, now
        if row.locked_until is not None and row.locked_until > now:
            waits.append((row.locked_until - now).total_seconds())
        if row.failures >= allowance.limit:
            window_ends = row.window_started_at + timedelta(seconds=window_s)
            waits.append((window_ends - now).total_seconds())
        rows.append((row, allowance))
    if waits:
        raise TooManyCodes(
            "too many codes asked for; try again later",
            retry_after_s=max(1, math.ceil(max(waits))),
        )
    for row, allowance in rows:
        row.failures += 1
        if allowance.cool_down_s:
            row.locked_until = now + timedelta(seconds=allowance.cool_down_s)


async def send_code(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    settings: Settings,
    sender: SmsSender,
    phone: str,
    client_address: str,
) -> CodeSent:
    """Send a new code to ``phone``. The answer and the limits are the same whether or not
    the phone has an account (its account's allowance equals the phone's)."""
    number = normalise_phone(phone)
    phone_index = cipher.blind_index(number, context=PHONE_CONTEXT)
    now = utcnow()
    allowances = [
        _Allowance(f"sms:phone:{phone_index}", settings.sms_sends_per_phone, settings.sms_resend_s),
        _Allowance(f"sms:addr:{client_address}", settings.sms_sends_per_address, 0),
    ]
    account_id = await session.scalar(
        select(col(Account.id)).where(col(Account.phone_index) == phone_index)
    )
    if account_id is not None:
        allowances.append(_Allowance(f"sms:account:{account_id}", settings.sms_sends_per_phone, 0))
    await _spend(session, allowances, now=now, window_s=settings.sms_send_window_s)
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    await session.execute(delete(SmsCode).where(col(SmsCode.phone_index) == phone_index))
    session.add(
        SmsCode(
            id=new_id("sms"),
            phone_index=phone_index,
            code_hash=_code_hash(cipher, phone_index, code),
            created_at=now,
            expires_at=now + timedelta(seconds=settings.sms_code_ttl_s),
        )
    )
    await sender.send_code(phone=number, code=code, ttl_s=settings.sms_code_ttl_s)
    return CodeSent(expires_in=settings.sms_code_ttl_s, resend_after=settings.sms_resend_s)


async def sign_in(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    settings: Settings,
    phone: str,
    code: str,
    policy_version: str,
    channel: str,
) -> SignIn:
    """The account of ``phone`` once ``code`` is its live code; a phone without an account
    gets one (agreeing to ``policy_version``). Any other case is :class:`CodeRejected`."""
    number = normalise_phone(phone)
    phone_index = cipher.blind_index(number, context=PHONE_CONTEXT)
    now = utcnow()
    record = await session.scalar(
        select(SmsCode)
        .where(col(SmsCode.phone_index) == phone_index, col(SmsCode.used_at).is_(None))
        .with_for_update()
    )
    live = (
        record is not None
        and record.expires_at > now
        and record.tries < settings.sms_code_max_tries
    )
    if record is None or not live:
        raise CodeRejected("the code is wrong or no longer valid; ask for a new one")
    if not hmac.compare_digest(record.code_hash, _code_hash(cipher, phone_index, code)):
        record.tries += 1
        raise CodeRejected("the code is wrong or no longer valid; ask for a new one")
    record.used_at = now
    account = await session.scalar(select(Account).where(col(Account.phone_index) == phone_index))
    if account is not None and account.status == "active":
        return SignIn(account=account, new_account=False)
    opened = await open_account(
        session,
        cipher=cipher,
        events=events,
        number=number,
        policy_version=policy_version,
        channel=channel,
        categories=ACCOUNT_CATEGORIES,
    )
    return SignIn(account=opened, new_account=True)
