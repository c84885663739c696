"""Verification use cases: plain async functions over the caller's session, no HTTP.

- :func:`verify`: validate the ID number (no provider call for an invalid one), refuse an
  ID number bound to another account (409, without saying which), ask the authority, then
  store the name and ID number encrypted under the account's key with a blind index, set
  the account's level and minor flag, and record the events (OB-2A-2, OB-2A-3, OB-2A-4).
- :func:`read_own`: the caller's verification, masked as the catalogue says for the
  purpose ``identity.verification`` (OB-2A-3).
- :func:`link_guardian`: a verified adult becomes the guardian of a verified minor under
  14 named by real name and ID number, giving the guardian's consent (OB-2A-4).

The face image is used in memory for the provider call only: never stored, logged or put
into an event. Events carry ids, levels and outcomes, never a name or number. Functions
write to the session and leave the commit to the caller; whatever they raise leaves
nothing written once the caller rolls back (``kit.db.Database.session`` does), with one
exception: on a mismatch the ``completed`` event (no personal data) is added before
:class:`VerificationFailed` is raised, whose ``keep_changes`` makes the unit of work commit
it as the record of the failed attempt. :class:`ProviderUnavailable` is raised before
anything is added to the session.
"""

from __future__ import annotations

import hmac
import logging
import unicodedata
from datetime import UTC, date, datetime
from typing import Final

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit import contracts
from kit.catalogue import Catalogue
from kit.clock import china_today
from kit.crypto import FieldCipher, SubjectKeyShredded
from kit.errors import Conflict, DomainError, Forbidden, NotFound
from kit.id_number import (
    age_on,
    turns_14_on,
    validate_id_number,
)
from kit.masking import apply_mask
from kit.models import utcnow
from kit.outbox import EventWriter
from kit.throttle import guard
from services.identity.models import Account, LoginThrottle, RealNameVerification
from services.identity.verification.authority import AuthorityAdapter, Level
from services.identity.verification.rules import Action, VerificationRequired
from services.identity.verification.schemas import (
    GuardianLinkRequest,
    GuardianLinkResult,
    VerificationRequest,
    VerificationResult,
)

__all__ = [
    "COMPLETED_EVENT",
    "GUARDIAN_LINKED_EVENT",
    "ID_NUMBER_CONTEXT",
    "REAL_NAME_CONTEXT",
    "NotVerified",
    "VerificationFailed",
    "link_guardian",
    "read_own",
    "verify",
    "verify_face",
]

logger = logging.getLogger("services.identity.verification")

PURPOSE: Final = "identity.verification"
FACE_PURPOSE: Final = "sensitive.face_verification"
RESOURCE: Final = "identity.verification"
REAL_NAME_CONTEXT: Final = "identity.verification.real_name"
ID_NUMBER_CONTEXT: Final = "identity.verification.id_number"
COMPLETED_EVENT: Final = "com.signature.identity.verification.completed.v1"
GUARDIAN_LINKED_EVENT: Final = "com.signature.identity.guardian.linked.v1"

NAME: Final = "user.name"
ID_NUMBER: Final = "user.government_id.national_identification_number"
FACE: Final = "user.biometric.face"
MINOR_AGE: Final = "user.minor.age"

ADULT_AGE: Final = 18


class NotVerified(Conflict):
    """Real-person verification needs the real-name verification first."""

    code, title = "not-verified", "Not verified"


class VerificationFailed(DomainError):
    """The authority did not confirm that the name, ID number (and face) belong together."""

    status, code, title = 422, "verification-failed", "Verification failed"
    # The outcome event (no personal data) is the record of the failed attempt: keep it.
    keep_changes = True


# -- verify ---------------------------------------------------------------------------------


