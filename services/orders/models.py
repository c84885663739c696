"""Orders tables. They live in this registry, so they exist only in the orders database."""

from sqlmodel import SQLModel

from kit.db import new_registry

registry = new_registry()


class OrdersModel(SQLModel, registry=registry):
    """Base of every orders table."""
