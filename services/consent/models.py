"""Every consent-service table, gathered for Alembic (``services.consent.models.registry``).

The tables live with their domain: ``policies/models.py``, ``consents/models.py``,
``rights/models.py``, ``ledger/models.py``, ``incidents/models.py``, ``lists/models.py``.
"""

from services.consent.base import ConsentModel, registry
from services.consent.consents import models as consents_models
from services.consent.incidents import models as incidents_models
from services.consent.ledger import models as ledger_models
from services.consent.lists import models as lists_models
from services.consent.policies import models as policies_models
from services.consent.rights import models as rights_models

DOMAIN_MODELS = (
    policies_models,
    consents_models,
    rights_models,
    ledger_models,
    incidents_models,
    lists_models,
)

__all__ = ["DOMAIN_MODELS", "ConsentModel", "registry"]
