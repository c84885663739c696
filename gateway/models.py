"""Gateway tables. They live in this registry, so they exist only in the gateway database:
what the gateway learnt from the privacy center's events (policy versions, ceased purposes).
Revocations live in the kit's ``revocation`` table, as in every app."""

from datetime import date

from sqlmodel import Field, SQLModel

from kit.db import new_registry

registry = new_registry()


class GatewayModel(SQLModel, registry=registry):
    """Base of every gateway table."""


class KnownPolicyVersion(GatewayModel, table=True):
    """A policy version the privacy center published (from its events)."""

    __tablename__ = "known_policy_version"

    version: str = Field(primary_key=True, max_length=32)
    sequence: int
    major: bool
    effective_date: date


class CeasedPurpose(GatewayModel, table=True):
    """A purpose the privacy center declared ceased: refused (410) from its date on."""

    __tablename__ = "ceased_purpose"

    purpose: str = Field(primary_key=True, max_length=100)
    effective_date: date
    cessation_id: str = Field(max_length=64)
