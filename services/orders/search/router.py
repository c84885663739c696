"""Search endpoints (users): search goods, see and delete the search history, and the
recommendations fed by searches made with the ``recommendation.personalised`` consent
(the gateway refuses that route without it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from kit.app import ContextDep
from kit.db import SessionDep
from services.orders.dependencies import Reader, Writer
from services.orders.location.router import ConsentDep
from services.orders.search import service
from services.orders.search.schemas import (
    HistoryCleared,
    Recommendations,
    SearchHistoryView,
    SearchRequest,
    SearchResults,
)

router = APIRouter(tags=["search"])

EntryId = Annotated[str, Path(max_length=40)]


@router.post(
    "/search",
    response_model=SearchResults,
    summary="Search goods by text; the search joins the caller's search history",
)
async def search(
    body: SearchRequest,
    session: SessionDep,
    context: ContextDep,
    principal: Writer,
    consent_granted: ConsentDep,
) -> SearchResults:
    return await service.search(
        session,
        cipher=context.cipher,
        events=context.events,
        catalogue=context.catalogue,
        owner_id=principal.subject,
        query=body.query,
        consent_granted=consent_granted,
    )


@router.get(
    "/search/history", response_model=SearchHistoryView, summary="The caller's search history"
)
async def history(session: SessionDep, context: ContextDep, principal: Reader) -> SearchHistoryView:
    return await service.history(session, cipher=context.cipher, owner_id=principal.subject)


@router.delete(
    "/search/history/{entry_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete one entry of the caller's search history",
)
async def delete_entry(
    entry_id: EntryId, session: SessionDep, context: ContextDep, principal: Writer
) -> None:
    await service.delete_entry(
        session,
        events=context.events,
        catalogue=context.catalogue,
        owner_id=principal.subject,
        entry_id=entry_id,
    )


@router.delete(
    "/search/history",
    response_model=HistoryCleared,
    summary="Delete the caller's whole search history",
)
async def clear_history(
    session: SessionDep, context: ContextDep, principal: Writer
) -> HistoryCleared:
    return await service.clear_history(
        session, events=context.events, catalogue=context.catalogue, owner_id=principal.subject
    )


@router.get(
    "/search/recommendations",
    response_model=Recommendations,
    summary="Goods recommended from the caller's searches made with the consent",
)
async def recommendations(
    session: SessionDep, context: ContextDep, principal: Reader
) -> Recommendations:
    return await service.recommendations(
        session,
        cipher=context.cipher,
        events=context.events,
        catalogue=context.catalogue,
        owner_id=principal.subject,
    )
