"""What transfer gives the privacy center about one subject (``GET /rights/export/{subject}``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class RecipientExport(BaseModel):
    """Who received (or was to receive) the data, and how to exercise rights with it (4)."""

    recipient_id: str
    legal_name: str
    contact: str
    country_region: str
    purpose: str
    how_to_exercise_rights: str


class TransferExport(BaseModel):
    transfer_id: str
    order_id: str
    recipient: RecipientExport | None
    categories: list[str]
    purposes: list[str]
    status: str
    outcome: str
    reason: str | None
    requested_at: datetime
    delivered_at: datetime | None


class TransferServiceExport(BaseModel):
    """Every transfer about the subject. Transfer keeps no personal value of the subject in
    clear: the package sent is encrypted for the recipient and dropped once delivered."""

    service: str = "transfer"
    subject: str
    transfers: list[TransferExport]
