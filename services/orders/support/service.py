"""Customer service and dispute resolution (policy 2E; OB-2E-1, OB-2E-2). No HTTP here.

A case is opened by the user (about a topic, maybe one of their orders) or by an agent for
a user. Its communication record (messages both ways, attachments by metadata only) is
kept with the case, each text as ciphertext under the user's key, under the catalogue's
``support_record`` retention (the sweep deletes the case with its record when it ends; a
deletion of the account deletes every case at once).

Membership first: an agent sees a case's messages and its order, and may answer or close
it, only after verifying that the person they deal with holds the account: the number of
one of the account's orders and the last four digits of that order's consignee phone
(:func:`verify`). Four digits can be guessed, so failed checks are throttled
(``kit.throttle``): :data:`CHECKS_PER_CASE` per case and :data:`CHECKS_PER_AGENT` per agent
within :data:`CHECK_WINDOW_S`, then 429 until the window ends, even for the right answer.
The check is recorded on the case (when, by whom, how); until then the
agent's view has ``messages: null`` and the order is refused (403
``membership-unverified``). The order is shown as ``customer_service`` may see it: the
fields the catalogue gives that purpose, masked as it says.

Reads by the user and by agents leave through the gateway, which records each one in the
user's ledger once (the agent routes name ``account_id`` as owner); writes are recorded
here, and published as ``support.*`` events with ids and counts only.

Training (OB-2E-2): :func:`training_export` makes a batch of every case's record,
de-identified (:mod:`.deidentify`): no subject id, no case id or order number, placeholders
for personal values; with a manifest (counts, detectors, the SHA-256 of the records).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, Literal

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit import contracts
from kit.catalogue import Catalogue
from kit.crypto import FieldCipher, SubjectKeyShredded
from kit.errors import DomainError, NotFound
from kit.ids import new_id
from kit.models import utcnow
from kit.outbox import EventWriter
from kit.throttle import guard
from services.orders.models import (
    AttemptThrottle,
    Order,
    SupportCase,
    SupportMessage,
    TrainingExport,
)
from services.orders.orders import service as orders
from services.orders.orders.service import PERSONAL_FIELDS
from services.orders.orders.service import RESOURCE as ORDER
from services.orders.support import deidentify
from services.orders.support.schemas import (
    CaseCreate,
    CaseOrderView,
    CaseSummary,
    CaseView,
    MembershipCheck,
    MessageCreate,
    MessageView,
    TrainingExportView,
)

RESOURCE: Final = "orders.support"
FIELD: Final = "messages"
PURPOSE: Final = "customer_service"
CONTEXT: Final = f"{RESOURCE}.{FIELD}"
EVENT_PREFIX: Final = "com.signature.orders.support"
VERIFICATION_METHOD: Final = "order_and_phone_last4"
TRAINING_ACTOR: Final = "orders.support.training"
RETENTION_ACTOR: Final = "orders.retention"
MAX_CASES: Final = 100
MAX_MESSAGES: Final = 200
CHECKS_PER_CASE: Final = 5
CHECKS_PER_AGENT: Final = 20
CHECK_WINDOW_S: Final = 3600

Author = Literal["user", "agent"]


class MembershipUnverified(DomainError):
    status, code, title = 403, "membership-unverified", "Membership not verified"


class MembershipCheckFailed(DomainError):
    status, code, title = 422, "membership-check-failed", "Membership check failed"
    keep_changes = True  # the failure is counted (and published) although the check fails


class CaseClosed(DomainError):
    status, code, title = 409, "case-closed", "Case closed"


def check_catalogue(catalogue: Catalogue) -> None:
    catalogue.field_policy(RESOURCE, FIELD)
    catalogue.retention_for(RESOURCE, FIELD)


def _categories(catalogue: Catalogue) -> list[str]:
    return [catalogue.field_policy(RESOURCE, FIELD).category]


def _record(
    session: AsyncSession,
    *,
    events: EventWriter,
    catalogue: Catalogue,
    case: SupportCase,
    actor: str,
    action: Literal["read", "write", "delete"],
    purpose: str = PURPOSE,
) -> None:
    events.processing(
        session,
        subject=case.account_id,
        actor=actor,
        action=action,
        purpose=purpose,
        resource=RESOURCE,
        categories=_categories(catalogue),
    )


def _event(
    session: AsyncSession,
    *,
    events: EventWriter,
    catalogue: Catalogue,
    case: SupportCase,
    action: str,
    **data: Any,
) -> None:
    events.add(
        session,
        type=f"{EVENT_PREFIX}.{action}.v1",
        subject=case.account_id,
        purpose=PURPOSE,
        data=contracts.SupportCaseEvent(case_id=case.id, **data),
        categories=_categories(catalogue),
    )


async def _message(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    case: SupportCase,
    author: Author,
    author_id: str,
    body: MessageCreate,
) -> SupportMessage:
    message = SupportMessage(
        case_id=case.id,
        author=author,
        author_id=author_id,
        text_encrypted=await cipher.encrypt(
            session, subject=case.account_id, value=body.text, context=CONTEXT
        ),
        attachments=[attachment.model_dump() for attachment in body.attachments],
        sent_at=utcnow(),
    )
    session.add(message)
    await session.flush()
    return message


async def _messages(
    session: AsyncSession, cipher: FieldCipher, case: SupportCase
) -> list[tuple[SupportMessage, str]]:
    found = await session.scalars(
        select(SupportMessage)
        .where(col(SupportMessage.case_id) == case.id)
        .order_by(col(SupportMessage.id))
        .limit(MAX_MESSAGES)
    )
    shown: list[tuple[SupportMessage, str]] = []
    for message in found:
        try:
            text = await cipher.decrypt(
                session, subject=case.account_id, token=message.text_encrypted, context=CONTEXT
            )
        except SubjectKeyShredded:
            continue
        shown.append((message, text))
    return shown


async def _view(
    session: AsyncSession, cipher: FieldCipher, case: SupportCase, *, masked: bool
) -> CaseView:
    messages = await _messages(session, cipher, case)
    return CaseView(
        case_id=case.id,
        account_id=case.account_id,
        topic=case.topic,
        order_id=case.order_id,
        opened_by="agent" if case.opened_by == "agent" else "user",
        status="closed" if case.status == "closed" else "open",
        verified=case.verified_at is not None,
        created_at=case.created_at,
        closed_at=case.closed_at,
        message_count=len(messages),
        messages=None
        if masked
        else [
            MessageView(
                author="agent" if message.author == "agent" else "user",
                text=text,
                attachments=message.attachments,
                sent_at=message.sent_at,
            )
            for message, text in messages
        ],
    )


async def _own_order(session: AsyncSession, account_id: str, order_id: str | None) -> None:
    if order_id is None:
        return
    order = await session.get(Order, order_id)
    if order is None or order.buyer_id != account_id:
        raise NotFound("no such order", extra={"errors": [_error("body.order_id")]})


def _error(field: str) -> dict[str, str]:
    return {"field": field, "message": "no such order of this account", "type": "unknown_order"}


# --------------------------------------------------------------------------- both sides


async def open_case(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    catalogue: Catalogue,
    account_id: str,
    opened_by: Author,
    opened_by_id: str,
    body: CaseCreate,
) -> CaseView:
    """A new case for ``account_id`` with its first message. A case an agent opens still
    needs the membership check before the agent sees or adds anything more."""
    await _own_order(session, account_id, body.order_id)
    case = SupportCase(
        id=new_id("cas"),
        account_id=account_id,
        topic=body.topic,
        order_id=body.order_id,
        opened_by=opened_by,
        opened_by_id=opened_by_id,
        created_at=utcnow(),
    )
    session.add(case)
    await session.flush()
    await _message(
        session, cipher=cipher, case=case, author=opened_by, author_id=opened_by_id, body=body
    )
    _event(
        session, events=events, catalogue=catalogue, case=case, action="case_opened",
        topic=case.topic, opened_by=opened_by,
    )  # fmt: skip
    _record(
        session, events=events, catalogue=catalogue, case=case, actor=opened_by_id, action="write"
    )
    return await _view(session, cipher, case, masked=opened_by == "agent")


async def _owned(session: AsyncSession, account_id: str, case_id: str) -> SupportCase:
    case = await session.get(SupportCase, case_id)
    if case is None or case.account_id != account_id:
        raise NotFound("no such case")
    return case


async def own_cases(
    session: AsyncSession, *, cipher: FieldCipher, account_id: str
) -> list[CaseView]:
    """The user's cases, newest first, with their messages."""
    found = await session.scalars(
        select(SupportCase)
        .where(col(SupportCase.account_id) == account_id)
        .order_by(col(SupportCase.created_at).desc(), col(SupportCase.id).desc())
        .limit(MAX_CASES)
    )
    return [await _view(session, cipher, case, masked=False) for case in found]


