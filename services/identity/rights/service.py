"""Rights requests at identity (OB-R-1, OB-4-2). No HTTP here.

Export (:func:`export`): the account (phone, roles, kind, status, created), the
verification (real name, ID number: each masked as the catalogue says for ``rights.access``,
so the ID number is masked) and the login sessions, each personal field with its category,
purposes and retention from the catalogue. The password is never shown, only that one is
set. Identity links no user to a partner. A subject whose key was shredded shows the
account's facts without its personal values. Every export that shows personal data is a
processing record (actor: the calling service's client id).

Deletion (:func:`handle`, kind ``deletion``): the account is marked ``deleted`` (login
refused from then on), its refresh tokens are revoked, its phone's blind index and password
hash are removed, the verification row is deleted and the subject's key is crypto-shredded
(``cipher.shred``), so any ciphertext left anywhere in identity is unreadable, and
``identity.account.closed`` (subject only) tells the gateway to refuse the account's
tokens still in date. Answered
``done`` with the categories deleted. ``access`` is answered ``done`` (the export is
fetched over HTTP). A ``correction`` is refused without reading it (:data:`NOT_CORRECTED`):
the phone number is the login and there is no change-of-number route yet, and real-name
data are what the authority confirmed (verify again instead). ``withdraw_all`` is ``done``
(:data:`WITHDRAWN`): the privacy center withdraws the consents itself, and the only
consent identity relies on, ``sensitive.face_verification``, guards a face image that is
never stored. The answer goes through the outbox in the same transaction as the changes.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit import contracts, rights
from kit.catalogue import Catalogue
from kit.crypto import FieldCipher, SubjectKeyShredded
from kit.events import Event
from kit.masking import apply_mask
from kit.models import utcnow
from kit.outbox import EventWriter
from services.identity.accounts.service import PHONE_CONTEXT
from services.identity.accounts.service import RESOURCE as ACCOUNT
from services.identity.mini_program.service import OPENID_CONTEXT, UNIONID_CONTEXT
from services.identity.mini_program.service import RESOURCE as MINI_PROGRAM
from services.identity.models import (
    Account,
    MiniProgramIdentity,
    NetworkIdentity,
    RealNameVerification,
    RefreshToken,
)
from services.identity.network_identity.service import CATEGORY as NETWORK_NUMBER
from services.identity.rights.schemas import (
    AccountExport,
    IdentityExport,
    LoginSession,
    NetworkIdentityExport,
    PlatformIdentityExport,
    VerificationExport,
)
from services.identity.security import service as security
from services.identity.verification.service import ID_NUMBER_CONTEXT, REAL_NAME_CONTEXT
from services.identity.verification.service import RESOURCE as VERIFICATION

SERVICE: Final = "identity"
ACCOUNT_CLOSED: Final = "com.signature.identity.account.closed.v1"
DELETED_STATUS: Final = "deleted"
SHREDDED_NOTE: Final = "the subject's key was shredded: personal values are gone"
NOT_CORRECTED: Final = (
    "identity corrects nothing on request: the phone number is the account's login and "
    "is not changed by a correction (there is no change-of-number route yet; customer "
    "service can help); real-name data were verified against the authority: verify again "
    "(POST /verifications)"
)
WITHDRAWN: Final = (
    "nothing at identity depends on consent any more: real-person verification with a face "
    "image needs the consent again, and face images were never stored"
)


def _masked(catalogue: Catalogue, resource: str, field: str, value: str) -> str | None:
    rule = catalogue.masking_for(resource, field, rights.PURPOSE)
    return None if rule is None else apply_mask(value, rule)


async def _platform_identities(
    session: AsyncSession, *, cipher: FieldCipher, catalogue: Catalogue, subject: str
) -> tuple[list[PlatformIdentityExport], set[str], bool]:
    """The subject's mini-program identities as ``rights.access`` sees them, the categories
    shown and whether the subject's key was shredded."""
    categories: set[str] = set()
    shredded = False
    platform_part: list[PlatformIdentityExport] = []
    platform_ids = await session.scalars(
        select(MiniProgramIdentity).where(col(MiniProgramIdentity.account_id) == subject)
    )
    for platform_id in platform_ids:
        platform_fields: dict[str, rights.ExportedField] = {}
        try:
            openid = await cipher.decrypt(
                session, subject=subject, token=platform_id.openid_encrypted, context=OPENID_CONTEXT
            )
        except SubjectKeyShredded:
            shredded = True
        else:
            platform_fields["openid"] = rights.exported_field(
                catalogue,
                MINI_PROGRAM,
                "openid",
                _masked(catalogue, MINI_PROGRAM, "openid", openid),
            )
            categories.add(catalogue.field_policy(MINI_PROGRAM, "openid").category)
        if platform_id.unionid_encrypted:
            try:
                unionid = await cipher.decrypt(
                    session,
                    subject=subject,
                    token=platform_id.unionid_encrypted,
                    context=UNIONID_CONTEXT,
                )
            except SubjectKeyShredded:
                shredded = True
            else:
                platform_fields["unionid"] = rights.exported_field(
                    catalogue,
                    MINI_PROGRAM,
                    "unionid",
                    _masked(catalogue, MINI_PROGRAM, "unionid", unionid),
                )
        if platform_id.session_key_encrypted:
            platform_fields["session_key"] = rights.exported_field(
                catalogue, MINI_PROGRAM, "session_key", "set (never shown)"
            )
        platform_part.append(
            PlatformIdentityExport(
                platform=platform_id.platform,
                app_id=platform_id.app_id,
                created_at=platform_id.created_at,
                fields=platform_fields,
            )
        )
    return platform_part, categories, shredded


