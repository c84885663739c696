"""Event contracts (issue 18 item 4): for every event type the suite publishes, a pydantic
model of its ``data``, its version, the topic it goes to and the app that sends it.

:data:`REGISTRY` maps each event type (``com.signature.<app>.<entity>.<action>.v<N>``)
to its :class:`Contract`. A sender builds the model and hands it to
:meth:`kit.outbox.EventWriter.add` (or :func:`kit.events.new_event`), which checks it is
the registered model of the type and writes ``model_dump(mode="json", exclude_unset=True)``
as the event's ``data``. Consumers read ``data`` with the same model
(:func:`data_of`). The AsyncAPI 3.0 document (``asyncapi.yaml``, ``make asyncapi``,
:mod:`kit.asyncapi`) is generated from this registry.

Every event is a CloudEvents 1.0 structured-mode record (:mod:`kit.events`): the Kafka key
is the event's ``subject`` (a pseudonymous id), the one header ``content-type`` says
``application/cloudevents+json``. ``data`` holds ids, states, counts and times, never
personal data (the guard of :func:`kit.events.new_event` still looks).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "REGISTRY",
    "SENDERS",
    "Contract",
    "EventData",
    "UnknownEventType",
    "as_data",
    "contract_of",
    "data_of",
]

SENDERS: Final = ("identity", "orders", "consent", "transfer", "gateway")
_VERSION = re.compile(r"\.v([0-9]+)$")


class UnknownEventType(ValueError):
    """An event type no contract registers, or data of another type's model."""


class EventData(BaseModel):
    """The ``data`` of one event type: ids, states, counts and times only."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Iso = str  # an ISO 8601 date or time, as JSON carries it


# ---------------------------------------------------------------------- every app (kit)


class PersonalDataProcessed(EventData):
    """Someone read, wrote or deleted a subject's personal data (the processing ledger)."""

    actor: str = Field(description="the account, partner or service that processed it")
    resource: str = Field(description="the catalogue resource, e.g. orders.order")
    action: Literal["read", "write", "delete"]


class RightsCompleted(EventData):
    """A service's answer to a rights request of the privacy center."""

    request_id: str
    outcome: Literal["done", "partial", "refused"]
    deleted: list[str] = Field(default_factory=list, description="data categories deleted")
    anonymised: list[str] = Field(default_factory=list, description="categories anonymised")
    kept: list[dict[str, str]] = Field(
        default_factory=list,
        description="what a legal hold keeps: category, retention, legal_basis, until",
    )
    reason: str | None = None


class CessationApplied(EventData):
    """A service stopped processing for a ceased purpose."""

    cessation_id: str
    purpose: str
    effective_date: Iso
    stopped: list[str]
    counts: dict[str, int]


# ------------------------------------------------------------------------------ identity


class AccountCreated(EventData):
    kind: Literal["user", "staff"]
    roles: list[str]
    policy_version: str | None = Field(
        default=None, description="the policy agreed to on the sign-in screen (SMS sign-in)"
    )
    channel: str | None = Field(default=None, description="where that agreement was made")


class PhoneBound(EventData):
    """A mini-program user bound the phone number their platform vouched for."""

    source: str = Field(description="e.g. wechat.getPhoneNumber")


class RoleGranted(EventData):
    role: str
    by: str = Field(description="who granted it")


class AccountClosed(EventData):
    """Identity closed the account (its subject): every app refuses its tokens."""


class PartnerRegistered(EventData):
    kind: str
    name: str = Field(description="the organisation's name (not a person's)")
    agreement_type: str
    purposes: list[str]
    by: str


class PartnerAssessed(EventData):
    result: str
    valid_until: str
    by: str


class Revoked(EventData):
    by: str


class ServiceClientRegistered(EventData):
    service: str
    scopes: list[str]
    by: str


class VerificationCompleted(EventData):
    result: Literal["match", "mismatch"]
    level: str
    minor: bool | None = None


class NetworkIdentityCompleted(EventData):
    result: Literal["match", "mismatch"]
    level: str


class GuardianLinked(EventData):
    guardian_account_id: str


