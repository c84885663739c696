"""``GET /transfer/orders/{order_id}``: the transfer service reads the fields a cross-border
transfer needs, with a service token for the purpose ``cross_border.transfer``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from kit.app import ContextDep
from kit.auth import Principal, current_principal
from kit.db import SessionDep
from services.orders.transfer import service
from services.orders.transfer.schemas import TransferOrderFields

router = APIRouter(tags=["transfer"])


async def transfer_service(
    principal: Annotated[Principal, Depends(current_principal)],
) -> str:
    return service.check_caller(principal)


@router.get(
    "/transfer/orders/{order_id}",
    response_model=TransferOrderFields,
    summary="The named fields of a subject's order, as cross_border.transfer may see them",
    responses={
        403: {"description": "not an internal service with service:cross_border.transfer"},
        404: {"description": "no such order for that subject"},
        410: {"description": "the order's personal data is gone"},
    },
)
async def transfer_order_fields(
    *,
    order_id: Annotated[str, Path(max_length=40)],
    subject: Annotated[str, Query(min_length=1, max_length=40)],
    fields: Annotated[str, Query(max_length=2100, pattern=service.FIELDS_PATTERN)],
    session: SessionDep,
    context: ContextDep,
    actor: Annotated[str, Depends(transfer_service)],
) -> TransferOrderFields:
    return await service.transfer_fields(
        session,
        cipher=context.cipher,
        events=context.events,
        catalogue=context.catalogue,
        actor=actor,
        order_id=order_id,
        subject=subject,
        fields=service.parse_fields(fields),
    )
