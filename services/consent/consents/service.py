"""Consents: grant and withdraw per purpose, receipts, current state, guardians. No HTTP.

- :func:`grantable_purposes`: the catalogue's ``additional`` purposes (location,
  personalised recommendations, image/voice search, price-drop reminders) and ``separate``
  ones (face verification, cross-border transfer). ``basic`` and ``legal`` purposes are
  not consents: agreeing to the policy covers the first, the law the second (OB-0-1).
- :func:`change_own_consent` / :func:`change_ward_consent` -> :func:`change_consent`:
  one grant or withdrawal (withdrawing is the same call with ``granted: false``). It locks
  the subject, appends a :class:`ConsentRecord` (the receipt), replaces the current value,
  and adds to the outbox, in the caller's transaction: the subject's whole current state
  as :data:`~kit.consent_state.CONSENT_STATE_EVENT` to the compacted state topic keyed by
  the subject, and :data:`CHANGED_EVENT` to the service's events topic. Both carry ids,
  purposes, booleans and times only (no minor status either: that is sensitive).
- Cross-border consent is per overseas recipient and refused without the recipient's full
  disclosure in ``shown.recipient`` (OB-4-5, PIPL art. 39).
- A minor under 14 without the guardian's consent may not grant anything; the guardian
  grants for them (OB-2A-4, PIPL art. 31). Withdrawing is always allowed: it only ever
  reduces processing. Guardianships come from identity's ``guardian.linked`` events
  (:func:`record_guardianship`), and whether identity's latest verification found a minor
  from its ``verification.completed`` events (:func:`record_verified_age`), both run by
  the consumer in ``consumers.py``. The token's flags say what identity knew when it was
  issued: a token that may predate the subject's latest verification (it expires within
  the longest token lifetime of it) is taken as that verification says, and a recorded
  guardianship counts as the guardian's consent, so a child's token from before the
  verification that found them under 14 grants nothing.
- :func:`current_state`, :func:`list_receipts`, :func:`get_receipt`: the subject's view.

Withdrawing an additional purpose changes only that purpose's value; basic functions never
appear in consent state at all (OB-0-2).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit import contracts
from kit.catalogue import Catalogue
from kit.clock import china_today
from kit.consent_state import (
    CONSENT_STATE_EVENT,
    CONSENTABLE_KINDS,
    CROSS_BORDER_PURPOSE,
    ConsentEntry,
    SubjectConsent,
    consentable_purposes,
    state_key,
)
from kit.errors import DomainError, Forbidden, NotFound
from kit.events import Event, new_event, personal_shape
from kit.ids import new_id
from kit.models import utcnow
from kit.outbox import EventWriter, add_to_outbox
from kit.revocation import MAX_TOKEN_LIFETIME_S
from services.consent.consents.models import (
    ConsentRecord,
    ConsentSubject,
    CurrentConsent,
    Guardianship,
    VerifiedAge,
)
from services.consent.consents.schemas import (
    RECIPIENT_DISCLOSURE,
    ActorRole,
    ConsentChange,
    ConsentPrompt,
    ConsentStateRead,
    ConsentValue,
    GrantablePurpose,
    Receipt,
    canonical_json,
)
from services.consent.policies import service as policies

__all__ = [
    "CHANGED_EVENT",
    "EVENT_PURPOSE",
    "GUARDIAN_LINKED_EVENT",
    "DisclosureIncomplete",
    "GuardianConsentRequired",
    "NotAConsentPurpose",
    "NotGuardian",
    "NothingShown",
    "UnknownPurpose",
    "change_consent",
    "change_own_consent",
    "change_ward_consent",
    "check_guardian",
    "current_policy_version",
    "current_state",
    "get_receipt",
    "grantable_purposes",
    "list_receipts",
    "new_receipt_id",
    "record_guardianship",
    "record_identity_fact",
    "record_verified_age",
    "state_event",
    "subject_consent",
    "ward_receipts",
    "ward_state",
]

logger = logging.getLogger("services.consent.consents")

CHANGED_EVENT: Final = "com.signature.consent.consent.changed.v1"
#: Identity's event naming a minor's guardian (services.identity.verification.service).
GUARDIAN_LINKED_EVENT: Final = "com.signature.identity.guardian.linked.v1"
#: Identity's event closing a real-name verification (``data.minor`` when it matched).
VERIFICATION_COMPLETED_EVENT: Final = "com.signature.identity.verification.completed.v1"
#: Identity's events this domain records (the guardianships consumer wants only these).
IDENTITY_FACTS: Final = frozenset({GUARDIAN_LINKED_EVENT, VERIFICATION_COMPLETED_EVENT})
#: The purpose both consent events are processed under: keeping the user's account.
EVENT_PURPOSE: Final = "account"

_RECIPIENT_ID_MAX = 64


#: Receipt ids are letters only: a hex id can hold a digit run that looks like a phone or
#: ID number, which the event guard (rightly) refuses.
def new_receipt_id() -> str:
    return new_id("rcpt")


# --------------------------------------------------------------------------- errors


class UnknownPurpose(DomainError):
    status, code, title = 422, "unknown-purpose", "Unknown purpose"


class NotAConsentPurpose(DomainError):
    """A basic or legal purpose: covered by agreeing to the policy, or by law."""

    status, code, title = 422, "not-a-consent", "Not a consent"


class NothingShown(DomainError):
    status, code, title = 422, "nothing-shown", "Nothing was shown"


class DisclosureIncomplete(DomainError):
    """A cross-border grant without the overseas recipient's full disclosure (OB-4-5)."""

    status, code, title = 422, "disclosure-incomplete", "Recipient disclosure incomplete"