async def user_message(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    catalogue: Catalogue,
    account_id: str,
    case_id: str,
    body: MessageCreate,
) -> CaseView:
    case = await _owned(session, account_id, case_id)
    return await _add(
        session, cipher=cipher, events=events, catalogue=catalogue, case=case,
        author="user", author_id=account_id, body=body,
    )  # fmt: skip


async def _add(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    catalogue: Catalogue,
    case: SupportCase,
    author: Author,
    author_id: str,
    body: MessageCreate,
) -> CaseView:
    if case.status == "closed":
        raise CaseClosed("the case is closed; open a new one")
    await _message(session, cipher=cipher, case=case, author=author, author_id=author_id, body=body)
    _event(
        session, events=events, catalogue=catalogue, case=case, action="message_added",
        author=author, attachments=len(body.attachments),
    )  # fmt: skip
    _record(session, events=events, catalogue=catalogue, case=case, actor=author_id, action="write")
    return await _view(session, cipher, case, masked=False)


# --------------------------------------------------------------------------- agents


async def _case(session: AsyncSession, case_id: str) -> SupportCase:
    case = await session.get(SupportCase, case_id)
    if case is None:
        raise NotFound("no such case")
    return case


def _verified(case: SupportCase) -> None:
    if case.verified_at is None:
        raise MembershipUnverified(
            "verify the user's membership first (POST .../verification): until then the "
            "case's personal data stays masked"
        )


