"""HTTP for mini-programs: thin handlers over :mod:`.service`.

- ``POST /mini-program/sign-in``  the platform's login code -> tokens (``client_type``
  ``mini_program``); a first sign-in opens the account
- ``POST /mini-program/phone``    bind the number the platform's phone code stands for;
  scope ``account:write``
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response

from kit.app import ContextDep
from kit.auth import Principal, Scope, require
from kit.db import SessionDep
from kit.errors import PROBLEM_JSON
from services.identity.dependencies import PlatformDep, PlatformsDep, SettingsDep
from services.identity.mini_program import service
from services.identity.mini_program.schemas import (
    MiniProgramLogin,
    PhoneBinding,
    PhoneBound,
    SignedIn,
)
from services.identity.tokens.service import TOKEN_ANSWER_HEADERS, issue_account_tokens

router = APIRouter(prefix="/mini-program", tags=["mini-program"])

_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}
CLIENT_TYPE = "mini_program"


@router.post(
    "/sign-in",
    response_model=SignedIn,
    summary="Sign in (or register, agreeing to the policy) with the platform's login code",
    responses={
        401: {"description": "the platform refused the code", **_PROBLEM},
        503: {"description": "the platform is unavailable", **_PROBLEM},
    },
)
async def sign_in(
    *,
    body: MiniProgramLogin,
    session: SessionDep,
    context: ContextDep,
    settings: SettingsDep,
    platforms: PlatformsDep,
    response: Response,
) -> SignedIn:
    signed_in = await service.sign_in(
        session,
        cipher=context.cipher,
        events=context.events,
        platform=platforms[body.platform],
        code=body.code,
        policy_version=body.policy_version,
    )
    tokens = await issue_account_tokens(
        session,
        cipher=context.cipher,
        settings=settings,
        account=signed_in.account,
        client_type=CLIENT_TYPE,
    )
    response.headers.update(TOKEN_ANSWER_HEADERS)
    return SignedIn(**tokens.model_dump(), new_account=signed_in.new_account)


@router.post(
    "/phone",
    response_model=PhoneBound,
    summary="Bind the phone number the platform's getPhoneNumber code stands for",
    responses={
        401: {"description": "the platform refused the code", **_PROBLEM},
        409: {"description": "the number belongs to another account", **_PROBLEM},
        503: {"description": "the platform is unavailable", **_PROBLEM},
    },
)
async def bind_phone(
    body: PhoneBinding,
    session: SessionDep,
    context: ContextDep,
    platform: PlatformDep,
    principal: Annotated[Principal, require(Scope.ACCOUNT_WRITE)],
) -> PhoneBound:
    return await service.bind_phone(
        session,
        cipher=context.cipher,
        events=context.events,
        catalogue=context.catalogue,
        platform=platform,
        account_id=principal.subject,
        code=body.code,
    )
