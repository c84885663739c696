"""Every consent-service table, gathered for Alembic (``services.consent.models.registry``).

The tables themselves live with their domain: ``policies/models.py``, ``consents/models.py``,
``rights/models.py``, ``ledger/models.py``, ``incidents/models.py``.
"""

import contextlib
import importlib

from services.consent.base import ConsentModel, registry

for _domain in ("policies", "consents", "rights", "ledger", "incidents"):
    with contextlib.suppress(ModuleNotFoundError):
        importlib.import_module(f"services.consent.{_domain}.models")

__all__ = ["ConsentModel", "registry"]
