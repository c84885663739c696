"""Internal service clients and their client-credentials grant. No HTTP here.

A service client is registered only by an operator on the command line
(``python -m services.identity create-service-client``), never over HTTP: there is no
route that makes one. Its client id is ``svc_...``; its secret is shown once and only its
argon2id hash is kept. Its scopes are service scopes (``service:<purpose>``) whose purposes
the catalogue knows, and a token it gets carries a subset of them, with exactly the
purposes they name (OB-4-7: only authorised parties, and only for a stated purpose).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit import contracts
from kit.auth import SERVICE_SCOPES, service_purpose
from kit.catalogue import Catalogue
from kit.crypto import FieldCipher
from kit.errors import Conflict, DomainError, NotFound
from kit.ids import new_id
from kit.outbox import EventWriter
from services.identity.config import Settings
from services.identity.models import ServiceClient
from services.identity.secrets import hash_secret, new_token, verify_secret
from services.identity.tokens.schemas import TokenResponse
from services.identity.tokens.service import InvalidClient, InvalidScope, issue_service_token

SERVICE_CLIENT_PREFIX: Final = "svc"
EVENT_PREFIX: Final = "com.signature.identity.service_client"
_NAME_RE: Final = re.compile(r"[a-z][a-z0-9_-]{0,99}")


class InvalidServiceClient(DomainError):
    status, code, title = 422, "invalid-service-client", "Invalid service client"


@dataclass(frozen=True)
class ServiceClientCreated:
    client_id: str
    name: str
    scopes: list[str]
    client_secret: str = field(repr=False)


def is_service_client_id(client_id: str) -> bool:
    return client_id.startswith(f"{SERVICE_CLIENT_PREFIX}_")


def _checked_scopes(scopes: Iterable[str], catalogue: Catalogue) -> list[str]:
    wanted = sorted(set(scopes))
    if not wanted:
        raise InvalidServiceClient("a service client needs at least one service scope")
    foreign = [scope for scope in wanted if scope not in SERVICE_SCOPES]
    if foreign:
        raise InvalidServiceClient(
            "not service scopes: " + " ".join(foreign) + " (a service scope is service:<purpose>)"
        )
    unknown = [s for s in wanted if not catalogue.has_purpose(service_purpose(s))]
    if unknown:
        raise InvalidServiceClient("purposes not in the catalogue: " + " ".join(unknown))
    return wanted


async def create_service_client(
    session: AsyncSession,
    *,
    events: EventWriter,
    catalogue: Catalogue,
    name: str,
    scopes: Iterable[str],
    created_by: str = "cli",
) -> ServiceClientCreated:
    """Register a service client; the secret is in the result and nowhere else."""
    if not _NAME_RE.fullmatch(name):
        raise InvalidServiceClient("the name is 1-100 of a-z, 0-9, _ and -, from a letter")
    checked = _checked_scopes(scopes, catalogue)
    if await session.scalar(select(ServiceClient).where(col(ServiceClient.name) == name)):
        raise Conflict(f"a service client named {name} exists already")
    secret = new_token("scs")
    client = ServiceClient(
        client_id=new_id(SERVICE_CLIENT_PREFIX),
        secret_hash=await hash_secret(secret),
        name=name,
        scopes=checked,
        created_by=created_by,
    )
    session.add(client)
    await session.flush()
    events.add(
        session,
        type=f"{EVENT_PREFIX}.registered.v1",
        subject=client.client_id,
        purpose="account",
        data=contracts.ServiceClientRegistered(service=name, scopes=checked, by=created_by),
    )
    return ServiceClientCreated(
        client_id=client.client_id, name=name, scopes=checked, client_secret=secret
    )


async def revoke_service_client(
    session: AsyncSession, *, events: EventWriter, client_id: str, revoked_by: str = "cli"
) -> None:
    """No new tokens from now on; tokens issued before live until their ``exp``."""
    client = await session.get(ServiceClient, client_id)
    if client is None:
        raise NotFound("no such service client")
    client.status = "revoked"
    events.add(
        session,
        type=f"{EVENT_PREFIX}.revoked.v1",
        subject=client_id,
        purpose="account",
        data=contracts.Revoked(by=revoked_by),
    )


async def service_client_token(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    settings: Settings,
    client_id: str,
    client_secret: str,
    scope: str | None,
) -> TokenResponse:
    """The client-credentials grant for a service client: scopes within its registered
    ones (all of them when none are asked for)."""
    client = await session.get(ServiceClient, client_id)
    secret_ok = await verify_secret(client_secret, client.secret_hash if client else None)
    if client is None or not secret_ok or client.status != "active":
        raise InvalidClient("unknown client, wrong secret, or revoked service client")
    allowed = frozenset(client.scopes) & SERVICE_SCOPES
    requested = frozenset(scope.split()) if scope else allowed
    if not requested or not requested <= allowed:
        raise InvalidScope(
            "requested scopes beyond the service client's: " + " ".join(sorted(requested - allowed))
        )
    return await issue_service_token(
        session, cipher=cipher, settings=settings, client_id=client.client_id, scopes=requested
    )
