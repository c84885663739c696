"""Identity tables. They live in this registry, so they exist only in the identity database.

Personal values (phone, real name, ID number) are stored only as ciphertext under the
subject's key (``kit.crypto``) with a keyed blind index for look-ups; never in clear.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from kit.db import new_registry, timestamp_column
from kit.models import utcnow

registry = new_registry()


class IdentityModel(SQLModel, registry=registry):
    """Base of every identity table."""


class Account(IdentityModel, table=True):
    """A user or staff account. ``id`` is the pseudonymous subject used everywhere else."""

    id: str = Field(primary_key=True, max_length=40)
    kind: str = Field(max_length=10, description="user or staff")
    phone_index: str = Field(max_length=64, unique=True)
    phone_encrypted: str
    password_hash: str
    roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="active", max_length=20, description="active or deleted")
    verification_level: str = Field(default="none", max_length=20)
    minor: bool = False
    guardian_account_id: str | None = Field(default=None, max_length=40)
    guardian_consent_at: datetime | None = Field(
        default=None, sa_column=timestamp_column(nullable=True)
    )
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())

    @property
    def verified(self) -> bool:
        return self.verification_level != "none"


class RefreshToken(IdentityModel, table=True):
    """One refresh token of a login's family; only its hash is kept. A used token whose
    family is presented again revokes the whole family (reuse detection)."""

    __tablename__ = "refresh_token"

    id: str = Field(primary_key=True, max_length=40)
    family_id: str = Field(index=True, max_length=40)
    account_id: str = Field(index=True, max_length=40)
    token_hash: str = Field(unique=True, max_length=64)
    client_type: str = Field(max_length=20)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    expires_at: datetime = Field(sa_column=timestamp_column())
    used_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))


class SigningKeyRecord(IdentityModel, table=True):
    """A token-signing key. The private key is encrypted; the public JWK is published
    until every token it signed has expired."""

    __tablename__ = "signing_key"

    kid: str = Field(primary_key=True, max_length=128)
    alg: str = Field(max_length=10)
    private_pem_encrypted: str
    public_jwk: dict[str, str] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    retired_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))


class PartnerClient(IdentityModel, table=True):
    """A partner's OAuth2 client: who it is, under which agreement, assessed when and how,
    and the purposes it may serve. Only the secret's hash is kept."""

    __tablename__ = "partner_client"

    client_id: str = Field(primary_key=True, max_length=40)
    secret_hash: str
    name: str = Field(max_length=200)
    contact: str = Field(max_length=200)
    kind: str = Field(max_length=30)
    agreement_type: str = Field(max_length=30)
    agreement_reference: str = Field(max_length=200)
    assessment_date: date
    assessment_result: str = Field(max_length=20)
    assessment_valid_until: date
    purposes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="active", max_length=20, description="active or revoked")
    created_by: str = Field(max_length=40)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class ServiceClient(IdentityModel, table=True):
    """An internal service's OAuth2 client (``svc_...``), registered only from the command
    line. Its scopes (``service:<purpose>``) name the purposes it may call other services
    under. Only the secret's hash is kept."""

    __tablename__ = "service_client"

    client_id: str = Field(primary_key=True, max_length=40)
    secret_hash: str
    name: str = Field(max_length=100, unique=True)
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="active", max_length=20, description="active or revoked")
    created_by: str = Field(max_length=40)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class NetworkIdentity(IdentityModel, table=True):
    """An authentication through the national network identity service (OB-L-11): the
    result's level and the pseudonymous network number (网号) only, never a name or an ID
    number (the service gives none)."""

    __tablename__ = "network_identity"

    account_id: str = Field(primary_key=True, max_length=40)
    network_number: str = Field(unique=True, max_length=64)
    level: str = Field(max_length=20, description="real_name or real_person")
    reference: str = Field(
        default="", max_length=100, description="the service's transaction id, for audits"
    )
    verified_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class RealNameVerification(IdentityModel, table=True):
    """A completed real-name (or real-person) verification. Name and ID number are
    ciphertext; ``id_number_index`` is their blind index (one account per ID number).
    Face images are never stored."""

    __tablename__ = "real_name_verification"

    account_id: str = Field(primary_key=True, max_length=40)
    real_name_encrypted: str
    id_number_encrypted: str
    id_number_index: str = Field(unique=True, max_length=64)
    level: str = Field(max_length=20, description="real_name or real_person")
    provider_reference: str = Field(
        default="", max_length=100, description="the authority's transaction id, for audits"
    )
    minor_until: date | None = Field(default=None, description="the day the subject turns 14")
    verified_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class LoginThrottle(IdentityModel, table=True):
    """Failures per key (a phone's blind index, whether or not an account has it; a
    device cookie; a client address; an account's verifications) within the current
    window, and until when the key is refused (logins)."""

    __tablename__ = "login_throttle"

    key: str = Field(primary_key=True, max_length=100)
    failures: int = 0
    window_started_at: datetime = Field(sa_column=timestamp_column())
    locked_until: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))


class SecurityFlag(IdentityModel, table=True):
    """An account flagged by identity's anti-fraud rules (``kit.fraud``; policy 2F): the
    rule, the counts it saw, how often and when. Ids and counts only, no personal value."""

    __tablename__ = "security_flag"
    __table_args__ = (UniqueConstraint("account_id", "rule"),)

    id: str = Field(primary_key=True, max_length=40)
    account_id: str = Field(max_length=40)
    rule: str = Field(max_length=40)
    evidence: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    times: int = 1
    first_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    last_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column(index=True))


class SmsCode(IdentityModel, table=True):
    """The live SMS code of a phone (one at a time): only its keyed hash, bound to the
    phone's blind index; used once, tried at most ``sms_code_max_tries`` times."""

    __tablename__ = "sms_code"

    id: str = Field(primary_key=True, max_length=40)
    phone_index: str = Field(index=True, max_length=64)
    code_hash: str = Field(max_length=64)
    tries: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    expires_at: datetime = Field(sa_column=timestamp_column())
    used_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))


class MiniProgramIdentity(IdentityModel, table=True):
    """An account's identity at a mini-program platform: the openid (personal data) as a
    keyed blind index and as ciphertext under the subject's key; the platform's
    ``session_key`` as ciphertext, removed at logout and deletion."""

    __tablename__ = "mini_program_identity"

    id: str = Field(primary_key=True, max_length=40)
    account_id: str = Field(index=True, max_length=40)
    platform: str = Field(max_length=20)
    app_id: str = Field(max_length=64)
    openid_index: str = Field(unique=True, max_length=64)
    openid_encrypted: str
    unionid_encrypted: str | None = None
    session_key_encrypted: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
