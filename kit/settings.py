"""Settings shared by every app, read from the environment by pydantic-settings.

Each app subclasses :class:`ServiceSettings` with its own ``env_prefix`` (``ORDERS_``,
``IDENTITY_``...). Settings common to the whole suite (Kafka, the master key) may also be
given once as ``PRIVACY_*``; the per-service variable wins. The database URL is per app only:
``PRIVACY_DATABASE_URL`` is ignored, so two apps never share a database by accident.
Secrets are ``SecretStr`` so that logging or printing settings never shows them.
"""

from __future__ import annotations

import base64
import ipaddress
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from kit.crypto import FieldCipher
from kit.kafka import KafkaCluster

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT / ".run" / "data"
DEFAULT_CATALOGUE = REPO_ROOT / "policy" / "catalogue.yaml"

SUITE_PREFIX = "PRIVACY_"
# Never taken from a suite-wide variable: each app has its own database, and each its own
# idea of which hops in front of it to trust.
PER_APP_ONLY = frozenset({"database_url", "trusted_proxies"})

# A development-only master key: start-up refuses it in every environment but
# ``development`` and ``test`` (:data:`DEVELOPMENT_KEY_ENVIRONMENTS`).
DEVELOPMENT_MASTER_KEY = base64.b64encode(b"development-master-key-32-bytes!").decode()


class Environment(StrEnum):
    """Where an app runs; anything else (``prod``, a typo) is refused at start."""

    DEVELOPMENT = "development"
    TEST = "test"
    STAGING = "staging"
    PRODUCTION = "production"


#: The only environments that may run with :data:`DEVELOPMENT_MASTER_KEY`.
DEVELOPMENT_KEY_ENVIRONMENTS: Final = frozenset({Environment.DEVELOPMENT, Environment.TEST})


