"""HTTP for SMS sign-in: thin handlers over :mod:`.service`.

- ``POST /sms/codes``    send a code to a phone (202 -> CodeSent; 429 with Retry-After)
- ``POST /sms/sign-in``  phone and code -> tokens; a first sign-in opens the account
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from kit.app import ContextDep
from kit.db import SessionDep
from kit.errors import PROBLEM_JSON
from services.identity.dependencies import ClientAddress, SettingsDep, SmsSenderDep
from services.identity.sms import service
from services.identity.sms.schemas import CodeRequest, CodeSent, SignedIn, SmsSignIn
from services.identity.tokens.service import TOKEN_ANSWER_HEADERS, issue_account_tokens

router = APIRouter(prefix="/sms", tags=["sms sign-in"])

_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}


@router.post(
    "/codes",
    response_model=CodeSent,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a sign-in code by SMS (the same answer whether or not the phone has an account)",
    responses={
        429: {"description": "cool-down or allowance spent; see Retry-After", **_PROBLEM},
        503: {"description": "the SMS provider is unavailable", **_PROBLEM},
    },
)
async def send_code(
    *,
    body: CodeRequest,
    session: SessionDep,
    context: ContextDep,
    settings: SettingsDep,
    sender: SmsSenderDep,
    address: ClientAddress,
) -> CodeSent:
    return await service.send_code(
        session,
        cipher=context.cipher,
        settings=settings,
        sender=sender,
        phone=body.phone,
        client_address=address,
    )


@router.post(
    "/sign-in",
    response_model=SignedIn,
    summary="Sign in (or register, agreeing to the policy) with the phone and its SMS code",
    responses={401: {"description": "the code is wrong or no longer valid", **_PROBLEM}},
)
async def sign_in(
    body: SmsSignIn,
    session: SessionDep,
    context: ContextDep,
    settings: SettingsDep,
    response: Response,
) -> SignedIn:
    signed_in = await service.sign_in(
        session,
        cipher=context.cipher,
        events=context.events,
        settings=settings,
        phone=body.phone,
        code=body.code,
        policy_version=body.policy_version,
        channel=body.client_type,
    )
    tokens = await issue_account_tokens(
        session,
        cipher=context.cipher,
        settings=settings,
        account=signed_in.account,
        client_type=body.client_type,
    )
    response.headers.update(TOKEN_ANSWER_HEADERS)
    return SignedIn(**tokens.model_dump(), new_account=signed_in.new_account)
