"""``POST /verifications/network-identity``: authenticate with the national network
identity service (OB-L-11)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request

from kit.app import ContextDep
from kit.auth import Principal, Scope, require
from kit.db import SessionDep
from services.identity.network_identity import service
from services.identity.network_identity.adapter import NetworkIdentityAdapter
from services.identity.network_identity.schemas import NetworkIdentityRequest, NetworkIdentityView

router = APIRouter(prefix="/verifications", tags=["verification"])
Verifier = Annotated[Principal, require(Scope.VERIFICATION_WRITE)]


@router.post(
    "/network-identity",
    status_code=201,
    response_model=NetworkIdentityView,
    summary="Authenticate with the national network identity service (网号/网证): only the "
    "result and the pseudonymous network number are kept",
)
async def network_identity(
    body: NetworkIdentityRequest,
    request: Request,
    session: SessionDep,
    context: ContextDep,
    principal: Verifier,
) -> NetworkIdentityView:
    adapter: NetworkIdentityAdapter | None = getattr(request.app.state, "network_identity", None)
    return await service.authenticate(
        session,
        events=context.events,
        adapter=adapter,
        account_id=principal.subject,
        credential=body.credential,
    )
