"""``GET /ledger/me``: the user's processing ledger (who processed which of their data,
when, for what, on which legal basis), newest first, with the hash chain's verdict."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from kit.app import ContextDep
from kit.auth import Principal, Scope, require
from kit.db import ReadSessionDep
from kit.pagination import PageLimit, PageOffset
from services.consent.ledger import service
from services.consent.ledger.schemas import LedgerPage

router = APIRouter(prefix="/ledger", tags=["ledger"])
Reader = Annotated[Principal, require(Scope.CONSENT_READ)]


@router.get("/me", response_model=LedgerPage, summary="My processing ledger, newest first")
async def my_ledger(
    session: ReadSessionDep,
    context: ContextDep,
    user: Reader,
    limit: PageLimit = 50,
    offset: PageOffset = 0,
) -> LedgerPage:
    return await service.list_own_entries(
        session, catalogue=context.catalogue, subject=user.subject, limit=limit, offset=offset
    )
