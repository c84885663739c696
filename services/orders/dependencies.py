"""What the orders routers ask FastAPI for: who calls, with which right.

- :data:`Reader` / :data:`Writer`: a user token with ``orders:read`` / ``orders:write``
  (only user tokens can hold them: ``kit.auth.SCOPES_BY_KIND``).
- :data:`OrdersSettings`: the orders app's settings.
- :data:`CatalogueAdmin`: staff who may manage goods, prices, sale areas and discount codes:
  ``admin:catalogue`` (the ``catalogue_manager`` role), never ``admin:partners``, and a
  staff token.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from kit.app import ContextDep
from kit.auth import Principal, Scope, require
from kit.errors import Forbidden
from services.orders.config import Settings

CATALOGUE_ADMIN_SCOPE = Scope.ADMIN_CATALOGUE


async def catalogue_admin(
    principal: Annotated[Principal, require(CATALOGUE_ADMIN_SCOPE)],
) -> Principal:
    if principal.kind != "staff":  # admin scopes are staff-only already; never rely on one check
        raise Forbidden("only staff may manage goods and discounts")
    return principal


async def orders_settings(context: ContextDep) -> Settings:
    settings = context.settings
    if not isinstance(settings, Settings):
        raise RuntimeError("the orders app runs with services.orders.config.Settings")
    return settings


Reader = Annotated[Principal, require(Scope.ORDERS_READ)]
Writer = Annotated[Principal, require(Scope.ORDERS_WRITE)]
CatalogueAdmin = Annotated[Principal, Depends(catalogue_admin)]
OrdersSettings = Annotated[Settings, Depends(orders_settings)]
