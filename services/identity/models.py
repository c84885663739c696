"""Identity tables. They live in this registry, so they exist only in the identity database."""

from sqlmodel import SQLModel

from kit.db import new_registry

registry = new_registry()


class IdentityModel(SQLModel, registry=registry):
    """Base of every identity table."""
