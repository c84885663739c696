"""A participant's side of rights requests (OB-R-1): what identity, orders and transfer share.

The privacy center (consent) files a request and publishes
``com.signature.consent.rights.requested.v1`` on ``consent.events``; its ``data`` holds
``request_id``, ``kind`` (access, correction, deletion, withdraw_all, restriction,
explanation, portability), ``deadline``,
``participants`` and, for a correction, ``has_corrections``. Each participant named in
``participants`` answers on its own events topic with
``com.signature.<service>.rights.completed.v1`` (subject = the user), ``data``
``{request_id, outcome: done|partial|refused, deleted, anonymised, kept, reason}``, in the
same transaction as the changes it made (outbox). Answers carry categories, retention ids,
legal bases and dates only: never personal data.

The access export is fetched over HTTP instead (``GET /rights/export/{subject}``) by the
privacy center with a service token: kind ``service``, client type ``server``, scope
``service:rights.access``, purpose ``rights.access`` (:func:`check_caller`).

Corrections travel the other way: they may be personal data, so the event only says
``has_corrections``, and a participant that applies corrections fetches its part from the
privacy center (``GET /rights-requests/{id}/corrections/{service}``) with a service token of
its own for ``rights.access`` (:class:`CorrectionsFetcher`; the privacy center checks the
caller with :func:`check_caller` too). A participant that corrects nothing refuses without
fetching.

Kinds a participant does not handle itself are answered by :func:`answer_unsupported`:
``access`` and ``portability`` are ``done`` (the export and the copy are fetched over
HTTP); ``restriction`` is ``done`` (every app learns the restriction from the privacy
center's compacted ``consent.restrictions`` topic and refuses processing other than
storage, :mod:`kit.restriction`); ``explanation`` is ``done`` (the privacy center answers
from the catalogue and the ledger); anything else is refused as not supported.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Final, Literal, Protocol
from urllib.parse import quote

import httpx
from fastapi import Depends
from fastapi import Path as PathParam
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from kit.auth import InsufficientScope, Principal, Scope, current_principal
from kit.catalogue import Catalogue
from kit.consumer import EventConsumer, Handler
from kit.contracts import RightsCompleted
from kit.db import Database
from kit.errors import Forbidden
from kit.events import Event
from kit.outbox import EventWriter

logger = logging.getLogger("kit.rights")

PURPOSE: Final = "rights.access"
SCOPE: Final = Scope.SERVICE_RIGHTS_ACCESS
REQUESTED: Final = "com.signature.consent.rights.requested.v1"
REQUESTS_SOURCE: Final = "/consent"
REQUESTS_TOPIC: Final = "consent.events"
NOT_SUPPORTED: Final = "not supported by this service yet"
CORRECTIONS_PATH: Final = "/rights-requests/{request_id}/corrections/{service}"
MAX_CORRECTIONS_BYTES: Final = 64 * 1024

Kind = Literal[
    "access", "correction", "deletion", "withdraw_all", "restriction", "explanation", "portability"
]
Outcome = Literal["done", "partial", "refused"]
KINDS: Final = frozenset(
    {
        "access",
        "correction",
        "deletion",
        "withdraw_all",
        "restriction",
        "explanation",
        "portability",
    }
)
#: What a participant answers to the kinds it has nothing of its own to do for.
#: Purpose kinds a user cannot restrict: their own rights, and what the law imposes.
UNRESTRICTABLE_KINDS: Final = frozenset({"legal"})

ANSWERED_FOR_ALL: Final[dict[str, str]] = {
    "access": "the export is fetched from this service",
    "portability": "this service's part of the copy is fetched from its export",
    "restriction": "this service refuses processing of the restricted data other than "
    "storage until the restriction is lifted",
    "explanation": "the privacy center explains from the catalogue and the processing ledger",
}


class NotAService(Forbidden):
    code, title = "service-only", "Internal services only"


class PurposeNotAllowed(Forbidden):
    code, title = "purpose-not-allowed", "Purpose not allowed"


def check_caller(principal: Principal) -> str:
    """The calling service's client id, once it may read under ``rights.access``; else 403
    (a user, staff or partner token is refused whatever its scopes)."""
    if principal.kind != "service" or principal.client_type != "server":
        raise NotAService("only the privacy center reads a subject's export")
    if not principal.has(SCOPE):
        raise InsufficientScope([SCOPE])
    if PURPOSE not in principal.purposes:
        raise PurposeNotAllowed(
            f"this route serves the purpose {PURPOSE}, which the token does not carry",
            extra={"purpose": PURPOSE},
        )
    return principal.subject


async def _export_caller(principal: Annotated[Principal, Depends(current_principal)]) -> str:
    return check_caller(principal)


#: ``GET /rights/export/{subject}``'s caller: the calling service's client id (403 for
#: anyone else, see :func:`check_caller`), and the subject it asks about.
ExportCaller = Annotated[str, Depends(_export_caller)]
ExportSubject = Annotated[str, PathParam(min_length=1, max_length=40)]


# --------------------------------------------------------------------------- export shapes


class RetentionView(BaseModel):
    """How long an item is kept, from the catalogue."""

    id: str
    duration: str
    starts: str
    then: str
    legal_basis: str
    until: datetime | None = Field(
        default=None, description="when it goes, once its clock has started"
    )


class ExportedField(BaseModel):
    """One personal value as ``rights.access`` sees it, with what the catalogue says of it."""

    value: Any
    category: str
    purposes: list[str]
    retention: RetentionView


def retention_view(
    catalogue: Catalogue, retention_id: str, *, started: datetime | None = None
) -> RetentionView:
    period = catalogue.retention_period(retention_id)
    return RetentionView(
        id=period.id,
        duration=period.duration,
        starts=period.starts,
        then=period.then,
        legal_basis=period.legal_basis,
        until=period.expires_at(started) if started is not None else None,
    )


def exported_field(
    catalogue: Catalogue,
    resource: str,
    field: str,
    value: Any,
    *,
    started: datetime | None = None,
) -> ExportedField:
    """``value`` (already masked for ``rights.access``) with its category, the purposes the
    catalogue lets see it and its retention (``until`` when ``started`` is known)."""
    policy = catalogue.field_policy(resource, field)
    return ExportedField(
        value=value,
        category=policy.category,
        purposes=sorted(policy.purposes),
        retention=retention_view(catalogue, policy.retention, started=started),
    )


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class RightsRequested:
    request_id: str
    kind: Kind
    subject: str
    has_corrections: bool = False


def requested_of(event: Event, service: str) -> RightsRequested | None:
    """The request in ``event`` when it is a ``rights.requested`` from the privacy center
    naming ``service`` among its participants; None for any other event."""
    if event.type != REQUESTED or event.source != REQUESTS_SOURCE:
        return None
    data = event.data
    participants = data.get("participants")
    if not isinstance(participants, list) or service not in participants:
        return None
    request_id, kind = data.get("request_id"), data.get("kind")
    if not isinstance(request_id, str) or not request_id or kind not in KINDS:
        raise ValueError("a rights request event without a request id or a known kind")
    return RightsRequested(
        request_id=request_id,
        kind=kind,
        subject=event.subject,
        has_corrections=bool(data.get("has_corrections")),
    )


def completion_type(service: str) -> str:
    return f"com.signature.{service}.rights.completed.v1"


@dataclass(frozen=True)
class Kept:
    """Data kept despite a deletion request: its category, the retention that keeps it,
    why and until when (None: the clock has not started yet)."""

    category: str
    retention: str
    legal_basis: str
    until: date | None

    def as_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "category": self.category,
            "legal_basis": self.legal_basis,
            "retention": self.retention,
        }
        if self.until is not None:
            data["until"] = self.until.isoformat()
        return data


def answer(
    session: AsyncSession,
    *,
    events: EventWriter,
    service: str,
    request: RightsRequested,
    outcome: Outcome,
    deleted: Iterable[str] = (),
    anonymised: Iterable[str] = (),
    kept: Iterable[Kept] = (),
    reason: str | None = None,
) -> Event:
    """Publish ``service``'s answer through its outbox, in the caller's transaction."""
    data = RightsCompleted(
        request_id=request.request_id,
        outcome=outcome,
        deleted=sorted(set(deleted)),
        anonymised=sorted(set(anonymised)),
        kept=[item.as_data() for item in kept],
        **({"reason": reason} if reason else {}),
    )
    return events.add(
        session,
        type=completion_type(service),
        subject=request.subject,
        purpose=PURPOSE,
        data=data,
    )


def answer_unsupported(
    session: AsyncSession, *, events: EventWriter, service: str, request: RightsRequested
) -> Event:
    """The kinds of :data:`ANSWERED_FOR_ALL` are done; anything else is refused."""
    if request.kind in ANSWERED_FOR_ALL:
        return answer(
            session,
            events=events,
            service=service,
            request=request,
            outcome="done",
            reason=ANSWERED_FOR_ALL[request.kind],
        )
    return answer(
        session,
        events=events,
        service=service,
        request=request,
        outcome="refused",
        reason=NOT_SUPPORTED,
    )


def rights_consumer(
    *, service: str, topic: str, database: Database, bootstrap_servers: str, handler: Handler
) -> EventConsumer:
    """The ``<service>.rights`` consumer of the privacy center's events topic; it takes only
    the requests that name ``service``."""
    return EventConsumer(
        name=f"{service}.rights",
        topics=[topic],
        database=database,
        bootstrap_servers=bootstrap_servers,
        handler=handler,
        wants=lambda event: requested_of(event, service) is not None,
    )


# --------------------------------------------------------------------------- corrections

TokenProvider = Callable[[], Awaitable[str]]


class CorrectionsSource(Protocol):
    """Where a participant reads its part of a correction (:class:`CorrectionsFetcher`;
    tests give a stand-in)."""

    async def fetch(self, *, request_id: str, service: str) -> dict[str, Any] | None: ...


class CorrectionsUnavailable(Exception):
    """The privacy center could not be asked for the corrections now (no token,
    unreachable, an unexpected answer); the message names the failure, never a value."""


@dataclass(frozen=True)
class CorrectionsFetcher:
    """Reads one participant's part of a correction request from the privacy center
    (``GET <privacy_center_url>/rights-requests/{id}/corrections/{service}``) with a
    service token for ``rights.access``. Redirects are not followed, so the token never
    travels to another host; failed calls are tried ``attempts`` times with a doubling
    pause, then :class:`CorrectionsUnavailable`. Neither the token nor a response body is
    logged or put in an error."""

    privacy_center_url: str
    token_provider: TokenProvider
    client: httpx.AsyncClient | None = None
    timeout_s: float = 10.0
    attempts: int = 3
    backoff_s: float = 0.5
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def fetch(self, *, request_id: str, service: str) -> dict[str, Any] | None:
        """``service``'s corrections in request ``request_id``; None when the privacy
        center holds none for it (404)."""
        url = self.privacy_center_url.rstrip("/") + CORRECTIONS_PATH.format(
            request_id=quote(request_id, safe=""), service=quote(service, safe="")
        )
        failure = "not attempted"
        for attempt in range(max(self.attempts, 1)):
            if attempt:
                await self.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                token = await self.token_provider()
                response = await self._get(url, token)
            except httpx.HTTPError as exc:
                failure = f"privacy center unreachable ({type(exc).__name__})"
            except Exception as exc:  # the token provider's own failure
                failure = f"no service token ({type(exc).__name__})"
            else:
                if response.status_code == 404:
                    return None
                if response.status_code != 200:
                    failure = f"privacy center answered HTTP {response.status_code}"
                elif len(response.content) > MAX_CORRECTIONS_BYTES:
                    raise CorrectionsUnavailable("the privacy center's answer is too large")
                else:
                    return _corrections_of(response, request_id=request_id, service=service)
            logger.warning("reading corrections of %s failed: %s", request_id, failure)
        raise CorrectionsUnavailable(failure)

    async def _get(self, url: str, token: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if self.client is not None:
            return await self.client.get(
                url, headers=headers, timeout=self.timeout_s, follow_redirects=False
            )
        async with httpx.AsyncClient(follow_redirects=False) as client:
            return await client.get(url, headers=headers, timeout=self.timeout_s)


def _corrections_of(response: httpx.Response, *, request_id: str, service: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise CorrectionsUnavailable("the privacy center's answer is not JSON") from None
    if (
        not isinstance(body, dict)
        or body.get("request_id") != request_id
        or body.get("service") != service
        or not isinstance(body.get("corrections"), dict)
    ):
        raise CorrectionsUnavailable("the privacy center's answer is not this request's part")
    corrections: dict[str, Any] = body["corrections"]
    return corrections