class GuardianConsentRequired(Forbidden):
    """A minor under 14 cannot grant consents; the guardian grants for them (OB-2A-4)."""

    code, title = "guardian-consent-required", "Guardian consent required"


class NotGuardian(Forbidden):
    code, title = "not-guardian", "Not the guardian"


# --------------------------------------------------------------------------- purposes


def grantable_purposes(catalogue: Catalogue) -> list[GrantablePurpose]:
    """The purposes a user decides on, in catalogue order."""
    return [
        GrantablePurpose(
            id=purpose.id,
            kind="separate" if purpose.kind == "separate" else "additional",
            description=purpose.description,
            description_zh=purpose.description_zh,
            policy_section=purpose.policy_section,
            per_recipient=purpose.id == CROSS_BORDER_PURPOSE,
            required_disclosure=(
                [f"shown.recipient.{name}" for name in RECIPIENT_DISCLOSURE]
                if purpose.id == CROSS_BORDER_PURPOSE
                else []
            ),
        )
        for purpose in catalogue.purposes
        if purpose.kind in CONSENTABLE_KINDS
    ]


def purpose_fingerprint(catalogue: Catalogue, purpose_id: str) -> str:
    """SHA-256 of what a user decides on for ``purpose_id`` as the catalogue states it:
    its description and kind (the purpose), and every field it may see with its data
    category and masking rule (the data types and the method). A refusal is asked again
    only once this changed (OB-L-13)."""
    purpose = catalogue.purpose(purpose_id)
    fields = sorted(
        [resource, field, catalogue.field_policy(resource, field).category, rule.id]
        for resource in catalogue.resources
        for field, rule in catalogue.visible_fields(resource, purpose_id).items()
    )
    document = {
        "purpose": purpose.id,
        "kind": purpose.kind,
        "description": purpose.description,
        "fields": fields,
    }
    return hashlib.sha256(canonical_json(document)).hexdigest()


def _check_purpose(catalogue: Catalogue, purpose_id: str) -> None:
    if not catalogue.has_purpose(purpose_id):
        raise UnknownPurpose(
            f"'{purpose_id}' is not a purpose in the catalogue", extra={"purpose": purpose_id}
        )
    kind = catalogue.purpose(purpose_id).kind
    if kind not in CONSENTABLE_KINDS:
        covered = "agreeing to the privacy policy" if kind == "basic" else "law"
        raise NotAConsentPurpose(
            f"'{purpose_id}' is a {kind} purpose, covered by {covered}: it is not granted "
            "or withdrawn as a consent",
            extra={"purpose": purpose_id, "kind": kind},
        )


def _nonempty(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, list):
        return bool(value) and all(_nonempty(item) for item in value)
    return False