# -------------------------------------------------------------------------------- orders


class GoodsAdded(EventData):
    currency: str
    cross_border: bool
    special_category: bool
    by: str


class GoodsPriceChanged(EventData):
    price: str = Field(description="a decimal")
    currency: str
    by: str


class DiscountAdded(EventData):
    code: str
    currency: str
    by: str


class GoodsCityTagged(EventData):
    city: str
    by: str


class OrderPlaced(EventData):
    order_id: str
    status: str
    currency: str
    discount_codes: list[str]
    goods_ids: list[str]
    line_count: int
    cross_border: bool
    special_category: bool
    invoice_requested: bool


class OrderStatusChanged(EventData):
    order_id: str
    status: str
    by: str


class OrderAssigned(EventData):
    order_id: str
    partners: list[dict[str, Any]] = Field(description="each duty and its partner id")
    by: str


class OrderDeliveryUpdated(EventData):
    order_id: str
    delivery_status: str
    order_status: str
    partner_id: str


class OrderAnonymised(EventData):
    order_id: str
    retention_started_at: Iso
    anonymised_at: Iso


class PaymentProviderChanged(EventData):
    provider_id: str
    by: str


class OrderPaid(EventData):
    order_id: str
    payment_id: str
    provider_id: str


class OrderRefunded(OrderPaid):
    refund_id: str | None


class CartChanged(EventData):
    action: str
    goods_id: str | None = None
    quantity: int | None = None
    item_count: int


class CartShared(EventData):
    share_id: str
    item_count: int


class CartShareRevoked(EventData):
    share_id: str


class PriceDropped(EventData):
    goods_ids: list[str]
    count: int


class SearchRecorded(EventData):
    """A search kept in the user's history (its words encrypted, never in the event)."""

    entry_id: str
    result_count: int
    personalise: bool


class SearchHistoryDeleted(EventData):
    deleted: int = Field(description="how many history entries were deleted")


# ------------------------------------------------------------------------------- consent


class ConsentChanged(EventData):
    purpose: str
    granted: bool
    receipt_id: str
    version: int
    recipient_id: str | None = None


class ConsentEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    granted: bool
    changed_at: Iso


