"""Rights requests at transfer (OB-R-1, OB-4-5). No HTTP here.

Export (:func:`export`): every transfer about the subject: to whom (the recipient's name,
contact, region, purpose and how to exercise rights with it), which categories, under which
purpose, when and with what outcome. Transfer holds no personal value in clear (the
subject is a pseudonymous id; packages are encrypted for the recipient and dropped once
delivered), so nothing is decrypted; the read is still a processing record.

Answers (:func:`handle`): ``access`` is ``done`` (the export is fetched over HTTP); the
rest is refused as not supported yet: the transfer records are the evidence of what was
provided abroad and to whom, and what a recipient holds is erased with that recipient
(``how_to_exercise_rights``).
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit import rights
from kit.events import Event
from kit.outbox import EventWriter
from services.transfer.models import Recipient, Transfer
from services.transfer.rights.schemas import (
    RecipientExport,
    TransferExport,
    TransferServiceExport,
)

SERVICE: Final = "transfer"
RESOURCE: Final = "transfer.transfer"
TRANSFER_PURPOSE: Final = "cross_border.transfer"
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


async def handle(session: AsyncSession, *, events: EventWriter, event: Event) -> Event | None:
    """Answer a ``rights.requested`` event that names transfer; None for other events."""
    request = rights.requested_of(event, SERVICE)
    if request is None:
        return None
    return rights.answer_unsupported(session, events=events, service=SERVICE, request=request)
