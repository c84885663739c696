"""The two lists' endpoints, public like the policy (OB-L-1): the current lists as JSON
and as a page, every version, one version, and the difference between two."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse

from kit.app import ContextDep
from kit.clock import china_today
from kit.db import SessionDep
from kit.models import utcnow
from services.consent.lists import service
from services.consent.lists.page import lists_page
from services.consent.lists.schemas import ListDiff, ListVersionSummary, ListVersionView
from services.consent.policies.page import CONTENT_SECURITY_POLICY

router = APIRouter(prefix="/lists", tags=["lists"])
Number = Annotated[int, Path(ge=1, le=1_000_000)]


@router.get("", response_model=ListVersionView, summary="The current two lists")
async def current(session: SessionDep, context: ContextDep) -> ListVersionView:
    return await service.current_lists(
        session, catalogue=context.catalogue, today=china_today(), now=utcnow()
    )


@router.get(
    ".html", response_class=HTMLResponse, summary="The current two lists as a page"
)  # fmt: skip
async def page(session: SessionDep, context: ContextDep) -> HTMLResponse:
    view = await service.current_lists(
        session, catalogue=context.catalogue, today=china_today(), now=utcnow()
    )
    return HTMLResponse(
        lists_page(view, await service.list_versions(session)),
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get(
    "/versions", response_model=list[ListVersionSummary], summary="Every version, newest first"
)
async def versions(session: SessionDep) -> list[ListVersionSummary]:
    return await service.list_versions(session)


@router.get(
    "/versions/{number}",
    response_model=ListVersionView,
    summary="One version of the lists",
    responses={404: {"description": "no such version"}},
)
async def one_version(number: Number, session: SessionDep) -> ListVersionView:
    return await service.get_version(session, number=number)


@router.get(
    "/diff",
    response_model=ListDiff,
    summary="What changed in each list between two versions",
    responses={404: {"description": "no such version"}},
)
async def diff(
    session: SessionDep,
    from_version: Annotated[int, Query(alias="from", ge=1, le=1_000_000)],
    to_version: Annotated[int, Query(alias="to", ge=1, le=1_000_000)],
) -> ListDiff:
    return await service.diff_versions(session, from_version=from_version, to_version=to_version)