def _recipient(change: ConsentChange) -> tuple[str, str | None]:
    """The cross-border recipient's id and name; for a grant, the whole disclosure must be
    there, else :class:`DisclosureIncomplete` naming every missing field."""
    recipient = change.shown.get("recipient")
    fields: dict[str, Any] = recipient if isinstance(recipient, dict) else {}
    needed = RECIPIENT_DISCLOSURE if change.granted else {"id": RECIPIENT_DISCLOSURE["id"]}
    missing = [f"shown.recipient.{name}" for name in needed if not _nonempty(fields.get(name))]
    if missing:
        action = "granting" if change.granted else "withdrawing"
        raise DisclosureIncomplete(
            f"{action} cross-border consent needs the overseas recipient's disclosure; "
            f"missing or empty: {', '.join(missing)}",
            extra={"purpose": CROSS_BORDER_PURPOSE, "missing": missing},
        )
    recipient_id = str(fields["id"]).strip()
    if len(recipient_id) > _RECIPIENT_ID_MAX or personal_shape(recipient_id):
        raise DisclosureIncomplete(
            "shown.recipient.id must be the recipient's id (at most "
            f"{_RECIPIENT_ID_MAX} characters, no contact or ID data)",
            extra={"purpose": CROSS_BORDER_PURPOSE, "missing": ["shown.recipient.id"]},
        )
    name = fields.get("name")
    return recipient_id, (str(name).strip()[:200] if _nonempty(name) else None)


# --------------------------------------------------------------------------- changes


async def change_own_consent(
    session: AsyncSession,
    *,
    events: EventWriter,
    catalogue: Catalogue,
    state_topic: str,
    subject: str,
    channel: str,
    minor: bool,
    guardian_consent: bool,
    change: ConsentChange,
    token_expires_at: int | None = None,
) -> Receipt:
    """The subject decides for themselves. A minor without the guardian's consent may
    withdraw but not grant (:class:`GuardianConsentRequired`). ``minor`` and
    ``guardian_consent`` are the token's flags, issued before ``token_expires_at`` (epoch
    seconds; None: the flags are current); what identity told since counts too."""
    _check_purpose(catalogue, change.purpose)
    if change.granted:
        minor, guardian_consent = await _minor_now(
            session,
            subject=subject,
            minor=minor,
            guardian_consent=guardian_consent,
            token_expires_at=token_expires_at,
        )
    if change.granted and minor and not guardian_consent:
        raise GuardianConsentRequired(
            "a user under 14 cannot grant consents; their guardian grants them at "
            f"/wards/{subject}/consents",
            extra={"purpose": change.purpose},
        )
    return await change_consent(
        session,
        events=events,
        catalogue=catalogue,
        state_topic=state_topic,
        subject=subject,
        actor=subject,
        actor_role="subject",
        channel=channel,
        change=change,
    )


async def _minor_now(
    session: AsyncSession,
    *,
    subject: str,
    minor: bool,
    guardian_consent: bool,
    token_expires_at: int | None,
) -> tuple[bool, bool]:
    """Whether ``subject`` is a minor and has their guardian's consent, now: a token that
    may have been issued before identity's latest verification of the subject (it expires
    no later than the longest token lifetime after it) is taken as that verification says;
    a recorded guardianship is the guardian's consent."""
    age = await session.get(VerifiedAge, subject)
    if age is not None and token_expires_at is not None:
        newest_stale = age.verified_at.timestamp() + MAX_TOKEN_LIFETIME_S
        if token_expires_at <= newest_stale:
            minor = age.minor
    if minor and not guardian_consent:
        guardian_consent = await session.get(Guardianship, subject) is not None
    return minor, guardian_consent


async def change_ward_consent(
    session: AsyncSession,
    *,
    events: EventWriter,
    catalogue: Catalogue,
    state_topic: str,
    guardian: str,
    ward: str,
    channel: str,
    change: ConsentChange,
) -> Receipt:
    """The guardian decides for their ward (:class:`NotGuardian` if they are not)."""
    await check_guardian(session, guardian=guardian, ward=ward)
    return await change_consent(
        session,
        events=events,
        catalogue=catalogue,
        state_topic=state_topic,
        subject=ward,
        actor=guardian,
        actor_role="guardian",
        channel=channel,
        change=change,
    )


