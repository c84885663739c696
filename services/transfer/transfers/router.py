"""Transfers: an administrator's request and records; the user's own list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from kit.app import ContextDep
from kit.auth import Principal, Scope, require
from kit.db import SessionDep
from kit.pagination import PageLimit, PageOffset
from services.transfer.dependencies import ChecksDep
from services.transfer.transfers import service
from services.transfer.transfers.schemas import (
    TransferCreate,
    TransferDetail,
    TransferStatus,
    TransferView,
    UserTransferView,
)

router = APIRouter(prefix="/transfers", tags=["transfers"])
Admin = Annotated[Principal, require(Scope.ADMIN_TRANSFERS)]
User = Annotated[Principal, require(Scope.CONSENT_READ)]


@router.post(
    "",
    response_model=TransferView,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Request a transfer; it is checked at once and delivered by the worker",
)
async def request_transfer(
    body: TransferCreate, session: SessionDep, context: ContextDep, admin: Admin, checks: ChecksDep
) -> TransferView:
    return await service.create_transfer(
        session, events=context.events, request=body, requested_by=admin.subject, checks=checks
    )


@router.get("", response_model=list[TransferView], summary="Transfers, newest first")
async def list_transfers(
    *,
    session: SessionDep,
    admin: Admin,
    subject: str | None = None,
    recipient_id: str | None = None,
    status: TransferStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[TransferView]:
    return await service.list_transfers(
        session, subject=subject, recipient_id=recipient_id, status=status, limit=limit
    )


@router.get(
    "/me",
    response_model=list[UserTransferView],
    summary="My data sent abroad: to whom, what, when, and how to exercise my rights",
)
async def my_transfers(
    session: SessionDep,
    context: ContextDep,
    user: User,
    limit: PageLimit = 100,
    offset: PageOffset = 0,
) -> list[UserTransferView]:
    return await service.my_transfers(
        session, catalogue=context.catalogue, subject=user.subject, limit=limit, offset=offset
    )


@router.get(
    "/{transfer_id}", response_model=TransferDetail, summary="One transfer with every attempt"
)
async def get_transfer(transfer_id: str, session: SessionDep, admin: Admin) -> TransferDetail:
    return await service.get_transfer(session, transfer_id=transfer_id)
