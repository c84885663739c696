"""Accounts: register, authenticate (throttled, without telling whether a phone exists),
show the owner their account, grant roles, create staff. No HTTP here."""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit import contracts
from kit.catalogue import Catalogue
from kit.crypto import FieldCipher
from kit.errors import Conflict, DomainError, NotFound
from kit.ids import new_id
from kit.masking import apply_mask
from kit.outbox import EventWriter
from services.identity.accounts.schemas import AccountCreated, AccountView
from services.identity.config import Settings
from services.identity.models import Account
from services.identity.secrets import hash_secret, verify_secret
from services.identity.security import service as security
from services.identity.throttle import LockRule, LoginGuard
from services.identity.verification.rules import Action, ensure_verified

PHONE_CONTEXT = "identity.account.phone"
DEVICE_CONTEXT = "identity.device_cookie"
RESOURCE = "identity.account"
_MAINLAND_MOBILE = re.compile(r"^1[3-9]\d{9}$")
EVENT_PREFIX = "com.signature.identity"
ACCOUNT_CREATED_EVENT = f"{EVENT_PREFIX}.account.created.v1"


class InvalidPhone(DomainError):
    status, code, title = 422, "invalid-phone", "Invalid phone number"


class LoginFailed(DomainError):
    """Wrong phone or password: one message for both. Its failure count is kept."""

    status, code, title = 401, "login-failed", "Login failed"
    keep_changes = True


def normalise_phone(phone: str) -> str:
    """A mainland mobile number as 11 digits (``+86``, spaces and dashes dropped)."""
    digits = re.sub(r"[\s\-]", "", phone)
    digits = digits.removeprefix("+86").removeprefix("0086")
    if not _MAINLAND_MOBILE.match(digits):
        raise InvalidPhone(
            "the phone number must be a mainland mobile number of 11 digits",
            extra={
                "errors": [
                    {
                        "field": "body.phone",
                        "message": "not a mainland mobile number",
                        "type": "value_error",
                    }
                ]
            },
        )
    return digits


async def register(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    phone: str,
    password: str,
    kind: str = "user",
    roles: list[str] | None = None,
) -> AccountCreated:
    number = normalise_phone(phone)
    phone_index = cipher.blind_index(number, context=PHONE_CONTEXT)
    if await session.scalar(select(col(Account.id)).where(col(Account.phone_index) == phone_index)):
        raise Conflict("an account with this phone number exists")
    account_id = new_id("acc")
    account = Account(
        id=account_id,
        kind=kind,
        phone_index=phone_index,
        phone_encrypted=await cipher.encrypt(
            session, subject=account_id, value=number, context=PHONE_CONTEXT
        ),
        password_hash=await hash_secret(password),
        roles=list(roles or []),
    )
    session.add(account)
    events.add(
        session,
        type=ACCOUNT_CREATED_EVENT,
        subject=account_id,
        purpose="account",
        data=contracts.AccountCreated(kind=kind, roles=account.roles),
        categories=["user.contact.phone_number", "user.account.credentials"],
    )
    events.processing(
        session,
        subject=account_id,
        actor=account_id,
        action="write",
        purpose="account",
        resource=RESOURCE,
        categories=["user.contact.phone_number", "user.account.credentials"],
    )
    return AccountCreated(
        account_id=account_id,
        kind=kind,
        roles=account.roles,
    )


NO_PHONE_PREFIX = "none:"


async def open_account(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    number: str | None,
    policy_version: str,
    channel: str,
    categories: list[str],
) -> Account:
    """A user account opened by a first sign-in without a password (an SMS code proved the
    phone ``number``; a mini-program platform vouched for the user, ``number`` None). Its
    ``account.created`` event names the policy version the user agreed to on the sign-in
    screen, which the privacy center records as the agreement (``channel``: the client)."""
    account_id = new_id("acc")
    account = Account(
        id=account_id,
        kind="user",
        phone_index=(
            cipher.blind_index(number, context=PHONE_CONTEXT)
            if number
            else f"{NO_PHONE_PREFIX}{account_id}"
        ),
        phone_encrypted=(
            await cipher.encrypt(session, subject=account_id, value=number, context=PHONE_CONTEXT)
            if number
            else ""
        ),
        password_hash="",
        roles=[],
    )
    session.add(account)
    events.add(
        session,
        type=ACCOUNT_CREATED_EVENT,
        subject=account_id,
        purpose="account",
        data=contracts.AccountCreated(
            kind="user", roles=[], policy_version=policy_version, channel=channel
        ),
        categories=categories,
    )
    events.processing(
        session,
        subject=account_id,
        actor=account_id,
        action="write",
        purpose="account",
        resource=RESOURCE,
        categories=categories,
    )
    return account


@dataclass(frozen=True)
class Authenticated:
    account: Account
    device_cookie: str  # to keep (or set) on the device that signed in


def device_cookie(cipher: FieldCipher, account_id: str, nonce: str | None = None) -> str:
    """``<account>.<nonce>.<mac>``: proves this device signed in to the account before
    (OWASP device cookie); keyed by the master key, so it cannot be made elsewhere."""
    nonce = nonce or secrets.token_urlsafe(16)
    mac = cipher.blind_index(f"{account_id}.{nonce}", context=DEVICE_CONTEXT)
    return f"{account_id}.{nonce}.{mac}"


