"""``GET /ledger/me``: the user's processing ledger (who processed which of their data,
when, for what, on which legal basis), newest first, with the hash chain's verdict, filtered
by purpose, data category, actor and a range of days if asked; ``GET /ledger/me/choices``:
what those filters can name (the purposes, categories and actors of the user's entries)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.exceptions import RequestValidationError

from kit.app import ContextDep
from kit.auth import Principal, Scope, require
from kit.db import ReadSessionDep
from kit.pagination import PageLimit, PageOffset
from services.consent.ledger import service
from services.consent.ledger.schemas import LedgerChoices, LedgerPage

router = APIRouter(prefix="/ledger", tags=["ledger"])
Reader = Annotated[Principal, require(Scope.CONSENT_READ)]
_Id = Annotated[str | None, Query(min_length=1, max_length=200)]


async def ledger_filter(
    purpose: Annotated[
        _Id, Query(description="only entries of this purpose (catalogue id)")
    ] = None,
    category: Annotated[
        _Id,
        Query(description="only entries naming this data category or one below it"),
    ] = None,
    actor: Annotated[
        _Id, Query(description="only entries by this actor (the id an entry's who shows)")
    ] = None,
    since: Annotated[
        date | None, Query(description="only entries on or after this day, China time")
    ] = None,
    until: Annotated[
        date | None, Query(description="only entries on or before this day, China time")
    ] = None,
) -> service.LedgerFilter:
    if since is not None and until is not None and until < since:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", "until"), "msg": "until is before since"}]
        )
    return service.LedgerFilter(
        purpose=purpose, category=category, actor=actor, since=since, until=until
    )


@router.get("/me", response_model=LedgerPage, summary="My processing ledger, newest first")
async def my_ledger(
    *,
    session: ReadSessionDep,
    context: ContextDep,
    user: Reader,
    only: Annotated[service.LedgerFilter, Depends(ledger_filter)],
    limit: PageLimit = 50,
    offset: PageOffset = 0,
) -> LedgerPage:
    return await service.list_own_entries(
        session,
        catalogue=context.catalogue,
        subject=user.subject,
        limit=limit,
        offset=offset,
        only=only,
    )


@router.get(
    "/me/choices",
    response_model=LedgerChoices,
    summary="What my ledger can be filtered by: the purposes, categories and actors it names",
)
async def my_ledger_choices(
    session: ReadSessionDep, context: ContextDep, user: Reader
) -> LedgerChoices:
    return await service.own_choices(session, catalogue=context.catalogue, subject=user.subject)
