"""The consent service's registry and table base. Each domain keeps its tables in its own
``models.py`` on this base; ``services.consent.models`` gathers them for migrations."""

from sqlmodel import SQLModel

from kit.db import new_registry

registry = new_registry()


class ConsentModel(SQLModel, registry=registry):
    """Base of every consent-service table."""