class _SuiteWideEnvironment(EnvSettingsSource):
    """``PRIVACY_*`` variables, for every setting but those in :data:`PER_APP_ONLY`."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name in PER_APP_ONLY:
            return None, field_name, False
        return super().get_field_value(field, field_name)


class ServiceSettings(BaseSettings):
    """What every app needs. Subclasses set ``service_name`` and ``model_config``."""

    service_name: ClassVar[str] = "service"

    model_config = SettingsConfigDict(env_prefix=SUITE_PREFIX, extra="ignore")

    environment: Environment = Field(
        default=Environment.DEVELOPMENT, description="development, test, staging, production"
    )
    database_url: str = Field(default="", description="SQLAlchemy async URL; default SQLite")
    database_pool_size: int = Field(
        default=10, ge=1, description="PostgreSQL connections each process keeps open"
    )
    database_max_overflow: int = Field(
        default=0, ge=0, description="PostgreSQL connections opened beyond the pool, then closed"
    )
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_topic_partitions: int = Field(default=3, ge=1)
    kafka_topic_prefix: str = Field(
        default="",
        pattern=r"^[a-z0-9._-]*$",
        description="prepended to every topic name and consumer group id",
    )
    # Kafka for production (README "Deploying"): TLS, SASL/SCRAM, replication of new topics.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="SASL_SSL in production"
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] = "SCRAM-SHA-512"
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")
    kafka_ssl_ca_path: Path | None = Field(
        default=None, description="CA of the brokers' certificates; default: the system's"
    )
    kafka_replication_factor: int = Field(
        default=1, ge=1, description="of the topics this app creates; 3 in production"
    )
    kafka_min_insync_replicas: int = Field(
        default=1, ge=1, description="min.insync.replicas of those topics; 2 in production"
    )
    catalogue_path: Path = DEFAULT_CATALOGUE
    outbox_batch_size: int = Field(default=1000, ge=1, le=10_000)
    outbox_poll_interval_s: float = Field(default=0.2, gt=0)
    outbox_max_backoff_s: float = Field(default=5.0, gt=0)
    # revocations learnt from identity's events (kit.revocation) ----------------------
    revocation_keep_s: float = Field(
        default=3660.0,
        ge=60,
        description="how long a closed account or revoked client stays refused: the longest "
        "token lifetime identity issues (3600 s) and the clock leeway",
    )
    revocation_refresh_s: float = Field(
        default=2.0, gt=0, description="how often the revocations are reread and pruned"
    )
    # The issuer identifier is where clients reach identity: the gateway's public origin and
    # /identity, so the RFC 8414 metadata fetched there names its own address (section 3.3).
    auth_issuer: str = Field(
        default="http://127.0.0.1:8000/identity",
        description="the token issuer: the gateway's public origin and /identity",
    )
    auth_audience: str = "signature-api"
    auth_jwks_url: str = Field(
        default="http://127.0.0.1:8001/.well-known/jwks.json",
        description="identity's JWKS, read directly; empty: <auth_issuer>/.well-known/jwks.json",
    )
    # This app's own client at identity, for service tokens (service-to-service calls under
    # a purpose; see kit.service_token). All three or none.
    identity_token_url: str = Field(
        default="", description="identity's token endpoint, e.g. http://127.0.0.1:8001/oauth2/token"
    )
    service_client_id: str = Field(default="", description="this app's svc_ client id")
    service_client_secret: SecretStr = SecretStr("")
    # Graceful shutdown (kit.serve, README "Graceful shutdown"): the whole stop, from
    # SIGTERM to exit, fits in the platform's grace period.
    shutdown_grace_s: float = Field(
        default=30.0,
        ge=2,
        description="SIGTERM to exit: drain requests, flush events, stop loops (Kubernetes' 30 s)",
    )
    shutdown_delay_s: float = Field(
        default=0.0,
        ge=0,
        description="after SIGTERM, keep serving (readyz 503, Connection: close) this long first",
    )
    log_level: str = "INFO"
    log_json: bool = True
    # The hops in front of this app whose X-Forwarded-For it believes (addresses or
    # networks, comma-separated): the client is the right-most address of the chain that
    # is not one of them. A service trusts the gateway (same host by default); the gateway
    # trusts nobody unless a load balancer stands in front of it.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default=["127.0.0.1", "::1"])

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        suite_wide = _SuiteWideEnvironment(settings_cls, env_prefix=SUITE_PREFIX)
        return (init_settings, env_settings, suite_wide, dotenv_settings, file_secret_settings)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _addresses_or_networks(cls, value: Any) -> Any:
        entries = [e.strip() for e in value.split(",")] if isinstance(value, str) else value
        entries = [entry for entry in entries if entry]
        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or network: {entry!r}") from None
        return entries

    def model_post_init(self, context: Any, /) -> None:
        if not self.auth_jwks_url:
            self.auth_jwks_url = f"{self.auth_issuer.rstrip('/')}/.well-known/jwks.json"
        if not self.database_url:
            DEFAULT_DATA_DIR.mkdir(parents=True, exist_ok=True)
            self.database_url = f"sqlite+aiosqlite:///{DEFAULT_DATA_DIR / self.service_name}.db"

    @property
    def service_client_configured(self) -> bool:
        return bool(self.identity_token_url)

    @model_validator(mode="after")
    def _service_client_complete(self) -> ServiceSettings:
        given = [
            bool(self.identity_token_url),
            bool(self.service_client_id),
            bool(self.service_client_secret.get_secret_value()),
        ]
        if any(given) and not all(given):
            raise ValueError(
                "identity_token_url, service_client_id and service_client_secret go together"
            )
        return self

    @model_validator(mode="after")
    def _kafka_security_complete(self) -> ServiceSettings:
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password.get_secret_value()
        ):
            raise ValueError(
                f"kafka_security_protocol {self.kafka_security_protocol} needs "
                "kafka_sasl_username and kafka_sasl_password"
            )
        if self.kafka_min_insync_replicas > self.kafka_replication_factor:
            raise ValueError("kafka_min_insync_replicas may not exceed kafka_replication_factor")
        return self

    @model_validator(mode="after")
    def _shutdown_fits_the_grace_period(self) -> ServiceSettings:
        if self.shutdown_delay_s > self.shutdown_grace_s / 2:
            raise ValueError("shutdown_delay_s may be at most half of shutdown_grace_s")
        return self

    @property
    def kafka_cluster(self) -> KafkaCluster:
        """How this app's Kafka clients reach the cluster (see kit.kafka.configure_cluster)."""
        return KafkaCluster(
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            sasl_username=self.kafka_sasl_username,
            sasl_password=self.kafka_sasl_password.get_secret_value(),
            ssl_ca_file=self.kafka_ssl_ca_path,
            replication_factor=self.kafka_replication_factor,
            min_insync_replicas=self.kafka_min_insync_replicas,
            group_prefix=self.kafka_topic_prefix,
        )

    def topic(self, name: str) -> str:
        """A topic's full name: ``name`` behind this deployment's prefix."""
        return f"{self.kafka_topic_prefix}{name}"

    @property
    def events_topic(self) -> str:
        """The topic this app's outbox publishes its domain events to."""
        return self.topic(f"{self.service_name}.events")


