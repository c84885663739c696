"""``GET /ledger/me``: the user's processing ledger (who processed which of their data,
when, for what, on which legal basis), newest first, with the hash chain's verdict."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from kit.app import ContextDep
from kit.auth import Principal, Scope, require
from kit.db import SessionDep
from services.consent.ledger import service
from services.consent.ledger.schemas import LedgerPage

router = APIRouter(prefix="/ledger", tags=["ledger"])
# Bounded: a deeper offset is no page anyone reads, and past 2**63 the database fails.
MAX_OFFSET = 1_000_000
Reader = Annotated[Principal, require(Scope.CONSENT_READ)]


@router.get("/me", response_model=LedgerPage, summary="My processing ledger, newest first")
async def my_ledger(
    session: SessionDep,
    context: ContextDep,
    user: Reader,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> LedgerPage:
    return await service.list_own_entries(
        session, catalogue=context.catalogue, subject=user.subject, limit=limit, offset=offset
    )
