"""Transfer settings: ``TRANSFER_*`` variables, falling back to the suite-wide ``PRIVACY_*``."""

from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from kit.settings import ConsentViewSettings, EncryptingSettings


class DeliveryTls(BaseModel):
    """How to reach one recipient's HTTPS endpoint (files are PEM)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ca_bundle: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None


class Settings(EncryptingSettings, ConsentViewSettings):
    service_name: ClassVar[str] = "transfer"
    model_config = SettingsConfigDict(env_prefix="TRANSFER_", extra="ignore")

    # Topics (names behind ``kafka_topic_prefix``)
    orders_events_topic: str = "orders.events"
    consent_state_topic: str = "consent.state"  # compacted, keyed by subject (kit.consent_state)

    # The orders service, asked for the necessary fields under ``cross_border.transfer``.
    orders_url: str = Field(default="http://127.0.0.1:8002", description="orders' base URL")
    # Service tokens from identity: the service client settings of ``ServiceSettings``
    # (a ``svc_`` client made with ``python -m services.identity create-service-client
    # --name transfer --scope service:cross_border.transfer``); without them the fixed
    # ``orders_service_token`` below is used (tests, or an operator-minted token).
    orders_service_token: SecretStr = Field(
        default=SecretStr(""),
        description="a fixed service token for the purpose cross_border.transfer, used only "
        "when no service client is configured; empty: packages cannot be built, transfers "
        "wait",
    )
    orders_timeout_s: float = Field(default=10.0, gt=0)

    # The worker that resumes transfers awaiting consent and delivers the ready ones.
    worker_interval_s: float = Field(default=5.0, gt=0)
    worker_batch_size: int = Field(default=100, ge=1, le=1000)
    worker_lease_s: float = Field(default=300.0, gt=0, description="one worker owns a transfer")

    # Delivery over HTTPS: attempts per round with exponential backoff, then the next round
    # later (a transfer is never given up by itself: nothing is lost).
    delivery_timeout_s: float = Field(default=10.0, gt=0)
    delivery_attempts_per_round: int = Field(default=3, ge=1, le=10)
    delivery_backoff_s: float = Field(default=0.5, ge=0)
    delivery_round_backoff_s: float = Field(default=60.0, ge=0)
    delivery_max_round_backoff_s: float = Field(default=3600.0, ge=0)
    # TLS of that delivery, for recipients behind a private CA or asking for mutual TLS:
    # a CA bundle (PEM) trusted instead of the system store, and a client certificate
    # (PEM, with its key unless the file holds both); the defaults serve every recipient,
    # ``delivery_tls`` (JSON, by recipient id) overrides them for one.
    delivery_ca_bundle: Path | None = Field(default=None, description="default: system store")
    delivery_client_cert: Path | None = None
    delivery_client_key: Path | None = None
    delivery_tls: dict[str, DeliveryTls] = Field(
        default_factory=dict,
        description='by recipient id, e.g. {"rcp_...": {"ca_bundle": "/etc/rcp/ca.pem"}}',
    )

    def delivery_tls_for(self, recipient_id: str) -> DeliveryTls:
        """The recipient's own TLS settings, each missing one from the defaults."""
        default = DeliveryTls(
            ca_bundle=self.delivery_ca_bundle,
            client_cert=self.delivery_client_cert,
            client_key=self.delivery_client_key,
        )
        own = self.delivery_tls.get(recipient_id)
        if own is None:
            return default
        return default.model_copy(update=own.model_dump(exclude_unset=True))

    # Recipients: a legal basis whose review falls within this many days is listed as due;
    # a recipient must have been assessed (and passed) within the interval to receive data.
    review_warning_days: int = Field(default=30, ge=0)
    # Records of provision abroad past their catalogue period (``transfer_record``) go.
    retention_sweep_interval_s: float = Field(
        default=3600.0, gt=0, description="seconds between retention sweeps of records"
    )
    assessment_interval_days: int = Field(default=365, ge=1)