async def verify(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    catalogue: Catalogue,
    authority: AuthorityAdapter,
    account_id: str,
    request: VerificationRequest,
    today: date,
    max_failures: int = 5,
    window_s: int = 24 * 3600,
) -> VerificationResult:
    """Verify ``account_id``'s real name and ID number (and face) with the authority.

    Raises :class:`~kit.id_number.InvalidIdNumber` (422) before any look-up or provider call,
    ``NotFound`` for an unknown or closed account, ``Conflict`` (409) if the ID number is
    bound to another account or the account to another ID number,
    :class:`~.authority.ProviderUnavailable` (503, nothing written) and
    :class:`VerificationFailed` (422) on a mismatch, counted: after ``max_failures``
    mismatches in ``window_s`` the account gets ``TooManyAttempts`` (429), so the endpoint
    cannot be used to test name/ID pairs.
    """
    id_number = validate_id_number(request.id_number, today=today)
    account = await _active_account(session, account_id, lock=True)
    throttle = await guard(
        session,
        LoginThrottle,
        [f"verify:{account_id}"],
        max_failures=max_failures,
        window_s=window_s,
        what="verifications",
    )
    index = cipher.blind_index(id_number, context=ID_NUMBER_CONTEXT)
    holder = await _verification_by_index(session, index)
    if holder is not None and holder.account_id != account_id:
        raise Conflict("this ID number is already verified for another account")
    own = await session.get(RealNameVerification, account_id)
    if own is not None and own.id_number_index != index:
        raise Conflict("this account is already verified with another ID number")

    face_checked = request.face_image is not None
    outcome = await authority.check(
        real_name=request.real_name,
        id_number=id_number,
        face_image=request.face_image_bytes(),
    )
    if not outcome.matched:
        events.add(
            session,
            type=COMPLETED_EVENT,
            subject=account_id,
            purpose=PURPOSE,
            data=contracts.VerificationCompleted(result="mismatch", level=outcome.level),
        )
        logger.info("verification mismatch for account %s (%s)", account_id, outcome.level)
        throttle.fail()
        raise VerificationFailed(
            "the authoritative provider did not confirm this identity; check the name, "
            "the ID number" + (" and the face image" if face_checked else "")
        )

    turns_14 = turns_14_on(id_number)
    minor = today < turns_14
    level = _higher(own.level if own is not None else "none", outcome.level)
    name_token = await cipher.encrypt(
        session, subject=account_id, value=request.real_name, context=REAL_NAME_CONTEXT
    )
    id_token = await cipher.encrypt(
        session, subject=account_id, value=id_number, context=ID_NUMBER_CONTEXT
    )
    verified_at = utcnow()
    try:
        async with session.begin_nested():
            if own is None:
                own = RealNameVerification(
                    account_id=account_id,
                    real_name_encrypted=name_token,
                    id_number_encrypted=id_token,
                    id_number_index=index,
                    level=level,
                    provider_reference=outcome.reference[:100],
                    minor_until=turns_14 if minor else None,
                    verified_at=verified_at,
                )
                session.add(own)
            else:
                own.real_name_encrypted = name_token
                own.id_number_encrypted = id_token
                own.level = level
                own.provider_reference = outcome.reference[:100]
                own.minor_until = turns_14 if minor else None
                own.verified_at = verified_at
            account.verification_level = _higher(account.verification_level, level)
            account.minor = minor
            await session.flush()
    except IntegrityError:  # another account bound this ID number meanwhile
        raise Conflict("this ID number is already verified for another account") from None

    events.add(
        session,
        type=COMPLETED_EVENT,
        subject=account_id,
        purpose=PURPOSE,
        data=contracts.VerificationCompleted(result="match", level=level, minor=minor),
        categories=[MINOR_AGE],
    )
    events.processing(
        session,
        subject=account_id,
        actor=account_id,
        action="write",
        purpose=PURPOSE,
        resource=RESOURCE,
        categories=[NAME, ID_NUMBER, MINOR_AGE],
    )
    if face_checked:  # checked by the provider, not kept: a use, not a write
        events.processing(
            session,
            subject=account_id,
            actor=account_id,
            action="read",
            purpose=FACE_PURPOSE,
            resource=RESOURCE,
            categories=[FACE],
        )
    logger.info("verification match for account %s (%s)", account_id, level)
    return _result(
        catalogue,
        level=level,
        verified_at=verified_at,
        minor=minor,
        real_name=request.real_name,
        id_number=id_number,
    )


