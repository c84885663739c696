"""Account endpoints: register, the owner's view, roles, staff."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, status

from kit.app import ContextDep
from kit.auth import Principal, Scope, require
from kit.db import SessionDep
from services.identity.accounts import service
from services.identity.accounts.schemas import (
    AccountCreated,
    AccountView,
    Registration,
    RoleRequest,
    StaffCreate,
)

router = APIRouter(tags=["accounts"])


@router.post(
    "/accounts",
    response_model=AccountCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Register with a phone number and a password",
)
async def register(body: Registration, session: SessionDep, context: ContextDep) -> AccountCreated:
    return await service.register(
        session,
        cipher=context.cipher,
        events=context.events,
        phone=body.phone,
        password=body.password,
    )


@router.get("/accounts/me", response_model=AccountView, summary="The caller's account")
async def me(
    session: SessionDep,
    context: ContextDep,
    principal: Annotated[Principal, require(Scope.ACCOUNT_READ)],
) -> AccountView:
    return await service.view_own_account(
        session,
        cipher=context.cipher,
        catalogue=context.catalogue,
        account_id=principal.subject,
    )


@router.post(
    "/accounts/me/roles",
    response_model=AccountCreated,
    summary="Become a seller or content creator (needs real-name verification)",
)
async def request_role(
    body: RoleRequest,
    session: SessionDep,
    context: ContextDep,
    principal: Annotated[Principal, require(Scope.ACCOUNT_WRITE)],
) -> AccountCreated:
    return await service.grant_user_role(
        session, events=context.events, account_id=principal.subject, role=body.role
    )


@router.post(
    "/staff",
    response_model=AccountCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Create a staff account with admin roles",
)
async def create_staff(
    body: StaffCreate,
    session: SessionDep,
    context: ContextDep,
    principal: Annotated[Principal, require(Scope.ADMIN_STAFF)],
) -> AccountCreated:
    return await service.create_staff(
        session,
        cipher=context.cipher,
        events=context.events,
        phone=body.phone,
        password=body.password,
        roles=list(body.roles),
        granted_by=principal.subject,
    )