async def change_consent(
    session: AsyncSession,
    *,
    events: EventWriter,
    catalogue: Catalogue,
    state_topic: str,
    subject: str,
    actor: str,
    actor_role: ActorRole,
    channel: str,
    change: ConsentChange,
) -> Receipt:
    """Record one grant or withdrawal and publish the subject's new state, all in the
    caller's transaction. Every call is recorded, a repeated decision too (a re-grant
    under a new policy version is evidence)."""
    _check_purpose(catalogue, change.purpose)
    if change.granted and not change.shown:
        raise NothingShown(
            "a grant must record what the user was shown (shown is empty)",
            extra={"purpose": change.purpose},
        )
    recipient_id, recipient_name = (
        _recipient(change) if change.purpose == CROSS_BORDER_PURPOSE else (None, None)
    )
    key = state_key(change.purpose, recipient_id)
    holder = await _lock_subject(session, subject)
    holder.version += 1
    now = utcnow()
    holder.updated_at = now
    record = ConsentRecord(
        id=new_receipt_id(),
        subject=subject,
        purpose=change.purpose,
        recipient_id=recipient_id,
        recipient_name=recipient_name,
        granted=change.granted,
        policy_version=await current_policy_version(session),
        shown=change.shown,
        shown_sha256=hashlib.sha256(canonical_json(change.shown)).hexdigest(),
        channel=channel,
        actor=actor,
        actor_role=actor_role,
        state_version=holder.version,
        recorded_at=now,
        purpose_fingerprint=purpose_fingerprint(catalogue, change.purpose),
    )
    session.add(record)
    current = await session.get(CurrentConsent, (subject, key))
    if current is None:
        session.add(
            CurrentConsent(
                subject=subject,
                key=key,
                purpose=change.purpose,
                recipient_id=recipient_id,
                recipient_name=recipient_name,
                granted=change.granted,
                receipt_id=record.id,
                changed_at=now,
            )
        )
    else:
        current.granted, current.receipt_id, current.changed_at = change.granted, record.id, now
        current.recipient_name = recipient_name or current.recipient_name
    await session.flush()

    state = await _subject_consent(session, subject, catalogue=catalogue)
    add_to_outbox(session, state_event(events, state), topic=state_topic)
    data = contracts.ConsentChanged(
        purpose=change.purpose,
        granted=change.granted,
        receipt_id=record.id,
        version=holder.version,
        **({"recipient_id": recipient_id} if recipient_id is not None else {}),
    )
    events.add(session, type=CHANGED_EVENT, subject=subject, purpose=EVENT_PURPOSE, data=data)
    logger.info(
        "consent %s %s for %s (receipt %s)",
        key,
        "granted" if change.granted else "withdrawn",
        subject,
        record.id,
    )
    return _receipt(record)


def state_event(events: EventWriter, state: SubjectConsent) -> Event:
    """The state event for the compacted topic: the subject's whole current state."""
    return new_event(
        source=events.source,
        type=CONSENT_STATE_EVENT,
        subject=state.subject,
        purpose=EVENT_PURPOSE,
        data=contracts.ConsentState.model_validate(state.to_data()),
        personal_fields=events.personal_fields,
    )


