"""Orders settings: ``ORDERS_*`` variables, falling back to the suite-wide ``PRIVACY_*``."""

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from kit.settings import ConsentViewSettings, EncryptingSettings


class Settings(EncryptingSettings, ConsentViewSettings):
    service_name: ClassVar[str] = "orders"
    model_config = SettingsConfigDict(env_prefix="ORDERS_", extra="ignore")

    virtual_number_prefix: str = Field(
        default="",
        pattern=r"^(\d{3,12})?$",
        description=(
            "the privacy-number line couriers call (e.g. 95013); when set, the logistics "
            "partner's waybill carries '<prefix>-<6-digit extension>' instead of the "
            "consignee's phone. Empty: the phone is shown masked as the catalogue says."
        ),
    )
    # Anti-fraud (kit.fraud, policy 2F): when orders' rules flag an account.
    fraud_many_orders: int = Field(
        default=5, ge=2, description="orders_to_many_addresses: this many orders ..."
    )
    fraud_many_addresses: int = Field(
        default=3, ge=2, description="... to at least this many different addresses ..."
    )
    fraud_window_s: int = Field(default=3600, ge=60, description="... within this many seconds")
    fraud_sharing_accounts: int = Field(
        default=3, ge=2, description="shared_phone: one consignee phone on this many accounts"
    )
    retention_sweep_enabled: bool = Field(
        default=True, description="run the retention sweeper on a schedule beside the app"
    )
    retention_sweep_interval_s: float = Field(
        default=3600.0, gt=0, description="seconds between scheduled retention sweeps"
    )
    retention_sweep_batch_size: int = Field(
        default=200, ge=1, le=5000, description="orders handled per sweep transaction"
    )
    price_drop_interval_s: float = Field(
        default=6 * 3600.0, gt=0, description="seconds between price-drop reminder runs"
    )
    # Corrections (rights requests) are read from the privacy center with a service token
    # for ``rights.access`` (the service client settings of ``ServiceSettings``, made with
    # ``python -m services.identity create-service-client --name orders --scope
    # service:rights.access``); without them a correction is refused and says why.
    privacy_center_url: str = Field(
        default="http://127.0.0.1:8003", description="the consent service (privacy center)"
    )
    privacy_center_timeout_s: float = Field(default=10.0, gt=0)
    # Payment (``payments``): the public origin providers notify (the gateway), how old a
    # notification's timestamp may be, the providers' API timeout, and the unpaid-order sweep.
    payment_notify_base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="the gateway's public origin; notifications go to "
        "<this>/orders/payments/notifications/<provider id>",
    )
    payment_notification_window_s: int = Field(
        default=300, ge=1, le=3600, description="a notification's timestamp may be this old"
    )
    payment_provider_timeout_s: float = Field(default=10.0, gt=0)
    unpaid_sweep_enabled: bool = Field(
        default=True, description="cancel orders not paid within their payment window"
    )
    unpaid_sweep_interval_s: float = Field(
        default=60.0, gt=0, description="seconds between unpaid-order sweeps"
    )
