"""Orders tables. They live in this registry, so they exist only in the orders database.

Personal values of an order (consignee, phones, address, invoice and customs data, remarks:
the ``orders.order`` fields of the catalogue) are stored only as ciphertext under the
buyer's key (``kit.crypto``), in the columns named ``<catalogue field>_encrypted``. The
facts needed for reconciliation and tax (goods, quantities, prices, discounts, amounts,
status, times) are plain. Amounts are :class:`Money`: exact decimals, never floats.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Index,
    UniqueConstraint,
    text,
)
from sqlmodel import Field, SQLModel

from kit.db import money_column, new_registry, timestamp_column
from kit.models import utcnow

registry = new_registry()


class OrdersModel(SQLModel, registry=registry):
    """Base of every orders table."""


# --------------------------------------------------------------------------- goods


class Goods(OrdersModel, table=True):
    """An item for sale. ``cross_border`` goods need the buyer's customs identity;
    ``special_category`` goods need a real-name verified buyer (policy 2A, 2D)."""

    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=200)
    price: Decimal = Field(sa_column=money_column())
    currency: str = Field(max_length=3)
    cross_border: bool = False
    special_category: bool = False
    # a payment window of the catalogue (None: its default); scarce stock gets a short one
    payment_window: str | None = Field(default=None, max_length=40)
    created_by: str = Field(max_length=40)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class Discount(OrdersModel, table=True):
    """A discount code and the amount it takes off an order, set by staff: a buyer names
    codes, never amounts."""

    code: str = Field(primary_key=True, max_length=40)
    amount: Decimal = Field(sa_column=money_column())
    currency: str = Field(max_length=3)
    active: bool = True
    created_by: str = Field(max_length=40)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


# --------------------------------------------------------------------------- cart


class CartItem(OrdersModel, table=True):
    """Goods in a user's cart, with the price when they were added (price-drop reminders
    compare against it, and against the last price a reminder was sent for)."""

    __tablename__ = "cart_item"
    __table_args__ = (UniqueConstraint("owner_id", "goods_id"),)

    id: str = Field(primary_key=True, max_length=40)
    owner_id: str = Field(index=True, max_length=40)
    goods_id: str = Field(foreign_key="goods.id", max_length=40)
    quantity: int
    price_at_adding: Decimal = Field(sa_column=money_column())
    currency: str = Field(max_length=3)
    reminded_price: Decimal | None = Field(default=None, sa_column=money_column(nullable=True))
    added_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class CartShare(OrdersModel, table=True):
    """A shared-cart link: a snapshot of goods and quantities, reachable by a random token
    of which only the SHA-256 is kept. Nothing in it names or describes the owner."""

    __tablename__ = "cart_share"

    id: str = Field(primary_key=True, max_length=40)
    owner_id: str = Field(index=True, max_length=40)
    token_hash: str = Field(unique=True, max_length=64)
    snapshot: list[dict[str, Any]] = Field(
        default_factory=list,
        sa_column=Column(JSON, nullable=False),
        description="[{goods_id, quantity}]",
    )
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    revoked_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))


# --------------------------------------------------------------------------- orders


class Order(OrdersModel, table=True):
    """An order (policy 2C, 2D). ``id`` is the order number. Personal fields are ciphertext
    under the buyer's key; amounts, goods and status are plain, for reconciliation and tax.
    ``completed_at`` starts the retention clock (``order_completed`` in the catalogue)."""

    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_buyer_id_created_at", "buyer_id", "created_at"),
        # The retention sweep's walk: orders not yet anonymised, by clock then id (many
        # orders may share one clock, e.g. a bulk completion).
        Index(
            "ix_orders_retention_clock",
            "retention_starts_at",
            "id",
            postgresql_where=text("anonymised_at IS NULL"),
            sqlite_where=text("anonymised_at IS NULL"),
        ),
        # The unpaid-order sweep's walk: placed orders by payment deadline.
        Index(
            "ix_orders_unpaid_pay_by",
            "pay_by",
            postgresql_where=text("status = 'placed'"),
            sqlite_where=text("status = 'placed'"),
        ),
    )

    id: str = Field(primary_key=True, max_length=40)
    buyer_id: str = Field(max_length=40)
    status: str = Field(max_length=20)
    currency: str = Field(max_length=3)
    subtotal: Decimal = Field(sa_column=money_column())
    discounts: list[dict[str, str]] = Field(
        default_factory=list,
        sa_column=Column(JSON, nullable=False),
        description="[{code, amount}] as applied",
    )
    discount_total: Decimal = Field(sa_column=money_column())
    amount_payable: Decimal = Field(sa_column=money_column())
    cross_border: bool = False
    special_category: bool = False
    invoice_requested: bool = False
    delivery_window: dict[str, Any] | None = Field(
        default=None,
        sa_column=Column(JSON, nullable=True),
        description="{days, start, end}: a structured preference, no free text",
    )
    # ciphertext (kit.crypto tokens) under the buyer's key, context orders.order.<field>
    consignee_name_encrypted: str
    consignee_phone_encrypted: str
    address_region_encrypted: str
    address_detail_encrypted: str
    postal_code_encrypted: str | None = None
    extra_phones_encrypted: str | None = None
    invoice_title_encrypted: str | None = None
    invoice_tax_id_encrypted: str | None = None
    invoice_email_encrypted: str | None = None
    customs_name_encrypted: str | None = None
    customs_id_number_encrypted: str | None = None
    remarks_encrypted: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    completed_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    # payment (``payments``): an order still ``placed`` at ``pay_by`` is cancelled unpaid
    pay_by: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    # partner assignment (``delivery``): partners' client ids, never personal data
    logistics_partner_id: str | None = Field(default=None, index=True, max_length=40)
    customs_broker_id: str | None = Field(default=None, index=True, max_length=40)
    assigned_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    assigned_by: str | None = Field(default=None, max_length=40)
    # retention (``retention``): when the clock started (completion, or cancellation for an
    # order that never completes) and when the last personal field went
    retention_starts_at: datetime | None = Field(
        default=None, sa_column=timestamp_column(nullable=True)
    )
    anonymised_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))


class OrderLine(OrdersModel, table=True):
    """One line of an order: the goods as they were sold (name and price at ordering)."""

    __tablename__ = "order_line"

    order_id: str = Field(foreign_key="orders.id", primary_key=True, max_length=40)
    position: int = Field(primary_key=True)
    goods_id: str = Field(max_length=40)
    goods_name: str = Field(max_length=200)
    quantity: int
    unit_price: Decimal = Field(sa_column=money_column())
    line_total: Decimal = Field(sa_column=money_column())
    cross_border: bool = False
    special_category: bool = False


class OrderStatusChange(OrdersModel, table=True):
    """The status history of an order, oldest first by ``id``."""

    __tablename__ = "order_status"

    id: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(foreign_key="orders.id", index=True, max_length=40)
    status: str = Field(max_length=20)
    actor: str = Field(max_length=80, description="who changed it: the buyer, a partner, staff")
    at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class OrderIdempotencyKey(OrdersModel, table=True):
    """An ``Idempotency-Key`` a buyer used to place an order. Key and request are kept
    only as keyed hashes (the request holds personal data)."""

    __tablename__ = "order_idempotency_key"

    buyer_id: str = Field(primary_key=True, max_length=40)
    key_index: str = Field(primary_key=True, max_length=64)
    request_digest: str = Field(max_length=64)
    order_id: str = Field(max_length=40)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


# --------------------------------------------------------------------------- delivery, location


class DeliveryUpdate(OrdersModel, table=True):
    """A delivery status the logistics partner reported (``picked_up``, ``in_transit``,
    ``delivered``, ``failed``): the tracking history. Ids, a status and a time only; no
    free text, so nothing personal can be written here."""

    __tablename__ = "delivery_update"

    id: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(foreign_key="orders.id", index=True, max_length=40)
    partner_id: str = Field(max_length=40)
    status: str = Field(max_length=20)
    at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class GoodsCity(OrdersModel, table=True):
    """The city goods are offered in, for nearby recommendations (policy 2G). A fact about
    the goods, set by staff; nothing about any user."""

    __tablename__ = "goods_city"

    goods_id: str = Field(foreign_key="goods.id", primary_key=True, max_length=40)
    city: str = Field(index=True, max_length=30)
    tagged_by: str = Field(max_length=40)
    tagged_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class CeasedPurpose(OrdersModel, table=True):
    """A purpose the privacy center declared ceased (``kit.cessation``): collection for it
    is refused from ``effective_date`` on (location features refuse). Ids and dates only."""

    __tablename__ = "ceased_purpose"

    purpose: str = Field(primary_key=True, max_length=100)
    cessation_id: str = Field(max_length=40)
    effective_date: date
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


# --------------------------------------------------------------------------- payments


class PaymentProvider(OrdersModel, table=True):
    """A payment provider the shop works with (policy 2C, 3.3): the identity partner's
    client id, where its API is, the public key its notifications are signed with and the
    shop's own signing key for requests to it (private key encrypted under the provider's
    key in ``kit.crypto``, context ``orders.payment_provider.shop_key``)."""

    __tablename__ = "payment_provider"

    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=200)
    api_url: str = Field(max_length=500)
    notification_key_pem: str = Field(max_length=2000)
    notification_key_serial: str = Field(max_length=64)
    shop_key_encrypted: str
    shop_key_serial: str = Field(max_length=64)
    status: str = Field(default="active", max_length=20)
    created_by: str = Field(max_length=40)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class Payment(OrdersModel, table=True):
    """A payment of one order at one provider: the provider's reference, the amount and
    what became of it (``pending``, ``paid``, ``refund_requested``, ``refunded``). Ids,
    amounts and times only."""

    __tablename__ = "payment"
    __table_args__ = (UniqueConstraint("provider_id", "provider_reference"),)

    id: str = Field(primary_key=True, max_length=40)
    order_id: str = Field(foreign_key="orders.id", unique=True, max_length=40)
    provider_id: str = Field(foreign_key="payment_provider.id", max_length=40)
    provider_reference: str = Field(max_length=64)
    amount: Decimal = Field(sa_column=money_column())
    currency: str = Field(max_length=3)
    status: str = Field(default="pending", max_length=20)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    expires_at: datetime = Field(sa_column=timestamp_column())
    paid_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    refund_id: str | None = Field(default=None, max_length=40)
    refund_reference: str | None = Field(default=None, max_length=64)
    refund_requested_at: datetime | None = Field(
        default=None, sa_column=timestamp_column(nullable=True)
    )
    refunded_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))


class PaymentNotification(OrdersModel, table=True):
    """A provider's notification handled once: its id makes a repeat (the provider's retry,
    or two deliveries at once) change nothing the second time."""

    __tablename__ = "payment_notification"

    provider_id: str = Field(primary_key=True, max_length=40)
    notification_id: str = Field(primary_key=True, max_length=64)
    payment_id: str = Field(max_length=40)
    event_type: str = Field(max_length=40)
    received_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class PaymentNonce(OrdersModel, table=True):
    """A nonce a provider signed with, kept while its timestamp is inside the window: the
    same signed message again is a replay."""

    __tablename__ = "payment_nonce"

    provider_id: str = Field(primary_key=True, max_length=40)
    nonce: str = Field(primary_key=True, max_length=64)
    seen_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column(index=True))


class PaymentRefusal(OrdersModel, table=True):
    """A notification refused (bad signature, stale, replayed, unknown order, wrong amount,
    ...), for the security team. What was claimed, never a body: ids, a reason, a time."""

    __tablename__ = "payment_refusal"

    id: int | None = Field(default=None, primary_key=True)
    provider_id: str = Field(max_length=40)
    reason: str = Field(max_length=40)
    notification_id: str | None = Field(default=None, max_length=64)
    order_id: str | None = Field(default=None, max_length=40)
    at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


# --------------------------------------------------------------------------- search


class SearchEntry(OrdersModel, table=True):
    """One search of the user's search history (policy 2B, OB-2B-1): the words only as
    ciphertext under the user's key, how many goods matched and when. ``personalise`` says
    whether the user consented to ``recommendation.personalised`` when searching: only
    those entries ever feed recommendations. Deleted by the user, with the account, or by
    the retention sweep when the catalogue's ``search_history`` period ends."""

    __tablename__ = "search_entry"
    __table_args__ = (Index("ix_search_entry_owner_id_searched_at", "owner_id", "searched_at"),)

    id: str = Field(primary_key=True, max_length=40)
    owner_id: str = Field(max_length=40)
    query_encrypted: str
    result_count: int
    personalise: bool = False
    searched_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column(index=True))


