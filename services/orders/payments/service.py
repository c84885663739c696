"""Payment (policy 2C): a provider takes an order from ``placed`` to ``paid``, refunds it,
and orders nobody pays expire. No HTTP here (the provider's API is ``provider.ProviderApi``).

The shape is the one WeChat Pay v3, Alipay and UnionPay share:

1. staff set up a provider (registered as a partner in identity) with the public key its
   notifications are signed with; the shop makes its own Ed25519 key pair for requests to
   that provider and shows the public half once per read, for the provider's console;
2. the buyer starts payment for one of their own orders (anyone else's is 404): the shop
   asks the provider to create a payment and returns its reference, which the app opens
   the wallet with. The provider gets only what the catalogue gives the purpose
   ``order.payment`` (:func:`provider_request`): order number, amount payable, currency, a
   goods description, the expiry time, where to notify; today no personal field of the
   order at all (OB-2C-1);
3. the provider notifies the shop, signed, and retries until it gets a 2xx
   (:func:`handle_notification`). Refused, recorded for the security team and nothing
   changed: an unknown or revoked provider, another key, a missing or bad signature, a
   timestamp outside the window, a nonce seen before (a replayed message), an unknown order,
   another reference, another amount or currency. The same
   notification id again (a retry, or two deliveries at once) is answered 2xx as a
   ``duplicate`` and changes nothing: one transition, one ``order.paid`` event;
4. a buyer cancels an order before pick-up: unpaid, it is cancelled at once; paid, the shop
   asks the provider for a refund and the order is ``cancelling`` (partners lose it, no
   pick-up) until the refund notification ends it ``cancelled`` with the refund recorded;
   an account's deletion cancels every such order of the buyer the same way
   (:func:`cancel_open_orders`);
5. an order still ``placed`` when its payment window (catalogue ``payment_windows``: the
   shortest of its goods', else the default) ends is cancelled by :func:`expire_unpaid`,
   which starts its retention clock.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit.catalogue import Catalogue
from kit.contracts import OrderPaid, OrderRefunded, PaymentProviderChanged
from kit.crypto import FieldCipher
from kit.db import insert_ignoring_duplicates
from kit.errors import Conflict, DomainError, NotFound
from kit.ids import new_id
from kit.masking import mask_value
from kit.outbox import EventWriter
from kit.payment_signature import (
    NONCE_HEADER,
    SERIAL_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    algorithm_of,
    load_private_key,
    load_public_key,
    new_ed25519_key,
    private_key_pem,
    public_key_pem,
    serial_of,
    verify,
)
from services.orders.models import (
    Order,
    OrderLine,
    Payment,
    PaymentNonce,
    PaymentNotification,
    PaymentProvider,
    PaymentRefusal,
)
from services.orders.orders.service import (
    EVENT_PREFIX,
    PERSONAL_FIELDS,
    RESOURCE,
    InvalidOrder,
    change_status,
    decrypt_fields,
)
from services.orders.payments.provider import ProviderApi, ProviderEndpoint
from services.orders.payments.schemas import (
    CancellationView,
    Notification,
    NotificationAnswer,
    PaymentView,
    ProviderChoice,
    ProviderCreate,
    ProviderView,
    RefusalView,
)

logger = logging.getLogger("orders.payments")

PAYMENT_PURPOSE: Final = "order.payment"
NOTIFY_PATH: Final = "/orders/payments/notifications/{provider_id}"
SHOP_KEY_CONTEXT: Final = "orders.payment_provider.shop_key"
DESCRIPTION_MAX: Final = 127  # WeChat Pay's limit for a goods description
#: Statuses a buyer may cancel from: before the courier picked the goods up.
CANCELLABLE: Final = frozenset({"placed", "paid", "assigned"})
UNPAID_ACTOR: Final = "payment-window"
MAX_REFUSALS_PAGE: Final = 200


class PaymentNotPossible(Conflict):
    code, title = "payment-not-possible", "Payment not possible"


class CancellationNotPossible(Conflict):
    code, title = "cancellation-not-possible", "Cancellation not possible"


class NotificationRefused(DomainError):
    """A provider's notification refused; ``reason`` says which check failed. The refusal's
    record (and the nonce) commit; nothing else was changed before a check failed."""

    code, title = "notification-refused", "Notification refused"
    keep_changes = True

    def __init__(self, status: int, reason: str, detail: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(detail, extra={"reason": reason})


@dataclass(frozen=True)
class StartedPayment:
    payment: PaymentView
    created: bool  # False: the payment started before for this order is returned


# --------------------------------------------------------------------------- providers


def check_catalogue(catalogue: Catalogue) -> None:
    """Refuse to start unless ``order.payment`` is an entrusted purpose and a default
    payment window exists (orders are given their deadline from it)."""
    if (
        not catalogue.has_purpose(PAYMENT_PURPOSE)
        or not catalogue.purpose(PAYMENT_PURPOSE).entrusted
    ):
        raise RuntimeError(f"{PAYMENT_PURPOSE} must be an entrusted purpose in the catalogue")
    try:
        catalogue.payment_window(None)
    except KeyError:
        raise RuntimeError("the catalogue needs a default payment window") from None


async def _shop_key_pem(
    session: AsyncSession, cipher: FieldCipher, provider: PaymentProvider
) -> str:
    return await cipher.decrypt(
        session, subject=provider.id, token=provider.shop_key_encrypted, context=SHOP_KEY_CONTEXT
    )


async def _provider_view(
    session: AsyncSession, cipher: FieldCipher, provider: PaymentProvider
) -> ProviderView:
    shop_key = load_private_key(await _shop_key_pem(session, cipher, provider))
    notification_key = load_public_key(provider.notification_key_pem)
    return ProviderView.model_validate(
        {
            "provider_id": provider.id,
            "name": provider.name,
            "api_url": provider.api_url,
            "notification_key_algorithm": algorithm_of(notification_key),
            "notification_key_serial": provider.notification_key_serial,
            "shop_public_key": public_key_pem(shop_key),
            "shop_key_serial": provider.shop_key_serial,
            "status": provider.status,
            "created_at": provider.created_at,
        }
    )


async def register_provider(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    request: ProviderCreate,
    staff_id: str,
) -> ProviderView:
    try:
        notification_key = load_public_key(request.notification_public_key)
    except ValueError as exc:
        field = "body.notification_public_key"
        raise InvalidOrder([{"field": field, "message": str(exc), "type": "key"}]) from None
    if await session.get(PaymentProvider, request.provider_id) is not None:
        raise Conflict(f"payment provider {request.provider_id} is already set up")
    shop_key = new_ed25519_key()
    provider = PaymentProvider(
        id=request.provider_id,
        name=request.name,
        api_url=str(request.api_url),
        notification_key_pem=public_key_pem(notification_key),
        notification_key_serial=serial_of(notification_key),
        shop_key_encrypted=await cipher.encrypt(
            session,
            subject=request.provider_id,
            value=private_key_pem(shop_key),
            context=SHOP_KEY_CONTEXT,
        ),
        shop_key_serial=serial_of(shop_key),
        created_by=staff_id,
    )
    session.add(provider)
    await session.flush()
    events.add(
        session,
        type=f"{EVENT_PREFIX}.payment_provider_registered.v1",
        subject=provider.id,
        purpose=PAYMENT_PURPOSE,
        data=PaymentProviderChanged(provider_id=provider.id, by=staff_id),
    )
    return await _provider_view(session, cipher, provider)


async def list_providers(session: AsyncSession, *, cipher: FieldCipher) -> list[ProviderView]:
    providers = await session.scalars(
        select(PaymentProvider).order_by(col(PaymentProvider.created_at))
    )
    return [await _provider_view(session, cipher, provider) for provider in providers]


async def revoke_provider(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    provider_id: str,
    staff_id: str,
) -> ProviderView:
    provider = await session.get(PaymentProvider, provider_id)
    if provider is None:
        raise NotFound("no such payment provider")
    provider.status = "revoked"
    events.add(
        session,
        type=f"{EVENT_PREFIX}.payment_provider_revoked.v1",
        subject=provider.id,
        purpose=PAYMENT_PURPOSE,
        data=PaymentProviderChanged(provider_id=provider.id, by=staff_id),
    )
    return await _provider_view(session, cipher, provider)


async def provider_choices(session: AsyncSession) -> list[ProviderChoice]:
    """The wallets a buyer may pay with (active providers)."""
    providers = await session.scalars(
        select(PaymentProvider)
        .where(col(PaymentProvider.status) == "active")
        .order_by(col(PaymentProvider.name))
    )
    return [ProviderChoice(provider_id=p.id, name=p.name) for p in providers]


async def _endpoint(
    session: AsyncSession, cipher: FieldCipher, provider: PaymentProvider
) -> ProviderEndpoint:
    pem = await _shop_key_pem(session, cipher, provider)
    return ProviderEndpoint(provider.id, provider.api_url, load_private_key(pem))


# --------------------------------------------------------------------------- starting payment


def _payment_view(payment: Payment) -> PaymentView:
    return PaymentView.model_validate(
        {
            "payment_id": payment.id,
            "order_id": payment.order_id,
            "provider_id": payment.provider_id,
            "provider_reference": payment.provider_reference,
            "amount": payment.amount,
            "currency": payment.currency,
            "status": payment.status,
            "expires_at": payment.expires_at,
            "paid_at": payment.paid_at,
            "refund_requested_at": payment.refund_requested_at,
            "refunded_at": payment.refunded_at,
        }
    )


def _description(lines: Sequence[OrderLine]) -> str:
    """The goods, by name (the shop's goods names, nothing about the buyer)."""
    ordered = sorted(lines, key=lambda line: line.position)
    text = ordered[0].goods_name
    if len(ordered) > 1:
        text += f" and {len(ordered) - 1} more"
    return text[:DESCRIPTION_MAX]


def provider_request(
    catalogue: Catalogue,
    order: Order,
    lines: Sequence[OrderLine],
    *,
    notify_url: str,
    personal: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """What the provider is sent to create the payment, and the data categories in it.

    Minimum necessary, decided by the catalogue: every key that is a personal field of
    ``orders.order`` is kept only when ``order.payment`` may see it, masked as it says;
    keys the catalogue does not list are not personal and pass."""
    assert order.pay_by is not None
    candidate: dict[str, Any] = {
        "order_id": order.id,
        "amount_payable": str(order.amount_payable),
        "currency": order.currency,
        "description": _description(lines),
        "expires_at": order.pay_by.isoformat(),
        "notify_url": notify_url,
        **(personal or {}),
    }
    fields = catalogue.fields_for(RESOURCE)
    sent: dict[str, Any] = {}
    categories: set[str] = set()
    for key, value in candidate.items():
        if key not in fields:
            sent[key] = value
            continue
        rule = catalogue.masking_for(RESOURCE, key, PAYMENT_PURPOSE)
        if rule is not None:
            sent[key] = mask_value(value, rule)
            categories.add(fields[key].category)
    return sent, sorted(categories)


def notify_url(base_url: str, provider_id: str) -> str:
    return base_url.rstrip("/") + NOTIFY_PATH.format(provider_id=provider_id)


async def _own_order(session: AsyncSession, *, buyer_id: str, order_id: str) -> Order:
    order = await session.get(Order, order_id)
    if order is None or order.buyer_id != buyer_id:
        raise NotFound("no such order")
    return order


async def _payment_of(
    session: AsyncSession, order_id: str, *, lock: bool = False
) -> Payment | None:
    query = select(Payment).where(col(Payment.order_id) == order_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    payment: Payment | None = await session.scalar(query)
    return payment


async def start_payment(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    catalogue: Catalogue,
    api: ProviderApi,
    notify_base_url: str,
    buyer_id: str,
    order_id: str,
    provider_id: str,
    now: datetime,
) -> StartedPayment:
    order = await _own_order(session, buyer_id=buyer_id, order_id=order_id)
    existing = await _payment_of(session, order.id)
    if existing is not None:
        if existing.provider_id != provider_id:
            raise PaymentNotPossible(
                f"payment for this order was started with {existing.provider_id}",
                extra={"provider_id": existing.provider_id},
            )
        return StartedPayment(_payment_view(existing), created=False)
    if order.status != "placed":
        raise PaymentNotPossible(f"an order {order.status} is not waiting for payment")
    if order.pay_by is None or order.pay_by <= now:
        raise PaymentNotPossible("the order's payment window has ended")
    provider = await session.get(PaymentProvider, provider_id)
    if provider is None or provider.status != "active":
        message = "no such payment provider"
        raise InvalidOrder([{"field": "body.provider_id", "message": message, "type": "unknown"}])
    lines = list(
        await session.scalars(select(OrderLine).where(col(OrderLine.order_id) == order.id))
    )
    # Encrypted personal fields go only where the catalogue gives them to order.payment (none
    # today); the amount payable, part of the plain purchase record, is filtered below.
    shown = [f for f in catalogue.visible_fields(RESOURCE, PAYMENT_PURPOSE) if f in PERSONAL_FIELDS]
    personal = await decrypt_fields(session, cipher, order, shown) if shown else {}
    payload, categories = provider_request(
        catalogue,
        order,
        lines,
        notify_url=notify_url(notify_base_url, provider.id),
        personal=personal,
    )
    reference = await api.create_payment(await _endpoint(session, cipher, provider), payload)
    payment = Payment(
        id=new_id("pay"),
        order_id=order.id,
        provider_id=provider.id,
        provider_reference=reference,
        amount=order.amount_payable,
        currency=order.currency,
        expires_at=order.pay_by,
        created_at=now,
    )
    session.add(payment)
    if categories:  # the provider received personal data: the buyer's ledger says so
        events.processing(
            session,
            subject=order.buyer_id,
            actor=provider.id,
            action="read",
            purpose=PAYMENT_PURPOSE,
            resource=RESOURCE,
            categories=categories,
        )
    return StartedPayment(_payment_view(payment), created=True)


async def get_payment(session: AsyncSession, *, buyer_id: str, order_id: str) -> PaymentView:
    order = await _own_order(session, buyer_id=buyer_id, order_id=order_id)
    payment = await _payment_of(session, order.id)
    if payment is None:
        raise NotFound("no payment started for this order")
    return _payment_view(payment)


# --------------------------------------------------------------------------- cancellation


async def cancel_order(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    api: ProviderApi,
    notify_base_url: str,
    buyer_id: str,
    order_id: str,
    now: datetime,
    actor: str | None = None,
) -> CancellationView:
    """The buyer cancels before pick-up: at once when unpaid, by refund when paid.
    ``actor`` (the buyer unless named) is who the order's history says cancelled it."""
    actor = actor or buyer_id
    order = await _own_order(session, buyer_id=buyer_id, order_id=order_id)
    payment = await _payment_of(session, order.id, lock=True)
    if order.status in ("cancelled", "cancelling"):  # a repeated cancellation
        refund_id = payment.refund_id if payment is not None else None
        return CancellationView(order_id=order.id, status=order.status, refund_id=refund_id)
    if order.status not in CANCELLABLE:
        raise CancellationNotPossible(
            f"an order {order.status} can no longer be cancelled; ask for a return instead"
        )
    if order.status == "placed":
        await change_status(
            session, events=events, order_id=order.id, status="cancelled", actor=actor
        )
        return CancellationView(order_id=order.id, status="cancelled")
    if payment is None or payment.status != "paid":
        raise CancellationNotPossible("the order's payment is not settled")
    provider = await session.get(PaymentProvider, payment.provider_id)
    assert provider is not None
    refund_id = new_id("rfd")
    payload = {
        "refund_id": refund_id,
        "order_id": order.id,
        "provider_reference": payment.provider_reference,
        "amount": str(payment.amount),
        "currency": payment.currency,
        "notify_url": notify_url(notify_base_url, provider.id),
    }
    reference = await api.request_refund(await _endpoint(session, cipher, provider), payload)
    payment.status = "refund_requested"
    payment.refund_id = refund_id
    payment.refund_reference = reference
    payment.refund_requested_at = now
    await change_status(session, events=events, order_id=order.id, status="cancelling", actor=actor)
    return CancellationView(order_id=order.id, status="cancelling", refund_id=refund_id)


@dataclass(frozen=True)
class Refunds:
    """What refunding a paid order needs outside a request (a consumer has no route to take
    them from): the provider API, the cipher holding the shop's keys, and where the provider
    notifies the refund."""

    api: ProviderApi
    cipher: FieldCipher
    notify_base_url: str


async def cancel_open_orders(
    session: AsyncSession,
    *,
    events: EventWriter,
    refunds: Refunds | None,
    buyer_id: str,
    actor: str,
    now: datetime,
) -> list[CancellationView]:
    """Cancel every order of ``buyer_id`` the courier has not picked up yet, as the buyer
    would (:func:`cancel_order`): unpaid ones at once, paid ones by refund (``cancelling``
    until the provider's refund notification). An account's deletion does this first
    (``rights.service``). Without ``refunds`` a paid order cannot be refunded: raises
    :class:`CancellationNotPossible`, so the caller's transaction rolls back."""
    found = await session.scalars(
        select(Order)
        .where(col(Order.buyer_id) == buyer_id, col(Order.status).in_(sorted(CANCELLABLE)))
        .order_by(col(Order.created_at), col(Order.id))
    )
    cancelled: list[CancellationView] = []
    for order in list(found):
        if order.status == "placed":
            await change_status(
                session, events=events, order_id=order.id, status="cancelled", actor=actor
            )
            cancelled.append(CancellationView(order_id=order.id, status="cancelled"))
            continue
        if refunds is None:
            raise CancellationNotPossible(
                f"order {order.id} is paid and no payment provider API is configured to refund it"
            )
        cancelled.append(
            await cancel_order(
                session,
                cipher=refunds.cipher,
                events=events,
                api=refunds.api,
                notify_base_url=refunds.notify_base_url,
                buyer_id=buyer_id,
                order_id=order.id,
                now=now,
                actor=actor,
            )
        )
    return cancelled


# --------------------------------------------------------------------------- notifications


async def _first_time(session: AsyncSession, model: type[Any], values: Mapping[str, Any]) -> bool:
    result: Any = await session.execute(insert_ignoring_duplicates(session, model).values(**values))
    return bool(result.rowcount == 1)


@dataclass(frozen=True)
class _Claim:
    """What a refused notification claimed, for the record (ids only)."""

    provider_id: str
    notification_id: str | None = None
    order_id: str | None = None


#: Why a notification is refused: reason -> (status, detail).
REFUSALS: Final[Mapping[str, tuple[int, str]]] = {
    "unknown_provider": (401, "no such payment provider"),
    "signature_missing": (401, "the signature headers are missing"),
    "unknown_key": (401, "not the provider's registered key"),
    "out_of_window": (401, "the timestamp is outside the window"),
    "bad_signature": (401, "the signature does not verify"),
    "replayed": (401, "this signed message was seen before"),
    "unknown_order": (404, "no payment of this order at this provider"),
    "reference_mismatch": (422, "not this payment's reference"),
    "amount_mismatch": (422, "not the amount and currency payable"),
    "not_payable": (409, "the order is no longer waiting for payment"),
    "no_such_refund": (409, "no such refund requested"),
}


def _refuse(
    session: AsyncSession, claim: _Claim, reason: str, now: datetime
) -> NotificationRefused:
    status, detail = REFUSALS[reason]
    logger.warning(
        "payment notification refused",
        extra={"provider_id": claim.provider_id[:40], "reason": reason},
    )
    session.add(
        PaymentRefusal(
            provider_id=claim.provider_id[:40],
            reason=reason,
            notification_id=claim.notification_id,
            order_id=claim.order_id,
            at=now,
        )
    )
    return NotificationRefused(status, reason, detail)


async def _authenticated(
    session: AsyncSession,
    *,
    provider_id: str,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
    window_s: int,
) -> PaymentProvider | NotificationRefused:
    """The provider, once the message is signed by its registered key, fresh and new."""
    claim = _Claim(provider_id)
    provider = await session.get(PaymentProvider, provider_id)
    if provider is None or provider.status != "active":
        return _refuse(session, claim, "unknown_provider", now)
    stamp, nonce, signature, serial = (
        headers.get(name.lower(), "")
        for name in (TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER, SERIAL_HEADER)
    )
    if not (stamp and nonce and signature and serial):
        return _refuse(session, claim, "signature_missing", now)
    if serial != provider.notification_key_serial:
        return _refuse(session, claim, "unknown_key", now)
    if not stamp.isdigit() or abs(now.timestamp() - int(stamp)) > window_s:
        return _refuse(session, claim, "out_of_window", now)
    if not verify(load_public_key(provider.notification_key_pem), stamp, nonce, body, signature):
        return _refuse(session, claim, "bad_signature", now)
    values = {"provider_id": provider.id, "nonce": nonce, "seen_at": now}
    if not await _first_time(session, PaymentNonce, values):
        return _refuse(session, claim, "replayed", now)
    return provider


async def handle_notification(
    session: AsyncSession,
    *,
    events: EventWriter,
    provider_id: str,
    headers: Mapping[str, str],
    notification: Notification,
    raw: bytes,
    now: datetime,
    window_s: int,
) -> NotificationAnswer:
    """Apply a provider's signed notification once; raises :class:`NotificationRefused`
    after recording the refusal in ``session`` (the caller commits the record only)."""
    provider = await _authenticated(
        session, provider_id=provider_id, headers=headers, body=raw, now=now, window_s=window_s
    )
    if isinstance(provider, NotificationRefused):
        raise provider
    claim = _Claim(provider.id, notification.id, notification.order_id)
    order = await session.get(Order, notification.order_id)
    payment = await _payment_of(session, notification.order_id, lock=True)
    if order is None or payment is None or payment.provider_id != provider.id:
        raise _refuse(session, claim, "unknown_order", now)
    if notification.provider_reference != payment.provider_reference:
        raise _refuse(session, claim, "reference_mismatch", now)
    amount = notification.amount
    if amount.total != payment.amount or amount.currency != payment.currency:
        raise _refuse(session, claim, "amount_mismatch", now)
    outcome = await _apply(
        session, events=events, notification=notification, order=order, payment=payment, now=now
    )
    return NotificationAnswer(outcome=outcome)


async def _apply(
    session: AsyncSession,
    *,
    events: EventWriter,
    notification: Notification,
    order: Order,
    payment: Payment,
    now: datetime,
) -> Literal["paid", "refunded", "duplicate"]:
    claim = _Claim(payment.provider_id, notification.id, order.id)
    if notification.event_type == "payment.succeeded":
        if payment.status != "pending":
            return "duplicate"
        if order.status != "placed":
            raise _refuse(session, claim, "not_payable", now)
    else:
        if payment.status == "refunded":
            return "duplicate"
        if payment.status != "refund_requested" or notification.refund_id != payment.refund_id:
            raise _refuse(session, claim, "no_such_refund", now)
    first = await _first_time(
        session,
        PaymentNotification,
        {
            "provider_id": payment.provider_id,
            "notification_id": notification.id,
            "payment_id": payment.id,
            "event_type": notification.event_type,
            "received_at": now,
        },
    )
    if not first:
        return "duplicate"
    ids = {"order_id": order.id, "payment_id": payment.id, "provider_id": payment.provider_id}
    if notification.event_type == "payment.succeeded":
        payment.status, payment.paid_at = "paid", now
        await change_status(
            session, events=events, order_id=order.id, status="paid", actor=payment.provider_id
        )
        events.add(
            session,
            type=f"{EVENT_PREFIX}.paid.v1",
            subject=order.buyer_id,
            purpose=PAYMENT_PURPOSE,
            data=OrderPaid(**ids),
        )
        return "paid"
    payment.status, payment.refunded_at = "refunded", now
    await change_status(
        session, events=events, order_id=order.id, status="cancelled", actor=payment.provider_id
    )
    events.add(
        session,
        type=f"{EVENT_PREFIX}.refunded.v1",
        subject=order.buyer_id,
        purpose=PAYMENT_PURPOSE,
        data=OrderRefunded(**ids, refund_id=payment.refund_id),
    )
    return "refunded"


async def list_refusals(session: AsyncSession, *, limit: int) -> list[RefusalView]:
    """The latest refused notifications, newest first, for the security team."""
    refusals = await session.scalars(
        select(PaymentRefusal).order_by(col(PaymentRefusal.id).desc()).limit(limit)
    )
    return [RefusalView.model_validate(r, from_attributes=True) for r in refusals]


# --------------------------------------------------------------------------- unpaid orders


async def expire_unpaid(
    session: AsyncSession, *, events: EventWriter, now: datetime, window_s: int, limit: int = 200
) -> int:
    """Cancel up to ``limit`` orders still ``placed`` after their payment window (their
    retention clock starts now); forget nonces too old to be replayed. How many cancelled."""
    overdue = await session.scalars(
        select(col(Order.id))
        .where(col(Order.status) == "placed", col(Order.pay_by) <= now)
        .order_by(col(Order.pay_by))
        .limit(limit)
    )
    cancelled = 0
    for order_id in list(overdue):
        await change_status(
            session, events=events, order_id=order_id, status="cancelled", actor=UNPAID_ACTOR
        )
        cancelled += 1
    # A nonce is kept while its timestamp could still pass the window (either side of now).
    await session.execute(
        delete(PaymentNonce).where(
            col(PaymentNonce.seen_at) < now - timedelta(seconds=2 * window_s)
        )
    )
    return cancelled