async def list_cases(
    session: AsyncSession, *, status: str | None, limit: int, offset: int
) -> list[CaseSummary]:
    query = select(SupportCase)
    if status is not None:
        query = query.where(col(SupportCase.status) == status)
    found = await session.scalars(
        query.order_by(col(SupportCase.created_at).desc(), col(SupportCase.id).desc())
        .limit(limit)
        .offset(offset)
    )
    return [
        CaseSummary(
            case_id=case.id,
            topic=case.topic,
            opened_by="agent" if case.opened_by == "agent" else "user",
            status="closed" if case.status == "closed" else "open",
            verified=case.verified_at is not None,
            created_at=case.created_at,
        )
        for case in found
    ]


async def agent_case(session: AsyncSession, *, cipher: FieldCipher, case_id: str) -> CaseView:
    """The case as an agent sees it: messages only once membership is verified."""
    case = await _case(session, case_id)
    return await _view(session, cipher, case, masked=case.verified_at is None)


async def verify(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    catalogue: Catalogue,
    agent_id: str,
    case_id: str,
    check: MembershipCheck,
) -> CaseView:
    """Check what the user told the agent against the account's orders; record the check
    on the case. A wrong answer says nothing about which part was wrong."""
    case = await _case(session, case_id)
    throttles = [
        await guard(
            session,
            AttemptThrottle,
            [key],
            max_failures=most,
            window_s=CHECK_WINDOW_S,
            what="membership checks",
        )
        for key, most in (
            (f"membership:{case_id}", CHECKS_PER_CASE),
            (f"membership-agent:{agent_id}", CHECKS_PER_AGENT),
        )
    ]
    order = await session.get(Order, check.order_id)
    phone = ""
    if order is not None and order.buyer_id == case.account_id:
        values = await orders.decrypt_fields(session, cipher, order, ["consignee_phone"])
        phone = str(values.get("consignee_phone", ""))
    if not phone or not phone.endswith(check.phone_last4):
        for throttle in throttles:
            throttle.fail()
        _event(session, events=events, catalogue=catalogue, case=case, action="verification_failed")
        raise MembershipCheckFailed("the order number and phone digits do not match the account")
    if case.verified_at is None:
        case.verified_at, case.verified_by = utcnow(), agent_id
        case.verification_method = VERIFICATION_METHOD
    _event(session, events=events, catalogue=catalogue, case=case, action="membership_verified")
    # The check read the order's consignee phone (the answer's messages are the gateway's
    # to record, as it leaves).
    events.processing(
        session,
        subject=case.account_id,
        actor=agent_id,
        action="read",
        purpose=PURPOSE,
        resource=ORDER,
        categories=[catalogue.field_policy(ORDER, "consignee_phone").category],
    )
    return await _view(session, cipher, case, masked=False)


async def case_order(
    session: AsyncSession, *, cipher: FieldCipher, catalogue: Catalogue, case_id: str
) -> CaseOrderView:
    """The case's order as ``customer_service`` sees it, once membership is verified."""
    case = await _case(session, case_id)
    _verified(case)
    order = await session.get(Order, case.order_id) if case.order_id else None
    if order is None or order.buyer_id != case.account_id:
        raise NotFound("the case names no order")
    [view] = await orders.purpose_views(
        session, cipher=cipher, catalogue=catalogue, orders=[order], purpose=PURPOSE
    )
    return CaseOrderView(account_id=case.account_id, case_id=case.id, order=view)


async def agent_message(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    catalogue: Catalogue,
    agent_id: str,
    case_id: str,
    body: MessageCreate,
) -> CaseView:
    case = await _case(session, case_id)
    _verified(case)
    return await _add(
        session, cipher=cipher, events=events, catalogue=catalogue, case=case,
        author="agent", author_id=agent_id, body=body,
    )  # fmt: skip


async def close(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    catalogue: Catalogue,
    agent_id: str,
    case_id: str,
) -> CaseView:
    case = await _case(session, case_id)
    _verified(case)
    if case.status != "closed":
        case.status, case.closed_at = "closed", utcnow()
        _event(session, events=events, catalogue=catalogue, case=case, action="case_closed")
    return await _view(session, cipher, case, masked=False)


