"""Consent settings: ``CONSENT_*`` variables, falling back to the suite-wide ``PRIVACY_*``."""

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from kit.settings import REPO_ROOT, EncryptingSettings

DEFAULT_FIRST_POLICY = REPO_ROOT / "policy" / "privacy-policy.yaml"


class Settings(EncryptingSettings):
    service_name: ClassVar[str] = "consent"
    model_config = SettingsConfigDict(env_prefix="CONSENT_", extra="ignore")

    # The policy published at first start, when no version exists yet (an operator's own
    # text replaces the shipped one; None publishes nothing).
    first_policy_path: Path | None = DEFAULT_FIRST_POLICY

    @field_validator("first_policy_path", mode="before")
    @classmethod
    def _empty_publishes_nothing(cls, value: Any) -> Any:
        return None if value == "" else value

    # Topics (names behind ``kafka_topic_prefix``)
    consent_state_topic: str = "consent.state"  # compacted, keyed by subject
    notifications_topic: str = "notifications"
    ledger_source_topics: list[str] = Field(
        default=[
            "identity.events",
            "orders.events",
            "consent.events",
            "transfer.events",
            "gateway.events",
        ],
        description="topics whose processing events feed the processing ledger",
    )

    # Rights requests: every participant must answer within the deadline (PIPL art. 50
    # practice: 15 working days).
    rights_participants: list[str] = ["identity", "orders", "transfer", "consent"]
    rights_deadline_working_days: int = Field(default=15, ge=1)
    rights_overdue_check_interval_s: float = Field(default=3600, gt=0)
    service_urls: dict[str, str] = {
        "identity": "http://127.0.0.1:8001",
        "orders": "http://127.0.0.1:8002",
        "consent": "http://127.0.0.1:8003",
        "transfer": "http://127.0.0.1:8004",
    }
    # The access export calls each participant's ``/rights/export/{subject}`` with a service
    # token for ``rights.access`` (the service client settings of ``ServiceSettings``, made
    # with ``python -m services.identity create-service-client --name consent
    # --scope service:rights.access``); without them the export answers 503.
    rights_export_timeout_s: float = Field(default=10.0, gt=0)
    # Portability (OB-L-4): the copy goes only to a user who signed in with their password
    # this recently, to the destination they name over HTTPS (plain HTTP only to these
    # hosts: a test's stand-in processor on the same machine).
    portability_reverify_s: int = Field(
        default=300,
        ge=30,
        description="a portability copy leaves only this long after the user's password sign-in",
    )
    portability_plain_http_hosts: list[str] = Field(
        default=[],
        description="hosts a portability copy may reach over plain HTTP (tests); others: HTTPS",
    )
    portability_timeout_s: float = Field(
        default=10.0, gt=0, description="how long the destination has to take a copy"
    )

    # Incidents: above this many affected users, a public announcement replaces notices.
    incident_announcement_threshold: int = Field(default=10_000, ge=1)
    # National Cybersecurity Incident Reporting Measures (2025): a reportable incident is
    # reported to the regulator within 4 hours of discovery, 1 hour for an operator of
    # critical information infrastructure (OB-L-10).
    critical_infrastructure_operator: bool = Field(
        default=False,
        description="a CII operator: a reportable incident's report is due 1 hour after "
        "discovery instead of 4",
    )
