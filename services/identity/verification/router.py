"""HTTP for verification: thin handlers over :mod:`.service`.

- ``POST /verifications``       verify the caller (201 -> VerificationResult); scope
  ``verification:write``
- ``POST /verifications/real-person``  raise it to real-person level with a face image
  (purpose ``sensitive.face_verification``: through the gateway only with that separate
  consent); scope ``verification:write``
- ``GET  /verifications/me``    the caller's verification, masked (404 if none); scope
  ``account:read``
- ``POST /guardianships``       the caller becomes a minor's guardian (201); scope
  ``verification:write``

``routers`` lists both routers for the app factory. The authority adapter comes from
``request.app.state.authority`` (set at start-up from
:func:`~.authority.authority_from_settings`). Errors leave as problem+json through the
kit's handlers: :class:`~.authority.ProviderUnavailable` is a 503 with ``Retry-After``
(nothing written) and :class:`~.service.VerificationFailed` a 422 that keeps only the
outcome event.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter

from kit.app import ContextDep
from kit.auth import Principal, Scope, require
from kit.clock import china_today
from kit.db import SessionDep
from kit.errors import PROBLEM_JSON, NotFound
from services.identity.dependencies import AuthorityDep, SettingsDep
from services.identity.verification import service
from services.identity.verification.schemas import (
    FaceVerificationRequest,
    GuardianLinkRequest,
    GuardianLinkResult,
    VerificationRequest,
    VerificationResult,
)

__all__ = ["guardianship_router", "router", "routers"]

router = APIRouter(prefix="/verifications", tags=["verification"])
guardianship_router = APIRouter(prefix="/guardianships", tags=["verification"])
routers = [router, guardianship_router]

Verifier = Annotated[Principal, require(Scope.VERIFICATION_WRITE)]
Reader = Annotated[Principal, require(Scope.ACCOUNT_READ)]

_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}


@router.post(
    "",
    status_code=201,
    response_model=VerificationResult,
    summary="Verify the caller's real name (and face) with the authoritative provider",
    responses={
        409: {"description": "ID number bound to another account", **_PROBLEM},
        422: {"description": "invalid ID number, or the provider did not match", **_PROBLEM},
        503: {"description": "provider unavailable; retry after Retry-After", **_PROBLEM},
    },
)
async def create_verification(
    *,
    body: VerificationRequest,
    session: SessionDep,
    context: ContextDep,
    authority: AuthorityDep,
    settings: SettingsDep,
    principal: Verifier,
) -> VerificationResult:
    return await service.verify(
        session,
        cipher=context.cipher,
        events=context.events,
        catalogue=context.catalogue,
        authority=authority,
        account_id=principal.subject,
        request=body,
        today=china_today(),
        max_failures=settings.verification_max_failures,
        window_s=settings.verification_window_s,
    )


@router.post(
    "/real-person",
    status_code=201,
    response_model=VerificationResult,
    summary="Raise the caller's verification to real-person level with a face image",
    responses={
        409: {"description": "no real-name verification yet", **_PROBLEM},
        422: {"description": "the provider did not match the face", **_PROBLEM},
        503: {"description": "provider unavailable; retry after Retry-After", **_PROBLEM},
    },
)
async def create_real_person_verification(
    *,
    body: FaceVerificationRequest,
    session: SessionDep,
    context: ContextDep,
    authority: AuthorityDep,
    settings: SettingsDep,
    principal: Verifier,
) -> VerificationResult:
    return await service.verify_face(
        session,
        cipher=context.cipher,
        events=context.events,
        catalogue=context.catalogue,
        authority=authority,
        account_id=principal.subject,
        face_image=body.face_image,
        today=china_today(),
        max_failures=settings.verification_max_failures,
        window_s=settings.verification_window_s,
    )


@router.get(
    "/me",
    response_model=VerificationResult,
    summary="The caller's verification, masked",
    responses={404: {"description": "not verified", **_PROBLEM}},
)
async def read_my_verification(
    session: SessionDep, context: ContextDep, principal: Reader
) -> VerificationResult:
    result = await service.read_own(
        session,
        cipher=context.cipher,
        events=context.events,
        catalogue=context.catalogue,
        account_id=principal.subject,
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
        403: {"description": "the caller is not a verified adult", **_PROBLEM},
        404: {"description": "no verified minor matches the name and ID number", **_PROBLEM},
        409: {"description": "the minor has another guardian", **_PROBLEM},
    },
)
async def link_guardian(
    body: GuardianLinkRequest, session: SessionDep, context: ContextDep, principal: Verifier
) -> GuardianLinkResult:
    return await service.link_guardian(
        session,
        cipher=context.cipher,
        events=context.events,
        guardian_account_id=principal.subject,
        request=body,
        today=china_today(),
    )