# --------------------------------------------------------------------------- lifecycle


async def _drop(session: AsyncSession, case_ids: Sequence[str]) -> None:
    if case_ids:
        await session.execute(
            delete(SupportMessage).where(col(SupportMessage.case_id).in_(case_ids))
        )
        await session.execute(delete(SupportCase).where(col(SupportCase.id).in_(case_ids)))


async def delete_subject(session: AsyncSession, *, account_id: str) -> int:
    """With the account: every case and its record; how many cases there were."""
    ids = list(
        await session.scalars(
            select(col(SupportCase.id)).where(col(SupportCase.account_id) == account_id)
        )
    )
    await _drop(session, ids)
    return len(ids)


async def expire(
    session: AsyncSession, *, events: EventWriter, catalogue: Catalogue, now: datetime
) -> int:
    """Delete the cases whose ``support_record`` period ended, with their record."""
    period = catalogue.retention_for(RESOURCE, FIELD)
    oldest = list(
        await session.scalars(select(SupportCase).order_by(col(SupportCase.created_at)).limit(500))
    )
    due = [case for case in oldest if period.expires_at(case.created_at) <= now]
    for case in due:
        _record(
            session, events=events, catalogue=catalogue, case=case, actor=RETENTION_ACTOR,
            action="delete", purpose="legal.retention",
        )  # fmt: skip
    await _drop(session, [case.id for case in due])
    return len(due)


async def export_cases(
    session: AsyncSession, *, cipher: FieldCipher, account_id: str
) -> list[CaseView]:
    """Every case of the account with its record (the access export)."""
    return await own_cases(session, cipher=cipher, account_id=account_id)


# --------------------------------------------------------------------------- training


async def _known(
    session: AsyncSession, cipher: FieldCipher, catalogue: Catalogue, account_id: str
) -> deidentify.Known:
    pairs: list[tuple[str, str]] = [("REF", account_id)]
    found = await session.scalars(select(Order).where(col(Order.buyer_id) == account_id))
    for order in found:
        pairs.append(("REF", order.id))
        try:
            values = await orders.decrypt_fields(session, cipher, order, PERSONAL_FIELDS)
        except SubjectKeyShredded:
            continue
        for name, value in values.items():
            kind = deidentify.KINDS.get(catalogue.field_policy(ORDER, name).category)
            if kind is None:
                continue
            for item in value if isinstance(value, list) else [value]:
                pairs.append((kind, str(item)))
    return deidentify.Known.of(pairs)


async def training_export(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    catalogue: Catalogue,
    staff_id: str,
) -> TrainingExportView:
    """A de-identified batch of every case's communication record, with its manifest."""
    placeholders = deidentify.Placeholders()
    records: list[dict[str, Any]] = []
    cases = list(await session.scalars(select(SupportCase).order_by(col(SupportCase.created_at))))
    known: dict[str, deidentify.Known] = {}
    for number, case in enumerate(cases, start=1):
        if case.account_id not in known:
            known[case.account_id] = await _known(session, cipher, catalogue, case.account_id)
        messages = await _messages(session, cipher, case)
        records.append(
            {
                "case": f"case_{number}",
                "topic": case.topic,
                "messages": [
                    {
                        "author": message.author,
                        "text": deidentify.deidentify(text, known[case.account_id], placeholders),
                        "attachments": len(message.attachments),
                    }
                    for message, text in messages
                ],
            }
        )
        _record(
            session, events=events, catalogue=catalogue, case=case, actor=TRAINING_ACTOR,
            action="read",
        )  # fmt: skip
    body = "\n".join(json.dumps(r, ensure_ascii=False, sort_keys=True) for r in records)
    export = TrainingExport(
        id=new_id("trx"),
        created_by=staff_id,
        created_at=utcnow(),
        records=records,
        manifest={
            "format": "jsonl",
            "record_count": len(records),
            "message_count": sum(len(r["messages"]) for r in records),
            "records_sha256": hashlib.sha256(body.encode()).hexdigest(),
            "placeholders": dict(sorted(placeholders.counts.items())),
            "detectors": [kind for kind, _ in deidentify.PATTERNS],
            "catalogue_categories": sorted(deidentify.KINDS),
        },
    )
    export.manifest["export_id"] = export.id
    export.manifest["created_at"] = export.created_at.isoformat()
    session.add(export)
    return TrainingExportView(export_id=export.id, manifest=export.manifest, records=records)


async def get_training_export(session: AsyncSession, *, export_id: str) -> TrainingExportView:
    export = await session.get(TrainingExport, export_id)
    if export is None:
        raise NotFound("no such export")
    return TrainingExportView(export_id=export.id, manifest=export.manifest, records=export.records)
