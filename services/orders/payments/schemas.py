"""Payment API shapes: providers (staff), a buyer's payment and cancellation, the
providers' notifications, the refusals the security team reads. Amounts are exact decimals."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator

ProviderId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{3,40}$", examples=["ptn_wallet"])]
PaymentStatus = Literal["pending", "paid", "refund_requested", "refunded"]
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})


class ProviderCreate(BaseModel):
    """A payment provider registered as a partner in identity (kind ``payment_provider``),
    set up here with the key its notifications are signed with."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    provider_id: ProviderId = Field(description="the partner's client id in identity")
    name: str = Field(min_length=1, max_length=200)
    api_url: AnyHttpUrl = Field(description="where the provider's payment API answers")
    notification_public_key: str = Field(
        min_length=1,
        max_length=2000,
        description="PEM public key (RSA >= 2048 bits or Ed25519) the provider signs with",
    )

    @field_validator("api_url")
    @classmethod
    def _https_or_loopback(cls, url: AnyHttpUrl) -> AnyHttpUrl:
        # Orders sends order data there: TLS, except to a stand-in on this machine.
        if url.scheme != "https" and url.host not in LOOPBACK_HOSTS:
            raise ValueError("a provider's API is https (plain http only on loopback)")
        return url


class ProviderView(BaseModel):
    provider_id: str
    name: str
    api_url: str
    notification_key_algorithm: Literal["RSA-SHA256", "Ed25519"]
    notification_key_serial: str
    shop_public_key: str = Field(
        description="PEM: give it to the provider; the shop signs its requests with its pair"
    )
    shop_key_serial: str
    status: Literal["active", "revoked"]
    created_at: datetime


class ProviderChoice(BaseModel):
    """What the app shows when the buyer picks a wallet."""

    provider_id: str
    name: str


class PaymentStart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider_id: ProviderId


class PaymentView(BaseModel):
    """What the app needs to open the wallet: the provider's payment reference."""

    payment_id: str
    order_id: str
    provider_id: str
    provider_reference: str
    amount: Decimal
    currency: str
    status: PaymentStatus
    expires_at: datetime
    paid_at: datetime | None = None
    refund_requested_at: datetime | None = None
    refunded_at: datetime | None = None


class CancellationView(BaseModel):
    order_id: str
    status: Literal["cancelled", "cancelling"] = Field(
        description="cancelled at once when unpaid; cancelling until the provider's refund "
        "notification when paid"
    )
    refund_id: str | None = None


class NotificationAmount(BaseModel):
    model_config = ConfigDict(extra="forbid")

    total: Decimal = Field(max_digits=14, decimal_places=2)
    currency: str = Field(pattern=r"^[A-Z]{3}$")


class Notification(BaseModel):
    """A provider's signed notification (its body; the signature is in the headers)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="the notification's id")
    event_type: Literal["payment.succeeded", "refund.succeeded"]
    order_id: str = Field(max_length=40)
    provider_reference: str = Field(max_length=64)
    refund_id: str | None = Field(default=None, max_length=40)
    amount: NotificationAmount
    occurred_at: datetime


class NotificationAnswer(BaseModel):
    """2xx: the provider stops retrying."""

    code: Literal["SUCCESS"] = "SUCCESS"
    outcome: Literal["paid", "refunded", "duplicate"]


class RefusalView(BaseModel):
    provider_id: str
    reason: str
    notification_id: str | None
    order_id: str | None
    at: datetime


class UnpaidSweepReport(BaseModel):
    cancelled: int = Field(description="orders cancelled because their payment window ended")
