"""HTTP for verification: thin handlers over :mod:`.service`.

- ``POST /verifications``          verify the caller (201 -> VerificationResult)
- ``GET  /verifications/me``       the caller's verification, masked (404 if none)
- ``POST /guardianships``          the caller becomes a minor's guardian (201)

``routers`` lists both routers for the app factory. The authority adapter is read from
``request.app.state.authority`` (set at start-up from
:func:`~.authority.authority_from_settings`). :func:`caller_account_id` is a placeholder
for the identity service's ``CurrentAccount`` dependency.

Two outcomes are answered here rather than raised, so that the request's session still
commits: :class:`~.authority.ProviderUnavailable` (503 with ``Retry-After``; nothing was
written) and :class:`~.service.VerificationFailed` (422; only the outcome event, which
holds no personal data, is kept).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse

from kit.app import ContextDep
from kit.db import SessionDep
from kit.errors import PROBLEM_JSON, DomainError, NotFound, problem
from services.identity.verification import service
from services.identity.verification.authority import AuthorityAdapter, ProviderUnavailable
from services.identity.verification.id_number import china_today
from services.identity.verification.schemas import (
    GuardianLinkRequest,
    GuardianLinkResult,
    VerificationRequest,
    VerificationResult,
)

__all__ = ["caller_account_id", "get_authority", "guardianship_router", "router", "routers"]

router = APIRouter(prefix="/verifications", tags=["verification"])
guardianship_router = APIRouter(prefix="/guardianships", tags=["verification"])
routers = [router, guardianship_router]

_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}


def caller_account_id(request: Request) -> str:
    """The authenticated caller's account id (placeholder: the lead replaces it with
    ``services.identity.dependencies.CurrentAccount``)."""
    principal = getattr(request.state, "principal", None)
    if principal is None:
        raise HTTPException(
            401, detail="authentication required", headers={"WWW-Authenticate": "Bearer"}
        )
    subject: str = principal.subject
    return subject


def get_authority(request: Request) -> AuthorityAdapter:
    authority: AuthorityAdapter | None = getattr(request.app.state, "authority", None)
    if authority is None:
        raise RuntimeError(
            "app.state.authority is not set: set it at start-up from authority_from_settings"
        )
    return authority


CallerDep = Annotated[str, Depends(caller_account_id)]
AuthorityDep = Annotated[AuthorityAdapter, Depends(get_authority)]


def _answer(request: Request, exc: DomainError) -> JSONResponse:
    response = problem(
        exc.status,
        title=exc.title,
        detail=exc.detail,
        code=exc.code,
        instance=request.url.path,
        **exc.extra,
    )
    if isinstance(exc, ProviderUnavailable):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


@router.post(
    "",
    status_code=201,
    response_model=VerificationResult,
    summary="Verify the caller's real name (and face) with the authoritative provider",
    responses={
        409: {"description": "ID number bound to another account", **_PROBLEM},
        422: {"description": "invalid ID number or verification failed", **_PROBLEM},
        503: {"description": "provider unavailable; see Retry-After", **_PROBLEM},
    },
)
async def create_verification(
    *,
    body: VerificationRequest,
    request: Request,
    session: SessionDep,
    context: ContextDep,
    authority: AuthorityDep,
    account_id: CallerDep,
) -> VerificationResult | JSONResponse:
    try:
        return await service.verify(
            session,
            cipher=context.cipher,
            events=context.events,
            catalogue=context.catalogue,
            authority=authority,
            account_id=account_id,
            request=body,
            today=china_today(),
        )
    except (ProviderUnavailable, service.VerificationFailed) as exc:
        return _answer(request, exc)


@router.get(
    "/me",
    response_model=VerificationResult,
    summary="The caller's verification, masked",
    responses={404: {"description": "not verified", **_PROBLEM}},
)
async def read_my_verification(
    session: SessionDep, context: ContextDep, account_id: CallerDep
) -> VerificationResult:
    result = await service.read_own(
        session,
        cipher=context.cipher,
        events=context.events,
        catalogue=context.catalogue,
        account_id=account_id,
        today=china_today(),
    )
    if result is None:
        raise NotFound("this account has not completed real-name verification")
    return result


@guardianship_router.post(
    "",
    status_code=201,
    response_model=GuardianLinkResult,
    summary="Become the guardian of a minor under 14, giving the guardian's consent",
    responses={
        403: {"description": "caller not verified or not an adult", **_PROBLEM},
        404: {"description": "no minor matches the name and ID number", **_PROBLEM},
        409: {"description": "the minor has another guardian", **_PROBLEM},
    },
)
async def link_guardian(
    body: GuardianLinkRequest, session: SessionDep, context: ContextDep, account_id: CallerDep
) -> GuardianLinkResult:
    return await service.link_guardian(
        session,
        cipher=context.cipher,
        events=context.events,
        guardian_account_id=account_id,
        request=body,
        today=china_today(),
    )
