"""Consent tables. They live in this registry, so they exist only in the consent database."""

from sqlmodel import SQLModel

from kit.db import new_registry

registry = new_registry()


class ConsentModel(SQLModel, registry=registry):
    """Base of every consent table."""