# --------------------------------------------------------------------------- security


class FraudSignal(OrdersModel, table=True):
    """What orders' anti-fraud rules look at for one order (``kit.fraud``; policy 2F):
    keyed blind indexes of the consignee phone and of the delivery address, never the
    values, made when the order is placed. Deleted with the account and after the
    catalogue's ``fraud_signal`` period."""

    __tablename__ = "fraud_signal"
    __table_args__ = (Index("ix_fraud_signal_buyer_id_placed_at", "buyer_id", "placed_at"),)

    order_id: str = Field(primary_key=True, max_length=40)
    buyer_id: str = Field(max_length=40)
    phone_index: str = Field(index=True, max_length=64)
    address_index: str = Field(max_length=64)
    placed_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column(index=True))


class SecurityFlag(OrdersModel, table=True):
    """An account flagged by orders' anti-fraud rules: the rule, the counts it saw, how
    often and when. Ids and counts only, no personal value."""

    __tablename__ = "security_flag"
    __table_args__ = (UniqueConstraint("account_id", "rule"),)

    id: str = Field(primary_key=True, max_length=40)
    account_id: str = Field(max_length=40)
    rule: str = Field(max_length=40)
    evidence: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    times: int = 1
    first_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    last_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column(index=True))


# --------------------------------------------------------------------------- support


