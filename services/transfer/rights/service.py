"""Rights requests at transfer (OB-R-1, OB-4-5). No HTTP here.

Export (:func:`export`): every transfer about the subject: to whom (the recipient's name,
contact, region, purpose and how to exercise rights with it), which categories, under which
purpose, when and with what outcome. Transfer holds no personal value in clear (the
subject is a pseudonymous id; packages are encrypted for the recipient and dropped once
delivered), so nothing is decrypted; the read is still a processing record.

Answers (:func:`handle`), in the same transaction as the changes:

- ``access``: ``done`` (the export is fetched over HTTP);
- ``correction``: ``refused`` without reading it (:data:`NOT_CORRECTED`): transfer holds no
  personal value in clear to correct; the order is corrected at orders and what a recipient
  holds with that recipient (``how_to_exercise_rights``);
- ``withdraw_all``: every transfer of the subject not delivered yet (awaiting consent or
  ready) is refused with reason ``consent_withdrawn`` and its package dropped
  (``transfers.service.refuse_pending``); ``done``;
- ``deletion`` (:func:`erase`): the same with reason ``erasure_requested``; the transfer
  records themselves (delivered or refused) are records of provision abroad, kept under the
  catalogue's ``transfer_record`` retention (PIPL art. 55, 56: three years from the record)
  and reported as ``kept`` (category ``user.account.id``, the only personal datum they
  hold) with ``until``; ``partial`` when a record is kept, else ``done``. What a recipient
  received is erased with that recipient.

``deleted`` names the categories of the packages dropped (encrypted for the recipient).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit import rights
from kit.catalogue import Catalogue
from kit.events import Event
from kit.outbox import EventWriter
from services.transfer.models import Recipient, Transfer
from services.transfer.rights.schemas import (
    RecipientExport,
    TransferExport,
    TransferServiceExport,
)
from services.transfer.transfers.service import refuse_pending

SERVICE: Final = "transfer"
RESOURCE: Final = "transfer.transfer"
TRANSFER_PURPOSE: Final = "cross_border.transfer"
RECORD_RETENTION: Final = "transfer_record"
#: A transfer record names the user by account id only.
RECORD_CATEGORY: Final = "user.account.id"
WITHDRAWN_REASON: Final = "consent_withdrawn"
ERASURE_REASON: Final = "erasure_requested"
NOT_CORRECTED: Final = (
    "transfer holds no personal value in clear to correct (records name the account id "
    "only; packages are encrypted for the recipient): correct the order at orders, and what "
    "a recipient holds with that recipient"
)
OUTCOMES: Final = {
    "awaiting_consent": "waiting for your separate consent",
    "ready": "being delivered",
    "delivered": "delivered",
    "refused": "not provided",
}


async def export(
    session: AsyncSession, *, events: EventWriter, actor: str, subject: str
) -> TransferServiceExport:
    transfers = list(
        await session.scalars(
            select(Transfer)
            .where(col(Transfer.subject) == subject)
            .order_by(col(Transfer.requested_at), col(Transfer.id))
        )
    )
    ids = sorted({t.recipient_id for t in transfers})
    recipients: dict[str, Recipient] = {}
    if ids:
        found = await session.scalars(select(Recipient).where(col(Recipient.id).in_(ids)))
        recipients = {recipient.id: recipient for recipient in found}
    exported: list[TransferExport] = []
    for transfer in transfers:
        recipient = recipients.get(transfer.recipient_id)
        exported.append(
            TransferExport(
                transfer_id=transfer.id,
                order_id=transfer.order_id,
                recipient=RecipientExport(
                    recipient_id=recipient.id,
                    legal_name=recipient.legal_name,
                    contact=recipient.contact,
                    country_region=recipient.country_region,
                    purpose=recipient.purpose,
                    how_to_exercise_rights=recipient.how_to_exercise_rights,
                )
                if recipient is not None
                else None,
                categories=list(transfer.categories),
                purposes=[TRANSFER_PURPOSE],
                status=transfer.status,
                outcome=OUTCOMES.get(transfer.status, transfer.status),
                reason=transfer.reason,
                requested_at=transfer.requested_at,
                delivered_at=transfer.delivered_at,
            )
        )
    if transfers:
        events.processing(
            session,
            subject=subject,
            actor=actor,
            action="read",
            purpose=rights.PURPOSE,
            resource=RESOURCE,
            categories=sorted({c for t in transfers for c in t.categories}),
        )
    return TransferServiceExport(subject=subject, transfers=exported)


@dataclass(frozen=True)
class Erasure:
    """What a deletion did at transfer."""

    refused: int
    packages_dropped: int
    deleted: set[str]
    delivered_kept: int
    refused_kept: int
    kept: list[rights.Kept]


def _stopped(refused: int, dropped: int) -> str:
    return f"{refused} transfer(s) not yet delivered were refused and {dropped} package(s) dropped"


async def erase(
    session: AsyncSession, *, events: EventWriter, catalogue: Catalogue, subject: str
) -> Erasure:
    """Stop what has not left and keep the records (see the module docstring)."""
    stopped = await refuse_pending(session, events=events, reason=ERASURE_REASON, subject=subject)
    records = list(await session.scalars(select(Transfer).where(col(Transfer.subject) == subject)))
    period = catalogue.retention_period(RECORD_RETENTION)
    until: date | None = None
    for record in records:
        made = record.delivered_at or record.updated_at
        ends = period.expires_at(made).date()
        until = ends if until is None else max(until, ends)
    kept = (
        [
            rights.Kept(
                category=RECORD_CATEGORY,
                retention=RECORD_RETENTION,
                legal_basis=period.legal_basis,
                until=until,
            )
        ]
        if records
        else []
    )
    return Erasure(
        refused=len(stopped.transfers),
        packages_dropped=stopped.packages_dropped,
        deleted=stopped.dropped_categories,
        delivered_kept=sum(record.status == "delivered" for record in records),
        refused_kept=sum(record.status != "delivered" for record in records),
        kept=kept,
    )


def _erasure_reason(erasure: Erasure) -> str:
    if not erasure.kept:
        return "transfer held nothing about this subject"
    parts = []
    if erasure.refused:
        parts.append(_stopped(erasure.refused, erasure.packages_dropped))
    parts.append(
        f"the records of {erasure.delivered_kept} delivered and {erasure.refused_kept} "
        "refused transfer(s) are kept as records of provision abroad until their retention "
        "ends; what a recipient received is erased with that recipient"
    )
    return "; ".join(parts)


async def handle(
    session: AsyncSession, *, events: EventWriter, catalogue: Catalogue, event: Event
) -> Event | None:
    """Answer a ``rights.requested`` event that names transfer; None for other events."""
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
        stopped = await refuse_pending(
            session, events=events, reason=WITHDRAWN_REASON, subject=request.subject
        )
        return rights.answer(
            session,
            events=events,
            service=SERVICE,
            request=request,
            outcome="done",
            deleted=stopped.dropped_categories,
            reason=_stopped(len(stopped.transfers), stopped.packages_dropped)
            + "; nothing leaves without the separate consent",
        )
    if request.kind == "deletion":
        erasure = await erase(session, events=events, catalogue=catalogue, subject=request.subject)
        return rights.answer(
            session,
            events=events,
            service=SERVICE,
            request=request,
            outcome="partial" if erasure.kept else "done",
            deleted=erasure.deleted,
            kept=erasure.kept,
            reason=_erasure_reason(erasure),
        )
    return rights.answer_unsupported(session, events=events, service=SERVICE, request=request)