# -- read back ------------------------------------------------------------------------------


async def verify_face(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    catalogue: Catalogue,
    authority: AuthorityAdapter,
    account_id: str,
    face_image: str,
    today: date,
    max_failures: int = 5,
    window_s: int = 24 * 3600,
) -> VerificationResult:
    """Real-person verification (purpose ``sensitive.face_verification``, a separate
    consent the gateway checks): the authority compares ``face_image`` with the name and
    ID number already verified, decrypted here for that call only. The image is never
    stored. Raises ``NotVerified`` (409) when there is no real-name verification yet;
    otherwise as :func:`verify`."""
    own = await session.get(RealNameVerification, account_id)
    if own is None:
        raise NotVerified("verify the real name and ID number first (POST /verifications)")
    real_name = await cipher.decrypt(
        session, subject=account_id, token=own.real_name_encrypted, context=REAL_NAME_CONTEXT
    )
    id_number = await cipher.decrypt(
        session, subject=account_id, token=own.id_number_encrypted, context=ID_NUMBER_CONTEXT
    )
    return await verify(
        session,
        cipher=cipher,
        events=events,
        catalogue=catalogue,
        authority=authority,
        account_id=account_id,
        request=VerificationRequest(
            real_name=real_name, id_number=id_number, face_image=face_image
        ),
        today=today,
        max_failures=max_failures,
        window_s=window_s,
    )


async def read_own(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    catalogue: Catalogue,
    account_id: str,
    today: date | None = None,
) -> VerificationResult | None:
    """``account_id``'s verification masked for ``identity.verification``, or None if the
    account is not verified. ``minor`` is whether the holder is under 14 on ``today``
    (default: today in China). Fields the purpose may not see are None and not decrypted."""
    row = await session.get(RealNameVerification, account_id)
    if row is None:
        return None
    values: dict[str, str | None] = {}
    read: list[str] = []
    for field, token, context, category in (
        ("real_name", row.real_name_encrypted, REAL_NAME_CONTEXT, NAME),
        ("id_number", row.id_number_encrypted, ID_NUMBER_CONTEXT, ID_NUMBER),
    ):
        rule = catalogue.masking_for(RESOURCE, field, PURPOSE)
        if rule is None or rule.strategy == "redact":
            values[field] = None
            continue
        plain = await cipher.decrypt(session, subject=account_id, token=token, context=context)
        values[field] = apply_mask(plain, rule)
        read.append(category)
    if read:
        events.processing(
            session,
            subject=account_id,
            actor=account_id,
            action="read",
            purpose=PURPOSE,
            resource=RESOURCE,
            categories=read,
        )
    return VerificationResult(
        level="real_person" if row.level == "real_person" else "real_name",
        verified_at=_aware(row.verified_at),
        minor=row.minor_until is not None and (today or china_today()) < row.minor_until,
        real_name=values["real_name"],
        id_number=values["id_number"],
    )


# -- guardians ------------------------------------------------------------------------------