class EncryptingSettings(ServiceSettings):
    """An app that encrypts personal data (the four services): its master key. The gateway
    encrypts nothing and has no such setting: it never loads the key."""

    master_key: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_MASTER_KEY),
        description="base64 of 32 bytes; the development value only in development and test",
    )
    master_key_version: int = Field(
        default=1, ge=1, description="the version of master_key; raise it with a new key"
    )
    previous_master_keys: dict[int, SecretStr] = Field(
        default={},
        description='older master keys by version (JSON, e.g. {"1": "<base64>"}) until '
        "rotate-master-key has rewrapped every subject key; version 1 stays for the blind index",
    )

    @field_validator("master_key")
    @classmethod
    def _master_key_is_32_bytes(cls, value: SecretStr) -> SecretStr:
        _key_bytes(value, "master_key")
        return value

    @field_validator("previous_master_keys")
    @classmethod
    def _previous_keys_are_32_bytes(cls, value: dict[int, SecretStr]) -> dict[int, SecretStr]:
        for version, key in value.items():
            _key_bytes(key, f"previous_master_keys[{version}]")
        return value

    @model_validator(mode="after")
    def _versions_make_sense(self) -> EncryptingSettings:
        if any(version >= self.master_key_version for version in self.previous_master_keys):
            raise ValueError("previous_master_keys must have versions below master_key_version")
        if self.master_key_version > 1 and 1 not in self.previous_master_keys:
            raise ValueError(
                "the blind index is keyed by master key version 1: keep it in previous_master_keys"
            )
        return self

    @model_validator(mode="after")
    def _development_key_only_in_development(self) -> EncryptingSettings:
        if (
            self.master_key.get_secret_value() == DEVELOPMENT_MASTER_KEY
            and self.environment not in DEVELOPMENT_KEY_ENVIRONMENTS
        ):
            raise ValueError(
                f"the development master key may not be used in {self.environment.value}: "
                "set <APP>_MASTER_KEY (or PRIVACY_MASTER_KEY)"
            )
        return self

    @property
    def master_key_bytes(self) -> bytes:
        return base64.b64decode(self.master_key.get_secret_value())

    def field_cipher(self) -> FieldCipher:
        """The field cipher of these keys: the current one and the older ones by version."""
        previous = {
            version: base64.b64decode(key.get_secret_value())
            for version, key in self.previous_master_keys.items()
        }
        return FieldCipher(
            self.master_key_bytes, version=self.master_key_version, previous=previous
        )


def _key_bytes(value: SecretStr, name: str) -> bytes:
    try:
        raw = base64.b64decode(value.get_secret_value(), validate=True)
    except ValueError as exc:
        raise ValueError(f"{name} must be base64") from exc
    if len(raw) != 32:
        raise ValueError(f"{name} must decode to 32 bytes (AES-256)")
    return raw


class ConsentViewSettings(ServiceSettings):
    """The settings of an app that reads ``consent.state`` through a
    :class:`~kit.consent_state.ConsentStateView` (the gateway, orders, transfer)."""

    consent_state_dir: Path | None = Field(
        default=DEFAULT_DATA_DIR / "consent-state",
        description="directory of the consent view's SQLite files, one per process, kept "
        "across restarts (empty: in memory, the topic read from its beginning at each start)",
    )

    @field_validator("consent_state_dir", mode="before")
    @classmethod
    def _empty_is_memory(cls, value: Any) -> Any:
        return None if value == "" else value