async def _lock_subject(session: AsyncSession, subject: str) -> ConsentSubject:
    """The subject's row, created if missing and locked until the transaction ends, so
    one subject's changes (and the order of their state events) are serialised. SQLite
    serialises writers anyway (``BEGIN IMMEDIATE``)."""
    dialect = session.get_bind().dialect.name
    values = {"subject": subject, "version": 0, "updated_at": utcnow()}
    if dialect == "postgresql":
        await session.execute(
            postgresql_insert(ConsentSubject).values(**values).on_conflict_do_nothing()
        )
    elif dialect == "sqlite":
        await session.execute(
            sqlite_insert(ConsentSubject).values(**values).on_conflict_do_nothing()
        )
    elif await session.get(ConsentSubject, subject) is None:
        session.add(ConsentSubject(subject=subject))
        await session.flush()
    holder = await session.scalar(
        select(ConsentSubject)
        .where(col(ConsentSubject.subject) == subject)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert holder is not None
    return holder


async def current_policy_version(session: AsyncSession) -> str | None:
    """The version of the policy in effect today (None while no version is in effect)."""
    try:
        view = await policies.current_version(session, today=china_today())
    except NotFound:
        return None
    return str(view.version)


# --------------------------------------------------------------------------- reading


def _receipt(record: ConsentRecord) -> Receipt:
    return Receipt.model_validate(record, from_attributes=True)


async def _current_rows(session: AsyncSession, subject: str) -> list[CurrentConsent]:
    rows = await session.scalars(
        select(CurrentConsent)
        .where(col(CurrentConsent.subject) == subject)
        .order_by(col(CurrentConsent.key))
    )
    return list(rows)


async def _subject_consent(
    session: AsyncSession, subject: str, *, catalogue: Catalogue
) -> SubjectConsent:
    holder = await session.get(ConsentSubject, subject)
    rows = await _current_rows(session, subject)
    agreement = await policies.agreement_state(session, subject=subject, today=china_today())
    return SubjectConsent(
        subject=subject,
        consentable=consentable_purposes(catalogue),
        version=holder.version if holder else 0,
        entries={
            row.key: ConsentEntry(granted=row.granted, changed_at=row.changed_at) for row in rows
        },
        policy_version_agreed=agreement.policy_version_agreed,
        policy_sequence_agreed=agreement.policy_sequence_agreed,
    )


async def publish_state(
    session: AsyncSession,
    *,
    events: EventWriter,
    catalogue: Catalogue,
    state_topic: str,
    subject: str,
) -> SubjectConsent:
    """Write ``subject``'s whole current state (consents and policy agreement) to the
    compacted state topic, in the caller's transaction."""
    await _lock_subject(session, subject)
    state = await _subject_consent(session, subject, catalogue=catalogue)
    add_to_outbox(session, state_event(events, state), topic=state_topic)
    return state


async def subject_consent(
    session: AsyncSession, *, catalogue: Catalogue, subject: str
) -> SubjectConsent:
    """``subject``'s current state exactly as the state topic carries it."""
    return await _subject_consent(session, subject, catalogue=catalogue)


async def current_state(
    session: AsyncSession, *, catalogue: Catalogue, subject: str
) -> ConsentStateRead:
    """Every grantable purpose with its current value (never decided: not granted), and
    each cross-border recipient the subject decided on."""
    holder = await session.get(ConsentSubject, subject)
    rows = {row.key: row for row in await _current_rows(session, subject)}
    values: list[ConsentValue] = []
    for purpose in grantable_purposes(catalogue):
        if purpose.per_recipient:
            decided = [
                row
                for row in rows.values()
                if row.purpose == purpose.id and row.recipient_id is not None
            ]
            values.extend(_value(row) for row in decided)
            continue
        row = rows.get(purpose.id)
        values.append(
            _value(row) if row else ConsentValue(key=purpose.id, purpose=purpose.id, granted=False)
        )
    return ConsentStateRead(
        subject=subject, version=holder.version if holder else 0, consents=values
    )


def _value(row: CurrentConsent) -> ConsentValue:
    return ConsentValue(
        key=row.key,
        purpose=row.purpose,
        recipient_id=row.recipient_id,
        recipient_name=row.recipient_name,
        granted=row.granted,
        changed_at=row.changed_at,
        receipt_id=row.receipt_id,
    )


async def list_receipts(
    session: AsyncSession, *, subject: str, limit: int | None = 100, offset: int = 0
) -> list[Receipt]:
    """``subject``'s receipts, oldest first, a page of ``limit`` after ``offset`` (None:
    all of them, for the access export)."""
    records = await session.scalars(
        select(ConsentRecord)
        .where(col(ConsentRecord.subject) == subject)
        .order_by(col(ConsentRecord.state_version))
        .limit(limit)
        .offset(offset)
    )
    return [_receipt(record) for record in records]


async def get_receipt(session: AsyncSession, *, subject: str, receipt_id: str) -> Receipt:
    record = await session.get(ConsentRecord, receipt_id)
    if record is None or record.subject != subject:
        raise NotFound("no such receipt")
    return _receipt(record)


# --------------------------------------------------------------------------- guardians


async def check_guardian(session: AsyncSession, *, guardian: str, ward: str) -> None:
    """:class:`NotGuardian` unless ``guardian`` is ``ward``'s recorded guardian."""
    link = await session.get(Guardianship, ward)
    if link is None or link.guardian_account_id != guardian:
        raise NotGuardian("the caller is not the recorded guardian of this account")


async def ward_state(
    session: AsyncSession, *, catalogue: Catalogue, guardian: str, ward: str
) -> ConsentStateRead:
    """The ward's current consents, for their guardian only."""
    await check_guardian(session, guardian=guardian, ward=ward)
    return await current_state(session, catalogue=catalogue, subject=ward)


async def ward_receipts(
    session: AsyncSession, *, guardian: str, ward: str, limit: int = 100, offset: int = 0
) -> list[Receipt]:
    """The ward's receipts, for their guardian only."""
    await check_guardian(session, guardian=guardian, ward=ward)
    return await list_receipts(session, subject=ward, limit=limit, offset=offset)


async def record_identity_fact(session: AsyncSession, event: Event) -> None:
    """Consumer handler for identity's events: a guardianship or a verification's age
    (:data:`IDENTITY_FACTS`); other events are ignored."""
    if event.type == GUARDIAN_LINKED_EVENT:
        await record_guardianship(session, event)
    elif event.type == VERIFICATION_COMPLETED_EVENT:
        await record_verified_age(session, event)


async def record_verified_age(session: AsyncSession, event: Event) -> None:
    """Record whether identity's verification of the event's subject found a minor (a
    match carries ``data.minor``; a mismatch changes nothing). A later verification
    replaces an earlier one; an older event arriving late changes nothing."""
    if event.type != VERIFICATION_COMPLETED_EVENT or event.data.get("result") != "match":
        return
    minor = event.data.get("minor")
    if not isinstance(minor, bool):
        raise ValueError("verification.completed match without a boolean data.minor")
    age = await session.get(VerifiedAge, event.subject)
    if age is None:
        session.add(
            VerifiedAge(
                subject=event.subject, minor=minor, verified_at=event.time, event_id=event.id
            )
        )
    elif age.verified_at <= event.time:
        age.minor, age.verified_at, age.event_id = minor, event.time, event.id


async def record_guardianship(session: AsyncSession, event: Event) -> None:
    """Consumer handler for identity's events: record ``guardian.linked`` (ward = the
    event's subject, guardian = ``data.guardian_account_id``); other events are ignored.
    Identity refuses a second guardian, so the latest link is the one that stands."""
    if event.type != GUARDIAN_LINKED_EVENT:
        return
    guardian = event.data.get("guardian_account_id")
    if not isinstance(guardian, str) or not guardian:
        raise ValueError("guardian.linked event without data.guardian_account_id")
    link = await session.get(Guardianship, event.subject)
    if link is None:
        session.add(
            Guardianship(
                ward_account_id=event.subject,
                guardian_account_id=guardian,
                linked_at=event.time,
                event_id=event.id,
            )
        )
    else:
        link.guardian_account_id, link.linked_at, link.event_id = guardian, event.time, event.id
    logger.info("guardian %s recorded for %s", guardian, event.subject)


async def withdraw_all(
    session: AsyncSession,
    *,
    events: EventWriter,
    catalogue: Catalogue,
    state_topic: str,
    subject: str,
    channel: str = "rights_request",
) -> list[Receipt]:
    """Withdraw every consent ``subject`` has granted (a rights request's "withdraw all"),
    each with its own receipt, exactly as if the user had withdrawn them one by one."""
    receipts: list[Receipt] = []
    for row in await _current_rows(session, subject):
        if not row.granted:
            continue
        shown: dict[str, Any] = {"reason": "withdraw_all rights request"}
        if row.recipient_id is not None:
            shown["recipient"] = {"id": row.recipient_id}
        receipts.append(
            await change_consent(
                session,
                events=events,
                catalogue=catalogue,
                state_topic=state_topic,
                subject=subject,
                actor=subject,
                actor_role="subject",
                channel=channel,
                change=ConsentChange(purpose=row.purpose, granted=False, shown=shown),
            )
        )
    return receipts


async def prompts(
    session: AsyncSession, *, catalogue: Catalogue, subject: str
) -> list[ConsentPrompt]:
    """For each additional purpose, whether an app may ask the user for it now: never
    while granted; after a refusal (the latest decision is no) only when the purpose,
    method or data types changed since (its fingerprint differs); OB-L-13."""
    latest: dict[str, ConsentRecord] = {}
    for record in await session.scalars(
        select(ConsentRecord)
        .where(
            col(ConsentRecord.subject) == subject,
            col(ConsentRecord.recipient_id).is_(None),
        )
        .order_by(col(ConsentRecord.state_version))
    ):
        latest[record.purpose] = record
    found: list[ConsentPrompt] = []
    for purpose in catalogue.additional_purposes():
        decided = latest.get(purpose.id)
        if decided is None:
            found.append(
                ConsentPrompt(
                    purpose=purpose.id,
                    description=purpose.description,
                    ask=True,
                    reason="never_decided",
                )
            )
        elif decided.granted:
            found.append(
                ConsentPrompt(
                    purpose=purpose.id, description=purpose.description, ask=False, reason="granted"
                )
            )
        else:
            changed = decided.purpose_fingerprint != purpose_fingerprint(catalogue, purpose.id)
            found.append(
                ConsentPrompt(
                    purpose=purpose.id,
                    description=purpose.description,
                    ask=changed,
                    reason="changed_since_refusal" if changed else "refused",
                    refused_at=decided.recorded_at,
                )
            )
    return found