async def export(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    catalogue: Catalogue,
    actor: str,
    subject: str,
) -> IdentityExport:
    account = await session.get(Account, subject)
    if account is None:
        return IdentityExport(
            subject=subject,
            account=None,
            verification=None,
            sessions=[],
            note="identity holds no account for this subject",
        )
    categories: set[str] = set()
    shredded = False
    account_fields: dict[str, rights.ExportedField] = {}
    if account.phone_encrypted:
        try:
            phone = await cipher.decrypt(
                session, subject=subject, token=account.phone_encrypted, context=PHONE_CONTEXT
            )
        except SubjectKeyShredded:
            shredded = True
        else:
            account_fields["phone"] = rights.exported_field(
                catalogue, ACCOUNT, "phone", _masked(catalogue, ACCOUNT, "phone", phone)
            )
            categories.add(catalogue.field_policy(ACCOUNT, "phone").category)
    if account.password_hash:
        account_fields["password_hash"] = rights.exported_field(
            catalogue, ACCOUNT, "password_hash", "set (never shown)"
        )
    verification_part: VerificationExport | None = None
    verification = await session.get(RealNameVerification, subject)
    if verification is not None:
        values: dict[str, rights.ExportedField] = {}
        stored = {
            "real_name": (verification.real_name_encrypted, REAL_NAME_CONTEXT),
            "id_number": (verification.id_number_encrypted, ID_NUMBER_CONTEXT),
        }
        for field, (token, context) in stored.items():
            try:
                plain = await cipher.decrypt(session, subject=subject, token=token, context=context)
            except SubjectKeyShredded:
                shredded = True
                continue
            values[field] = rights.exported_field(
                catalogue, VERIFICATION, field, _masked(catalogue, VERIFICATION, field, plain)
            )
            categories.add(catalogue.field_policy(VERIFICATION, field).category)
        verification_part = VerificationExport(
            level=verification.level,
            verified_at=verification.verified_at,
            minor_until=verification.minor_until,
            fields=values,
        )
    tokens = await session.scalars(
        select(RefreshToken)
        .where(col(RefreshToken.account_id) == subject)
        .order_by(col(RefreshToken.created_at))
    )
    sessions = [
        LoginSession(
            client_type=token.client_type,
            created_at=token.created_at,
            expires_at=token.expires_at,
            revoked=token.revoked_at is not None,
        )
        for token in tokens
    ]
    platform_part, platform_categories, platform_shredded = await _platform_identities(
        session, cipher=cipher, catalogue=catalogue, subject=subject
    )
    categories |= platform_categories
    shredded = shredded or platform_shredded
    network_part: NetworkIdentityExport | None = None
    network = await session.get(NetworkIdentity, subject)
    if network is not None:  # OB-L-11: the network number is the user's data too
        network_part = NetworkIdentityExport(
            level=network.level,
            verified_at=network.verified_at,
            network_number=network.network_number,
            category=NETWORK_NUMBER,
        )
        categories.add(NETWORK_NUMBER)
    if categories:
        events.processing(
            session,
            subject=subject,
            actor=actor,
            action="read",
            purpose=rights.PURPOSE,
            resource=ACCOUNT,
            categories=sorted(categories),
        )
    return IdentityExport(
        subject=subject,
        account=AccountExport(
            account_id=account.id,
            kind=account.kind,
            status=account.status,
            roles=list(account.roles),
            verification_level=account.verification_level,
            minor=account.minor,
            guardian_linked=account.guardian_account_id is not None,
            created_at=account.created_at,
            fields=account_fields,
        ),
        verification=verification_part,
        sessions=sessions,
        platform_identities=platform_part,
        network_identity=network_part,
        note=SHREDDED_NOTE if shredded else None,
    )


