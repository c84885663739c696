"""Gateway tables. They live in this registry, so they exist only in the gateway database."""

from sqlmodel import SQLModel

from kit.db import new_registry

registry = new_registry()


class GatewayModel(SQLModel, registry=registry):
    """Base of every gateway table."""