def _known_device(cipher: FieldCipher, cookie: str | None, account: Account | None) -> str | None:
    """The cookie's nonce when it is a genuine device cookie of ``account``."""
    if not cookie or account is None or cookie.count(".") != 2:
        return None
    account_id, nonce, _ = cookie.split(".")
    genuine = hmac.compare_digest(device_cookie(cipher, account_id, nonce), cookie)
    return nonce if genuine and account_id == account.id else None


async def authenticate(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    settings: Settings,
    phone: str,
    password: str,
    client_address: str,
    cookie: str | None = None,
    events: EventWriter | None = None,
) -> Authenticated:
    """The account for these credentials, throttled without telling whether a phone
    exists. From a device that signed in to the account before (its device cookie) only
    that device's failures count; from any other, failures count per phone (account or
    not), which locks with backoff, and per client address, which slows (see
    :class:`services.identity.config.Settings`). A locked key refuses every try, right
    password or not."""
    try:
        number = normalise_phone(phone)
    except InvalidPhone:
        number = phone.strip()
    phone_index = cipher.blind_index(number, context=PHONE_CONTEXT)
    account = await session.scalar(select(Account).where(col(Account.phone_index) == phone_index))
    active = account is not None and account.status == "active"
    lock = LockRule(
        free=settings.login_max_failures,
        first_s=settings.login_lock_s,
        max_s=settings.login_lock_max_s,
        backoff=True,
    )
    nonce = _known_device(cipher, cookie, account if active else None)
    if nonce is not None:
        owner_key = f"device:{nonce}"
        rules = {owner_key: lock}
    else:
        owner_key = security.phone_key(phone_index)
        slow = LockRule(
            free=settings.login_address_failures,
            first_s=settings.login_address_delay_s,
            max_s=settings.login_address_delay_s,
            backoff=False,
        )
        rules = {owner_key: lock, f"addr:{client_address}": slow}
    throttle = await LoginGuard.load(session, rules, window_s=settings.login_window_s)
    stored_hash = (account.password_hash or None) if active and account else None
    if not await verify_secret(password, stored_hash):  # an account without a password: none
        throttle.fail()
        if events is not None and active and account is not None and nonce is None:
            await security.after_login_failure(
                session,
                events=events,
                account_id=account.id,
                failures=throttle.failures(owner_key),
                flag_at=settings.fraud_failed_logins,
            )
        raise LoginFailed("the phone number or the password is wrong")
    throttle.succeed(owner_key)
    assert account is not None
    kept = cookie if nonce is not None and cookie else None
    return Authenticated(account=account, device_cookie=kept or device_cookie(cipher, account.id))


async def view_own_account(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    catalogue: Catalogue,
    account_id: str,
) -> AccountView:
    account = await session.get(Account, account_id)
    if account is None or account.status != "active":
        raise NotFound("no such account")
    phone: str | None = None
    rule = catalogue.masking_for(RESOURCE, "phone", "account")
    if rule is not None and account.phone_encrypted:
        phone = apply_mask(
            await cipher.decrypt(
                session, subject=account.id, token=account.phone_encrypted, context=PHONE_CONTEXT
            ),
            rule,
        )
    # Not recorded here: the answer leaves through the gateway, whose access event is the
    # one ledger entry of this read (README, "Recording each read once").
    return AccountView(
        account_id=account.id,
        kind=account.kind,
        phone=phone,
        roles=account.roles,
        verification_level=account.verification_level,
        minor=account.minor,
        guardian_linked=account.guardian_account_id is not None,
        created_at=account.created_at,
    )


async def grant_user_role(
    session: AsyncSession, *, events: EventWriter, account_id: str, role: str
) -> AccountCreated:
    """Make the user a seller or content creator: real-name verification first (2A)."""
    account = await session.get(Account, account_id)
    if account is None or account.status != "active" or account.kind != "user":
        raise NotFound("no such user account")
    action = {"seller": Action.BECOME_SELLER, "content_creator": Action.BECOME_CONTENT_CREATOR}[
        role
    ]
    ensure_verified(account, action)
    if role not in account.roles:
        account.roles = [*account.roles, role]
        events.add(
            session,
            type=f"{EVENT_PREFIX}.role.granted.v1",
            subject=account.id,
            purpose="account",
            data=contracts.RoleGranted(role=role, by=account.id),
        )
    return AccountCreated(account_id=account.id, kind="user", roles=account.roles)


async def create_staff(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    phone: str,
    password: str,
    roles: list[str],
    granted_by: str,
) -> AccountCreated:
    """A staff account with admin roles (the first one comes from the CLI)."""
    created = await register(
        session,
        cipher=cipher,
        events=events,
        phone=phone,
        password=password,
        kind="staff",
        roles=sorted(set(roles)),
    )
    for role in created.roles:
        events.add(
            session,
            type=f"{EVENT_PREFIX}.role.granted.v1",
            subject=created.account_id,
            purpose="account",
            data=contracts.RoleGranted(role=role, by=granted_by),
        )
    return created
