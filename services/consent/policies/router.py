"""Policy endpoints. Public (no token): the current version as JSON and as a page, the
archive, one version, a diff. Admins (``admin:policy``) publish; there is no route that
changes or deletes a version. Users (``consent:write`` / ``consent:read``) agree to a
version and read their receipts and whether renewed consent is needed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from kit.app import AppContext, ContextDep
from kit.auth import Principal, Scope, require
from kit.clock import china_today
from kit.db import SessionDep
from kit.http_cache import IMMUTABLE, NOT_MODIFIED_RESPONSE, REVALIDATE, cacheable, json_answer
from kit.models import utcnow
from services.consent.config import Settings
from services.consent.consents import service as consents_service
from services.consent.lists import service as lists_service
from services.consent.policies import guide, service
from services.consent.policies.guide import PrivacyGuide
from services.consent.policies.page import CONTENT_SECURITY_POLICY
from services.consent.policies.schemas import (
    VERSION_PATTERN,
    AgreementCreate,
    AgreementReceipt,
    MyAgreements,
    PolicyDiff,
    PolicyVersionCreate,
    PolicyVersionSummary,
    PolicyVersionView,
)

router = APIRouter(tags=["policies"])
Admin = Annotated[Principal, require(Scope.ADMIN_POLICY)]
Writer = Annotated[Principal, require(Scope.CONSENT_WRITE)]
Reader = Annotated[Principal, require(Scope.CONSENT_READ)]
VersionPath = Annotated[str, Path(pattern=VERSION_PATTERN)]


@router.post(
    "/policy/versions",
    response_model=PolicyVersionView,
    status_code=status.HTTP_201_CREATED,
    summary="Publish a new policy version (immutable once published)",
    responses={409: {"description": "the version is already published"}},
)
async def publish(
    body: PolicyVersionCreate, session: SessionDep, context: ContextDep, admin: Admin
) -> PolicyVersionView:
    return await service.publish_version(
        session,
        events=context.events,
        request=body,
        published_by=admin.subject,
        today=china_today(),
    )


@router.get(
    "/policy",
    response_model=PolicyVersionView,
    summary="The policy in effect today",
    responses=NOT_MODIFIED_RESPONSE,
)
async def current(session: SessionDep, request: Request) -> Response:
    view = await service.current_version(session, today=china_today())
    return cacheable(
        request,
        json_answer(view),
        cache_control=REVALIDATE,
        last_modified=service.in_effect_since(view),
    )


@router.get(
    "/policy.html",
    response_class=HTMLResponse,
    summary="The policy page: the version in effect, or an archived one",
    responses=NOT_MODIFIED_RESPONSE,
)
async def page(
    session: SessionDep,
    request: Request,
    version: Annotated[str | None, Query(pattern=VERSION_PATTERN)] = None,
) -> Response:
    html = await service.policy_page(session, version=version, today=china_today())
    answer = HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )
    return cacheable(request, answer, cache_control=REVALIDATE)


@router.get(
    "/mini-program/privacy-guide",
    response_model=PrivacyGuide,
    response_model_by_alias=True,
    summary="The mini-program privacy guide and requiredPrivateInfos, of the policy in effect",
)
async def privacy_guide(session: SessionDep, context: ContextDep) -> PrivacyGuide:
    return await _guide(session, context)


async def _guide(session: AsyncSession, context: AppContext) -> PrivacyGuide:
    await service.current_version(session, today=china_today())  # 404 with no policy yet
    lists = await lists_service.current_lists(
        session, catalogue=context.catalogue, today=china_today(), now=utcnow()
    )
    return guide.build_guide(context.catalogue, lists)


@router.get(
    "/mini-program/privacy-guide.html",
    response_class=HTMLResponse,
    summary="The mini-program privacy guide as a page",
)
async def privacy_guide_page(session: SessionDep, context: ContextDep) -> HTMLResponse:
    return HTMLResponse(
        guide.render_guide_page(await _guide(session, context)),
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


@router.get(
    "/policy/versions",
    response_model=list[PolicyVersionSummary],
    summary="Every published version, newest first (the archive)",
    responses=NOT_MODIFIED_RESPONSE,
)
async def archive(session: SessionDep, request: Request) -> Response:
    versions = await service.list_versions(session, today=china_today())
    return cacheable(request, json_answer(list(versions)), cache_control=REVALIDATE)


@router.get(
    "/policy/versions/{version}",
    response_model=PolicyVersionView,
    summary="One version (its text never changes; its status does, so caches revalidate)",
    responses=NOT_MODIFIED_RESPONSE,
)
async def one_version(version: VersionPath, session: SessionDep, request: Request) -> Response:
    view = await service.get_version(session, version=version, today=china_today())
    return cacheable(request, json_answer(view), cache_control=REVALIDATE)


@router.get(
    "/policy/diff",
    response_model=PolicyDiff,
    summary="A unified diff of two versions (immutable: published texts never change)",
    responses=NOT_MODIFIED_RESPONSE,
)
async def diff(
    session: SessionDep,
    request: Request,
    from_version: Annotated[str, Query(alias="from", pattern=VERSION_PATTERN)],
    to_version: Annotated[str, Query(alias="to", pattern=VERSION_PATTERN)],
) -> Response:
    found = await service.diff_versions(session, from_version=from_version, to_version=to_version)
    return cacheable(request, json_answer(found), cache_control=IMMUTABLE)


@router.post(
    "/policy/agreements",
    response_model=AgreementReceipt,
    status_code=status.HTTP_201_CREATED,
    summary="Agree to a policy version; returns the receipt",
    responses={409: {"description": "the version has been replaced by a newer one"}},
)
async def agree(
    body: AgreementCreate, session: SessionDep, context: ContextDep, user: Writer
) -> AgreementReceipt:
    receipt = await service.agree(
        session,
        events=context.events,
        subject=user.subject,
        version=body.version,
        channel=user.client_type,
        today=china_today(),
    )
    settings = context.settings
    assert isinstance(settings, Settings)
    await consents_service.publish_state(  # the agreement is part of the published state
        session,
        events=context.events,
        catalogue=context.catalogue,
        state_topic=settings.topic(settings.consent_state_topic),
        subject=user.subject,
    )
    return receipt


@router.get(
    "/policy/agreements/me",
    response_model=MyAgreements,
    summary="My agreements, and whether I must agree to a newer version",
)
async def my_agreements(session: SessionDep, user: Reader) -> MyAgreements:
    return await service.my_agreements(session, subject=user.subject, today=china_today())