def _categories(catalogue: Catalogue, resource: str, fields: list[str]) -> set[str]:
    return {catalogue.field_policy(resource, field).category for field in fields}


async def delete_subject(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    catalogue: Catalogue,
    subject: str,
) -> list[str]:
    """Delete what identity holds about ``subject`` (see the module docstring); returns the
    categories deleted (none when identity holds nothing)."""
    account = await session.get(Account, subject, with_for_update=True)
    deleted: set[str] = set()
    if account is not None:
        now = utcnow()
        account.status = DELETED_STATUS
        # The blind index is unique and links the row to a phone number: replaced by a
        # value that names only the account, so the number may register again.
        account.phone_index = f"deleted:{account.id}"
        account.phone_encrypted = ""
        account.password_hash = ""
        account.guardian_account_id = None
        account.guardian_consent_at = None
        await session.execute(
            update(RefreshToken)
            .where(col(RefreshToken.account_id) == subject, col(RefreshToken.revoked_at).is_(None))
            .values(revoked_at=now)
        )
        deleted |= _categories(catalogue, ACCOUNT, ["phone", "password_hash"])
    platform_ids = (
        await session.scalars(
            select(MiniProgramIdentity).where(col(MiniProgramIdentity.account_id) == subject)
        )
    ).all()
    for platform_id in platform_ids:  # the openid, unionid and session key go with it
        await session.delete(platform_id)
    if platform_ids:
        deleted |= _categories(catalogue, MINI_PROGRAM, ["openid", "unionid", "session_key"])
    verification = await session.get(RealNameVerification, subject)
    if verification is not None:
        await session.delete(verification)
        deleted |= _categories(catalogue, VERIFICATION, ["real_name", "id_number"])
    network = await session.get(NetworkIdentity, subject)
    if network is not None:  # OB-L-11: the network number goes with the account
        await session.delete(network)
        deleted.add(NETWORK_NUMBER)
    await security.delete_flags(session, account_id=subject)
    await cipher.shred(session, subject=subject)
    if account is not None:
        # Tokens already issued stay valid until they expire; the gateway refuses them at
        # once when it learns this (gateway.policy_facts).
        events.add(
            session,
            type=ACCOUNT_CLOSED,
            subject=subject,
            purpose="account",
            data=contracts.AccountClosed(),
        )
    if deleted:
        events.processing(
            session,
            subject=subject,
            actor=f"{SERVICE}.rights",
            action="delete",
            purpose=rights.PURPOSE,
            resource=ACCOUNT,
            categories=sorted(deleted),
        )
    await session.flush()
    return sorted(deleted)


async def handle(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    catalogue: Catalogue,
    event: Event,
) -> Event | None:
    """Answer a ``rights.requested`` event that names identity; None for other events."""
    request = rights.requested_of(event, SERVICE)
    if request is None:
        return None
    if request.kind == "correction":
        return rights.answer(
            session,
            events=events,
            service=SERVICE,
            request=request,
            outcome="refused",
            reason=NOT_CORRECTED,
        )
    if request.kind == "withdraw_all":
        return rights.answer(
            session,
            events=events,
            service=SERVICE,
            request=request,
            outcome="done",
            reason=WITHDRAWN,
        )
    if request.kind != "deletion":
        return rights.answer_unsupported(session, events=events, service=SERVICE, request=request)
    deleted = await delete_subject(
        session, cipher=cipher, events=events, catalogue=catalogue, subject=request.subject
    )
    reason = None if deleted else "identity held no personal data about this subject"
    return rights.answer(
        session,
        events=events,
        service=SERVICE,
        request=request,
        outcome="done",
        deleted=deleted,
        reason=reason,
    )