async def link_guardian(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    guardian_account_id: str,
    request: GuardianLinkRequest,
    today: date,
) -> GuardianLinkResult:
    """Record ``guardian_account_id`` as the guardian of the minor named in ``request``,
    consenting now (idempotent for the same guardian).

    The guardian must be verified (else :class:`VerificationRequired`) and 18 or older on
    ``today`` (else ``Forbidden``). The ward must be a verified account under 14 whose
    stored real name equals the given one; an unknown ID number, a wrong name and a ward
    who is not a minor all give the same ``NotFound``. A ward who already has another
    guardian is a ``Conflict``.
    """
    guardian = await _active_account(session, guardian_account_id)
    own = await session.get(RealNameVerification, guardian_account_id)
    if own is None or not guardian.verified:
        raise VerificationRequired(
            "a guardian must have completed real-name verification first",
            extra={"action": Action.LEGAL_DUTY_MINOR_PROTECTION.value},
        )
    guardian_id_number = await cipher.decrypt(
        session,
        subject=guardian_account_id,
        token=own.id_number_encrypted,
        context=ID_NUMBER_CONTEXT,
    )
    if age_on(guardian_id_number, today) < ADULT_AGE:
        raise Forbidden("a guardian must be an adult (18 or older)")

    ward_id_number = validate_id_number(request.id_number, today=today)
    not_found = NotFound("no verified minor's account matches this name and ID number")
    row = await _verification_by_index(
        session, cipher.blind_index(ward_id_number, context=ID_NUMBER_CONTEXT)
    )
    if row is None or row.account_id == guardian_account_id:
        raise not_found
    ward = await _active_account(session, row.account_id, lock=True, missing=not_found)
    try:
        stored_name = await cipher.decrypt(
            session, subject=ward.id, token=row.real_name_encrypted, context=REAL_NAME_CONTEXT
        )
    except SubjectKeyShredded:
        raise not_found from None
    is_minor = row.minor_until is not None and today < row.minor_until
    if not (_same_name(stored_name, request.real_name) and is_minor):
        raise not_found
    if ward.guardian_account_id not in (None, guardian_account_id):
        raise Conflict("this minor already has a guardian")

    if ward.guardian_account_id is None or ward.guardian_consent_at is None:
        ward.guardian_account_id = guardian_account_id
        ward.guardian_consent_at = utcnow()
        events.add(
            session,
            type=GUARDIAN_LINKED_EVENT,
            subject=ward.id,
            purpose=PURPOSE,
            data=contracts.GuardianLinked(guardian_account_id=guardian_account_id),
            categories=[MINOR_AGE],
        )
    for subject, categories in ((ward.id, [NAME]), (guardian_account_id, [ID_NUMBER])):
        events.processing(
            session,
            subject=subject,
            actor=guardian_account_id,
            action="read",
            purpose=PURPOSE,
            resource=RESOURCE,
            categories=categories,
        )
    await session.flush()
    logger.info("guardian %s linked to account %s", guardian_account_id, ward.id)
    return GuardianLinkResult(
        ward_account_id=ward.id,
        guardian_account_id=guardian_account_id,
        guardian_consent_at=_aware(ward.guardian_consent_at),
    )


# -- helpers --------------------------------------------------------------------------------


async def _active_account(
    session: AsyncSession, account_id: str, *, lock: bool = False, missing: NotFound | None = None
) -> Account:
    statement = select(Account).where(col(Account.id) == account_id)
    if lock:
        statement = statement.with_for_update()
    account = (await session.execute(statement)).scalar_one_or_none()
    if account is None or account.status != "active":
        raise missing or NotFound("account not found")
    return account


async def _verification_by_index(session: AsyncSession, index: str) -> RealNameVerification | None:
    statement = select(RealNameVerification).where(
        col(RealNameVerification.id_number_index) == index
    )
    return (await session.execute(statement)).scalar_one_or_none()


def _higher(current: str, new: Level) -> Level:
    """The higher of two levels (a real_name check never lowers a real_person account)."""
    return "real_person" if "real_person" in (current, new) else new


def _same_name(stored: str, given: str) -> bool:
    def norm(value: str) -> bytes:
        return unicodedata.normalize("NFKC", value).strip().encode("utf-8")

    return hmac.compare_digest(norm(stored), norm(given))


def _aware(moment: datetime) -> datetime:
    """SQLite gives back naive UTC timestamps; PostgreSQL aware ones."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _result(
    catalogue: Catalogue,
    *,
    level: Level,
    verified_at: datetime,
    minor: bool,
    real_name: str,
    id_number: str,
) -> VerificationResult:
    def masked(field: str, value: str) -> str | None:
        rule = catalogue.masking_for(RESOURCE, field, PURPOSE)
        return None if rule is None else apply_mask(value, rule)

    return VerificationResult(
        level=level,
        verified_at=verified_at,
        minor=minor,
        real_name=masked("real_name", real_name),
        id_number=masked("id_number", id_number),
    )
