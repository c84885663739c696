"""Customer-service endpoints: users open cases and write in them; agents (staff with
``support:read`` / ``support:write``, the ``customer_service`` role) verify membership,
then read, answer and close; the privacy officer makes de-identified training exports."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, status

from kit.app import ContextDep
from kit.auth import Principal, Scope, require
from kit.db import SessionDep
from kit.errors import Forbidden
from kit.pagination import PageLimit, PageOffset
from services.orders.dependencies import Reader, Writer
from services.orders.retention.router import PolicyAdmin
from services.orders.support import service
from services.orders.support.schemas import (
    AgentCaseCreate,
    CaseCreate,
    CaseOrderView,
    CaseSummary,
    CaseView,
    MembershipCheck,
    MessageCreate,
    TrainingExportView,
)

router = APIRouter(tags=["support"])

CaseId = Annotated[str, Path(max_length=40)]


def _staff(principal: Principal) -> Principal:
    if principal.kind != "staff":  # staff-only scopes already; never rely on one check
        raise Forbidden("customer service is staff's")
    return principal


async def support_reader(
    principal: Annotated[Principal, require(Scope.SUPPORT_READ)],
) -> Principal:
    return _staff(principal)


async def support_writer(
    principal: Annotated[Principal, require(Scope.SUPPORT_WRITE)],
) -> Principal:
    return _staff(principal)


AgentReader = Annotated[Principal, Depends(support_reader)]
AgentWriter = Annotated[Principal, Depends(support_writer)]


# --------------------------------------------------------------------------- users


@router.post(
    "/support/cases",
    response_model=CaseView,
    status_code=status.HTTP_201_CREATED,
    summary="Open a case with customer service",
)
async def open_case(
    body: CaseCreate, session: SessionDep, context: ContextDep, principal: Writer
) -> CaseView:
    return await service.open_case(
        session, cipher=context.cipher, events=context.events, catalogue=context.catalogue,
        account_id=principal.subject, opened_by="user", opened_by_id=principal.subject, body=body,
    )  # fmt: skip


@router.get("/support/cases", response_model=list[CaseView], summary="The caller's cases")
async def own_cases(session: SessionDep, context: ContextDep, principal: Reader) -> list[CaseView]:
    return await service.own_cases(session, cipher=context.cipher, account_id=principal.subject)


@router.post(
    "/support/cases/{case_id}/messages",
    response_model=CaseView,
    summary="Write in one of the caller's cases",
)
async def user_message(
    case_id: CaseId, body: MessageCreate, session: SessionDep, context: ContextDep,
    principal: Writer,
) -> CaseView:  # fmt: skip
    return await service.user_message(
        session, cipher=context.cipher, events=context.events, catalogue=context.catalogue,
        account_id=principal.subject, case_id=case_id, body=body,
    )  # fmt: skip


# --------------------------------------------------------------------------- agents


@router.post(
    "/support/agent/cases",
    response_model=CaseView,
    status_code=status.HTTP_201_CREATED,
    summary="Open a case for a user (messages stay masked until membership is verified)",
)
async def agent_open_case(
    body: AgentCaseCreate, session: SessionDep, context: ContextDep, agent: AgentWriter
) -> CaseView:
    return await service.open_case(
        session, cipher=context.cipher, events=context.events, catalogue=context.catalogue,
        account_id=body.account_id, opened_by="agent", opened_by_id=agent.subject,
        body=CaseCreate.model_validate(body.model_dump(exclude={"account_id"})),
    )  # fmt: skip


@router.get(
    "/support/agent/cases",
    response_model=list[CaseSummary],
    summary="Cases, newest first (no personal data)",
)
async def list_cases(
    session: SessionDep,
    agent: AgentReader,
    case_status: Annotated[Literal["open", "closed"] | None, Query(alias="status")] = None,
    limit: PageLimit = 50,
    offset: PageOffset = 0,
) -> list[CaseSummary]:
    return await service.list_cases(session, status=case_status, limit=limit, offset=offset)


@router.get(
    "/support/agent/cases/{case_id}",
    response_model=CaseView,
    summary="A case; its messages only once the user's membership is verified",
)
async def agent_case(
    case_id: CaseId, session: SessionDep, context: ContextDep, agent: AgentReader
) -> CaseView:
    return await service.agent_case(session, cipher=context.cipher, case_id=case_id)


@router.post(
    "/support/agent/cases/{case_id}/verification",
    response_model=CaseView,
    summary="Verify the user's membership: an order number and its phone's last 4 digits",
)
async def verify(
    case_id: CaseId, body: MembershipCheck, session: SessionDep, context: ContextDep,
    agent: AgentWriter,
) -> CaseView:  # fmt: skip
    return await service.verify(
        session, cipher=context.cipher, events=context.events, catalogue=context.catalogue,
        agent_id=agent.subject, case_id=case_id, check=body,
    )  # fmt: skip


@router.get(
    "/support/agent/cases/{case_id}/order",
    response_model=CaseOrderView,
    summary="The case's order as customer_service may see it (after verification)",
)
async def case_order(
    case_id: CaseId, session: SessionDep, context: ContextDep, agent: AgentReader
) -> CaseOrderView:
    return await service.case_order(
        session, cipher=context.cipher, catalogue=context.catalogue, case_id=case_id
    )


@router.post(
    "/support/agent/cases/{case_id}/messages",
    response_model=CaseView,
    summary="Answer in a case (after verification)",
)
async def agent_message(
    case_id: CaseId, body: MessageCreate, session: SessionDep, context: ContextDep,
    agent: AgentWriter,
) -> CaseView:  # fmt: skip
    return await service.agent_message(
        session, cipher=context.cipher, events=context.events, catalogue=context.catalogue,
        agent_id=agent.subject, case_id=case_id, body=body,
    )  # fmt: skip


@router.post(
    "/support/agent/cases/{case_id}/close",
    response_model=CaseView,
    summary="Close a case (after verification)",
)
async def close(
    case_id: CaseId, session: SessionDep, context: ContextDep, agent: AgentWriter
) -> CaseView:
    return await service.close(
        session, cipher=context.cipher, events=context.events, catalogue=context.catalogue,
        agent_id=agent.subject, case_id=case_id,
    )  # fmt: skip


# --------------------------------------------------------------------------- training


@router.post(
    "/support/admin/training-exports",
    response_model=TrainingExportView,
    status_code=status.HTTP_201_CREATED,
    summary="A de-identified batch of the communication records, for model training",
)
async def training_export(
    session: SessionDep, context: ContextDep, admin: PolicyAdmin
) -> TrainingExportView:
    return await service.training_export(
        session, cipher=context.cipher, events=context.events, catalogue=context.catalogue,
        staff_id=admin.subject,
    )  # fmt: skip


@router.get(
    "/support/admin/training-exports/{export_id}",
    response_model=TrainingExportView,
    summary="A training export with its manifest",
)
async def get_training_export(
    export_id: Annotated[str, Path(max_length=40)], session: SessionDep, admin: PolicyAdmin
) -> TrainingExportView:
    return await service.get_training_export(session, export_id=export_id)
