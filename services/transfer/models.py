"""Transfer tables. They live in this registry, so they exist only in the transfer database.

No personal data of users is kept here in clear: a transfer holds the subject's
pseudonymous account id, the order id and the categories asked for. The package sent abroad
is fetched from orders only when it is built, kept only encrypted for the recipient (which
this service cannot decrypt) and only until it is delivered; its SHA-256 stays as evidence.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from kit.db import new_registry, timestamp_column
from kit.models import utcnow

registry = new_registry()


class TransferModel(SQLModel, registry=registry):
    """Base of every transfer table."""


class Recipient(TransferModel, table=True):
    """An overseas recipient: who it is, what it does with the data, which data categories
    it may receive, how users exercise their rights with it (OB-4-5), the data-processing
    agreement (OB-3-3), its public key and how packages reach it."""

    __tablename__ = "recipient"

    id: str = Field(primary_key=True, max_length=40)
    legal_name: str = Field(max_length=200)
    contact: str = Field(max_length=500)
    country_region: str = Field(max_length=100)
    purpose: str = Field(max_length=1000)
    processing_method: str = Field(max_length=1000)
    data_categories: list[str] = Field(sa_column=Column(JSON, nullable=False))
    how_to_exercise_rights: str = Field(max_length=2000)
    dpa_reference: str = Field(max_length=200, description="the data-processing agreement")
    public_key_pem: str = Field(sa_column=Column(Text, nullable=False))
    key_type: str = Field(max_length=10, description="x25519 or rsa")
    key_fingerprint: str = Field(
        max_length=64, description="SHA-256 of the public key (DER), base64url"
    )
    delivery: str = Field(max_length=10, description="https or kafka")
    endpoint_url: str | None = Field(default=None, max_length=500)
    cross_border_logistics: bool = Field(
        default=False, description="receives the waybill of every cross-border order"
    )
    goods_ids: list[str] = Field(
        default_factory=list,
        sa_column=Column(JSON, nullable=False),
        description="an overseas seller: receives cross-border orders holding these goods",
    )
    created_by: str = Field(max_length=80)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class LegalBasis(TransferModel, table=True):
    """A legal basis for providing data to a recipient (PIPL art. 38, OB-4-6). The newest
    recorded one is the recipient's current basis; older ones stay as history."""

    __tablename__ = "legal_basis"

    id: str = Field(primary_key=True, max_length=40)
    recipient_id: str = Field(foreign_key="recipient.id", index=True, max_length=40)
    kind: str = Field(
        max_length=30, description="security_assessment, certification or standard_contract"
    )
    reference: str = Field(
        max_length=200, description="CAC approval, certificate, or standard-contract filing"
    )
    decided_on: date
    review_due: date
    recorded_by: str = Field(max_length=80)
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class RecipientAssessment(TransferModel, table=True):
    """A periodic assessment of the recipient's purpose and security capability
    (OB-3-4, OB-4-6). The newest decides whether the recipient may receive data."""

    __tablename__ = "recipient_assessment"

    id: str = Field(primary_key=True, max_length=40)
    recipient_id: str = Field(foreign_key="recipient.id", index=True, max_length=40)
    assessed_on: date
    result: str = Field(max_length=10, description="passed or failed")
    notes: str = Field(default="", max_length=2000)
    recorded_by: str = Field(max_length=80)
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class Transfer(TransferModel, table=True):
    """One provision of one subject's order data to one recipient, and its outcome.

    ``status``: ``awaiting_consent`` (resumed when the separate consent arrives),
    ``ready`` (checks passed; being packaged and delivered, retried until delivered),
    ``delivered`` or ``refused`` (``reason`` says why)."""

    __tablename__ = "transfer"
    __table_args__ = (
        UniqueConstraint("source_event_id", "recipient_id"),
        Index("ix_transfer_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: str = Field(primary_key=True, max_length=40)
    subject: str = Field(index=True, max_length=200)
    recipient_id: str = Field(foreign_key="recipient.id", index=True, max_length=40)
    order_id: str = Field(max_length=40)
    categories: list[str] = Field(sa_column=Column(JSON, nullable=False))
    trigger: str = Field(max_length=20, description="order_event or admin")
    contract_necessary: bool = Field(
        default=False,
        description="necessary to perform the user's contract (cross-border shopping, "
        "delivery, payment): exempt from the yearly volume count (OB-L-7)",
    )
    requested_by: str = Field(max_length=80)
    source_event_id: str | None = Field(default=None, max_length=64)
    status: str = Field(max_length=20)
    reason: str | None = Field(default=None, max_length=500)
    basis_id: str | None = Field(default=None, foreign_key="legal_basis.id", max_length=40)
    waybill_id: str | None = Field(default=None, max_length=40)
    package: str | None = Field(
        default=None,
        sa_column=Column(Text, nullable=True),
        description="the package encrypted for the recipient, kept until delivered",
    )
    package_sha256: str | None = Field(default=None, max_length=64)
    rounds: int = 0
    next_attempt_at: datetime | None = Field(
        default=None, sa_column=timestamp_column(nullable=True)
    )
    lease_until: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    requested_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    delivered_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))


class DeliveryAttempt(TransferModel, table=True):
    """One attempt to hand a package to its recipient, whatever came of it."""

    __tablename__ = "delivery_attempt"

    id: int | None = Field(default=None, primary_key=True)
    transfer_id: str = Field(foreign_key="transfer.id", index=True, max_length=40)
    number: int
    at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    outcome: str = Field(max_length=20, description="delivered or failed")
    status_code: int | None = None
    error: str | None = Field(default=None, max_length=200)


class CeasedPurpose(TransferModel, table=True):
    """A purpose the privacy center declared ceased (``kit.cessation``): collection for it
    is refused from ``effective_date`` on (transfers under it are refused). Ids and dates only."""

    __tablename__ = "ceased_purpose"

    purpose: str = Field(primary_key=True, max_length=100)
    cessation_id: str = Field(max_length=40)
    effective_date: date
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class VolumePerson(TransferModel, table=True):
    """A person whose personal information went abroad in a calendar year (China Standard
    Time), counted once per year and sensitivity (OB-L-7): ``sensitive`` true for sensitive
    personal information, false for the rest. The account id is pseudonymous."""

    __tablename__ = "volume_person"

    year: int = Field(primary_key=True)
    sensitive: bool = Field(primary_key=True)
    subject: str = Field(primary_key=True, max_length=200)
    transfer_id: str = Field(max_length=40, description="the first transfer that counted them")
    counted_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class VolumeCounter(TransferModel, table=True):
    """How many persons a year counts, per sensitivity: one row per (year, sensitive),
    moved on with each new :class:`VolumePerson` (a new year starts at 0)."""

    __tablename__ = "volume_counter"

    year: int = Field(primary_key=True)
    sensitive: bool = Field(primary_key=True)
    persons: int = 0
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
