"""Transfer tables. They live in this registry, so they exist only in the transfer database."""

from sqlmodel import SQLModel

from kit.db import new_registry

registry = new_registry()


class TransferModel(SQLModel, registry=registry):
    """Base of every transfer table."""