class SupportCase(OrdersModel, table=True):
    """A customer-service case (policy 2E): opened by the user or by an agent, about a
    topic and maybe one of the user's orders. ``verified_at`` records the agent's check of
    the user's membership; until then the agent sees no message and no order."""

    __tablename__ = "support_case"
    __table_args__ = (Index("ix_support_case_account_id_created_at", "account_id", "created_at"),)

    id: str = Field(primary_key=True, max_length=40)
    account_id: str = Field(max_length=40)
    topic: str = Field(max_length=20)
    order_id: str | None = Field(default=None, max_length=40)
    opened_by: str = Field(max_length=10, description="user or agent")
    opened_by_id: str = Field(max_length=40)
    status: str = Field(default="open", max_length=10)
    verified_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    verified_by: str | None = Field(default=None, max_length=40)
    verification_method: str | None = Field(default=None, max_length=40)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column(index=True))
    closed_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))


class SupportMessage(OrdersModel, table=True):
    """One message of a case's communication record: the text as ciphertext under the
    user's key; attachments by their metadata only (type, size, SHA-256)."""

    __tablename__ = "support_message"

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(foreign_key="support_case.id", index=True, max_length=40)
    author: str = Field(max_length=10, description="user or agent")
    author_id: str = Field(max_length=40)
    text_encrypted: str
    attachments: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    sent_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class TrainingExport(OrdersModel, table=True):
    """A de-identified batch of communication records for training customer-service
    models (OB-2E-2): placeholders instead of personal values, no subject id; with its
    manifest. Never published as events."""

    __tablename__ = "training_export"

    id: str = Field(primary_key=True, max_length=40)
    created_by: str = Field(max_length=40)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    manifest: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    records: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )


class AttemptThrottle(OrdersModel, table=True):
    """Failed attempts per key (a support case's membership checks, an agent's) within the
    current window (``kit.throttle``)."""

    __tablename__ = "attempt_throttle"

    key: str = Field(primary_key=True, max_length=100)
    failures: int = 0
    window_started_at: datetime = Field(sa_column=timestamp_column())