class PolicyAgreement(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version_agreed: str | None
    sequence_agreed: int | None


class ConsentState(EventData):
    """A subject's whole consent state (compacted topic ``consent.state``: the latest per
    subject is all a reader needs)."""

    version: int
    consents: dict[str, ConsentEntry] = Field(description="purpose (or purpose:recipient)")
    policy: PolicyAgreement


class PolicyPublished(EventData):
    version: str
    sequence: int
    effective_date: Iso
    major: bool
    kinds: list[str]
    reduces_rights: bool
    text_sha256: str


class PolicyAgreed(EventData):
    version: str
    sequence: int
    receipt_id: str
    channel: str


class RightsRequested(EventData):
    request_id: str
    kind: str = Field(description="the right: access, correction, deletion, portability, ...")
    deadline: Iso
    participants: list[str]
    has_corrections: bool | None = None


class RightsFulfilled(EventData):
    request_id: str
    kind: str
    outcomes: dict[str, str] = Field(description="service -> outcome")


class RightsOverdue(EventData):
    request_id: str
    kind: str
    deadline: Iso
    overdue_services: list[str]


class RightsExported(EventData):
    request_id: str
    services: dict[str, str] = Field(description="service -> the export part's status")


class PurposeCeased(EventData):
    cessation_id: str
    purpose: str
    effective_date: Iso
    deletion_due: Iso


class ControllerChanged(EventData):
    cessation_id: str
    change: str
    effective_date: Iso
    consent_renewal_required: bool


class IncidentRecorded(EventData):
    incident_id: str
    affected_users: int
    delivery: str
    notices_sent: int
    level: str | None = Field(default=None, description="the incident's grading (OB-L-10)")
    regulator_deadline: Iso | None = Field(
        default=None, description="when the regulator report is due; None: not reportable"
    )


class IncidentReportFiled(EventData):
    """An incident's regulator report was filed (OB-L-10)."""

    incident_id: str
    deadline: Iso
    filed_at: Iso
    late: bool


class RestrictionState(EventData):
    """A subject's whole restriction state (compacted topic ``consent.restrictions``)."""

    purposes: list[str]
    categories: list[str]
    storage_only: bool


class RestrictionLifted(EventData):
    request_id: str


class RightsPorted(EventData):
    request_id: str
    services: dict[str, str] = Field(description="service -> the part's status")
    left_out: int


class SecurityFlagged(EventData):
    """An anti-fraud rule flagged an account: counts only, never a value."""

    model_config = ConfigDict(extra="allow", frozen=True)

    flag_id: str
    rule: str
    times: int


class SupportCaseEvent(EventData):
    case_id: str
    topic: str | None = None
    opened_by: str | None = None
    author: str | None = None
    attachments: int | None = None


class NotificationSent(EventData):
    kind: Literal["incident", "purpose_ceased", "controller_change"]
    incident_id: str | None = None
    cessation_id: str | None = None


# ------------------------------------------------------------------------------ transfer


class RecipientRegistered(EventData):
    legal_name: str = Field(description="the organisation's name (not a person's)")
    delivery: Literal["https", "kafka"]
    key_type: Literal["x25519", "rsa"]
    basis_kind: str
    review_due: Iso
    assessment_result: str
    by: str


class BasisRecorded(EventData):
    basis_id: str
    kind: str
    review_due: Iso
    by: str


class RecipientAssessed(EventData):
    assessment_id: str
    result: str
    assessed_on: Iso
    by: str


class TransferChanged(EventData):
    transfer_id: str
    recipient_id: str
    order_id: str | None
    status: str
    reason: str | None = None
    trigger: str | None = None
    delivery: str | None = None
    basis_id: str | None = None
    waybill_id: str | None = None


class VolumeAlert(EventData):
    """A yearly count of persons whose data went abroad reached 80 % of a threshold, or it."""

    year: int
    counter: str
    persons: int
    threshold: int
    reached: bool
    requires: str


class EgressPackage(EventData):
    """An encrypted package for a recipient receiving by Kafka: only it can read it."""

    transfer_id: str
    waybill_id: str
    package: str = Field(description="the JWE, compact serialization")


# ------------------------------------------------------------------------------ registry


@dataclass(frozen=True)
class Contract:
    event_type: str
    data: type[EventData]
    #: the app whose outbox (or producer) sends it
    sender: str
    #: the topic's name without the deployment's prefix
    topic: str
    summary: str

    @property
    def version(self) -> int:
        found = _VERSION.search(self.event_type)
        return int(found.group(1)) if found else 1

    @property
    def name(self) -> str:
        """The type without its prefix and version: ``orders.order.placed``."""
        return _VERSION.sub("", self.event_type.removeprefix("com.signature."))


def _contracts() -> dict[str, Contract]:  # noqa: PLR0915 (one line per event type)
    found: dict[str, Contract] = {}

    def add(type_: str, data: type[EventData], sender: str, summary: str, topic: str = "") -> None:
        found[type_] = Contract(type_, data, sender, topic or f"{sender}.events", summary)

    p = "com.signature."
    for app in SENDERS:
        for action in ("read", "write", "delete"):
            add(
                f"{p}{app}.personal_data.{action}.v1",
                PersonalDataProcessed,
                app,
                f"{app} {action}s a subject's personal data (the processing ledger)",
            )
    for app in ("identity", "orders", "consent", "transfer"):
        add(
            f"{p}{app}.rights.completed.v1",
            RightsCompleted,
            app,
            f"{app} answered a rights request",
        )
    for app in ("orders", "transfer"):
        add(
            f"{p}{app}.purpose.cessation.applied.v1",
            CessationApplied,
            app,
            f"{app} stopped processing for a ceased purpose",
        )
    add(f"{p}identity.account.created.v1", AccountCreated, "identity", "an account was created")
    add(f"{p}identity.role.granted.v1", RoleGranted, "identity", "an account got a role")
    add(f"{p}identity.phone.bound.v1", PhoneBound, "identity", "a platform's phone was bound")
    add(f"{p}identity.account.closed.v1", AccountClosed, "identity", "an account was closed")
    add(f"{p}identity.partner.registered.v1", PartnerRegistered, "identity", "a partner registered")
    add(f"{p}identity.partner.assessed.v1", PartnerAssessed, "identity", "a partner assessed")
    add(f"{p}identity.partner.revoked.v1", Revoked, "identity", "a partner was revoked")
    add(
        f"{p}identity.service_client.registered.v1",
        ServiceClientRegistered,
        "identity",
        "an internal service client was registered",
    )
    add(
        f"{p}identity.service_client.revoked.v1",
        Revoked,
        "identity",
        "an internal service client was revoked",
    )
    add(
        f"{p}identity.verification.completed.v1",
        VerificationCompleted,
        "identity",
        "a real-name verification ended (match or mismatch)",
    )
    add(f"{p}identity.guardian.linked.v1", GuardianLinked, "identity", "a minor's guardian linked")
    add(
        f"{p}identity.network_identity.completed.v1",
        NetworkIdentityCompleted,
        "identity",
        "an authentication through the national network identity service ended",
    )
    for app in ("identity", "orders"):
        add(
            f"{p}{app}.security.flagged.v1",
            SecurityFlagged,
            app,
            f"{app}'s anti-fraud rules flagged an account (the counts they saw)",
        )
    for action in (
        "case_opened",
        "message_added",
        "verification_failed",
        "membership_verified",
        "case_closed",
    ):
        add(
            f"{p}orders.support.{action}.v1",
            SupportCaseEvent,
            "orders",
            f"a customer service case: {action.replace('_', ' ')}",
        )
    add(f"{p}orders.goods.added.v1", GoodsAdded, "orders", "goods were added to the catalogue")
    add(f"{p}orders.goods.price_changed.v1", GoodsPriceChanged, "orders", "a price changed")
    add(f"{p}orders.discount.added.v1", DiscountAdded, "orders", "a discount code was added")
    add(f"{p}orders.goods.city_tagged.v1", GoodsCityTagged, "orders", "goods tagged with a city")
    add(f"{p}orders.order.placed.v1", OrderPlaced, "orders", "an order was placed")
    add(f"{p}orders.order.status_changed.v1", OrderStatusChanged, "orders", "an order moved on")
    add(f"{p}orders.order.assigned.v1", OrderAssigned, "orders", "partners were assigned")
    add(
        f"{p}orders.order.delivery_updated.v1",
        OrderDeliveryUpdated,
        "orders",
        "a courier reported a delivery step",
    )
    add(
        f"{p}orders.order.anonymised.v1",
        OrderAnonymised,
        "orders",
        "an order's retention ended: anonymised",
    )
    add(
        f"{p}orders.order.payment_provider_registered.v1",
        PaymentProviderChanged,
        "orders",
        "a payment provider was set up",
    )
    add(
        f"{p}orders.order.payment_provider_revoked.v1",
        PaymentProviderChanged,
        "orders",
        "a payment provider was revoked",
    )
    add(f"{p}orders.order.paid.v1", OrderPaid, "orders", "an order was paid")
    add(f"{p}orders.order.refunded.v1", OrderRefunded, "orders", "an order was refunded")
    add(f"{p}orders.cart.changed.v1", CartChanged, "orders", "a cart changed")
    add(f"{p}orders.cart.shared.v1", CartShared, "orders", "a cart was shared")
    add(f"{p}orders.cart.share_revoked.v1", CartShareRevoked, "orders", "a cart share revoked")
    add(f"{p}orders.cart.price_dropped.v1", PriceDropped, "orders", "price-drop reminder sent")
    add(f"{p}orders.search.searched.v1", SearchRecorded, "orders", "a search was kept in history")
    add(
        f"{p}orders.search.history_deleted.v1",
        SearchHistoryDeleted,
        "orders",
        "search history entries were deleted",
    )
    add(f"{p}consent.consent.changed.v1", ConsentChanged, "consent", "a consent granted/withdrawn")
    add(
        f"{p}consent.state.v1",
        ConsentState,
        "consent",
        "a subject's whole consent state (compacted: the newest per subject counts)",
        topic="consent.state",
    )
    add(f"{p}consent.policy.published.v1", PolicyPublished, "consent", "a policy version published")
    add(f"{p}consent.policy.agreed.v1", PolicyAgreed, "consent", "a user agreed to a policy")
    add(f"{p}consent.rights.requested.v1", RightsRequested, "consent", "a rights request filed")
    add(f"{p}consent.rights.fulfilled.v1", RightsFulfilled, "consent", "every service answered")
    add(f"{p}consent.rights.overdue.v1", RightsOverdue, "consent", "a request passed its deadline")
    add(f"{p}consent.rights.exported.v1", RightsExported, "consent", "an access export was built")
    add(f"{p}consent.purpose.ceased.v1", PurposeCeased, "consent", "a purpose was declared ceased")
    add(
        f"{p}consent.controller.changed.v1",
        ControllerChanged,
        "consent",
        "the controller changed (merger, ...)",
    )
    add(f"{p}consent.incident.recorded.v1", IncidentRecorded, "consent", "an incident recorded")
    add(
        f"{p}consent.incident.regulator_report_filed.v1",
        IncidentReportFiled,
        "consent",
        "an incident's regulator report was filed",
    )
    add(
        f"{p}consent.restriction.state.v1",
        RestrictionState,
        "consent",
        "a subject's whole restriction state (compacted: the newest per subject counts)",
        topic="consent.restrictions",
    )
    add(
        f"{p}consent.rights.restriction_lifted.v1",
        RestrictionLifted,
        "consent",
        "a restriction of processing was lifted",
    )
    add(f"{p}consent.rights.ported.v1", RightsPorted, "consent", "a portability copy delivered")
    add(f"{p}consent.notification.v1", NotificationSent, "consent", "a notice sent to a user")
    add(
        f"{p}transfer.recipient.registered.v1",
        RecipientRegistered,
        "transfer",
        "an overseas recipient was registered",
    )
    add(
        f"{p}transfer.recipient.basis_recorded.v1",
        BasisRecorded,
        "transfer",
        "a legal basis recorded",
    )
    add(f"{p}transfer.recipient.assessed.v1", RecipientAssessed, "transfer", "a recipient assessed")
    for action in (
        "requested",
        "awaiting_basis",
        "awaiting_consent",
        "ready",
        "refused",
        "delivered",
        "purpose_ceased",
    ):
        add(
            f"{p}transfer.transfer.{action}.v1",
            TransferChanged,
            "transfer",
            f"a cross-border transfer: {action.replace('_', ' ')}",
        )
    add(
        f"{p}transfer.volume.alert.v1",
        VolumeAlert,
        "transfer",
        "a yearly cross-border volume reached 80 % of a threshold, or the threshold",
    )
    add(
        f"{p}transfer.egress.package.v1",
        EgressPackage,
        "transfer",
        "an encrypted package for a recipient receiving by Kafka",
        topic="transfer.egress.{recipient_id}",
    )
    return dict(sorted(found.items()))


REGISTRY: Final[Mapping[str, Contract]] = _contracts()


def contract_of(event_type: str) -> Contract:
    try:
        return REGISTRY[event_type]
    except KeyError:
        raise UnknownEventType(f"no contract for the event type {event_type!r}") from None


def data_of(event_type: str, data: Mapping[str, Any]) -> EventData:
    """An event's ``data`` read with its type's model (``ValidationError`` if it breaks it)."""
    model: type[EventData] = contract_of(event_type).data
    return model.model_validate(data)


def as_data(event_type: str, data: EventData) -> dict[str, Any]:
    """``data`` as the event carries it, once checked to be the type's model."""
    expected = contract_of(event_type).data
    if type(data) is not expected:
        raise UnknownEventType(
            f"{event_type} carries {expected.__name__}, not {type(data).__name__}"
        )
    return data.model_dump(mode="json", exclude_unset=True)
