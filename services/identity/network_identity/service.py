"""National network identity authentication (OB-L-11). No HTTP here.

:func:`authenticate` exchanges the app's credential through the adapter and keeps only
the result, the level and the pseudonymous network number (``network_identity`` table,
one account per network number); the account's verification level rises as a real-name
verification's would, so a user who authenticates this way and one who verifies with name
and ID number get the same service, and nobody must use it. Nothing the adapter could not
return (a name, an ID number) can be stored; the credential itself is neither stored nor
logged. Events carry the outcome and level only.
"""

from __future__ import annotations

import logging
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit import contracts
from kit.errors import Conflict, DomainError, NotFound
from kit.models import utcnow
from kit.outbox import EventWriter
from services.identity.models import Account, NetworkIdentity
from services.identity.network_identity.adapter import NetworkIdentityAdapter
from services.identity.network_identity.schemas import NetworkIdentityView

logger = logging.getLogger("services.identity.network_identity")

PURPOSE: Final = "identity.verification"
RESOURCE: Final = "identity.verification"
EVENT: Final = "com.signature.identity.network_identity.completed.v1"
CATEGORY: Final = "user.government_id.network_number"
KEPT: Final = ["result", "level", "network_number", "verified_at"]
LEVELS: Final = ("none", "real_name", "real_person")


class NetworkIdentityFailed(DomainError):
    status, code, title = 422, "network-identity-failed", "Network identity not confirmed"
    # The outcome event (no personal data) is the record of the failed attempt: keep it.
    keep_changes = True


class NetworkIdentityUnavailable(DomainError):
    status, code, title = 503, "provider-unavailable", "Verification provider unavailable"


async def authenticate(
    session: AsyncSession,
    *,
    events: EventWriter,
    adapter: NetworkIdentityAdapter | None,
    account_id: str,
    credential: str,
) -> NetworkIdentityView:
    if adapter is None:
        raise NetworkIdentityUnavailable("network identity authentication is not configured")
    account = await session.get(Account, account_id, with_for_update=True)
    if account is None or account.status != "active":
        raise NotFound("no such account")
    outcome = await adapter.authenticate(credential=credential)
    if not outcome.authenticated:
        events.add(
            session,
            type=EVENT,
            subject=account_id,
            purpose=PURPOSE,
            data=contracts.NetworkIdentityCompleted(result="mismatch", level=outcome.level),
        )
        raise NetworkIdentityFailed(
            "the national network identity service did not confirm this credential"
        )
    holder = await session.scalar(
        select(NetworkIdentity).where(col(NetworkIdentity.network_number) == outcome.network_number)
    )
    if holder is not None and holder.account_id != account_id:
        raise Conflict("this network identity is already bound to another account")
    now = utcnow()
    own = await session.get(NetworkIdentity, account_id)
    if own is None:
        own = NetworkIdentity(
            account_id=account_id,
            network_number=outcome.network_number,
            level=outcome.level,
            reference=outcome.reference[:100],
            verified_at=now,
        )
        session.add(own)
    elif own.network_number != outcome.network_number:
        raise Conflict("this account is already bound to another network identity")
    else:
        own.level, own.reference, own.verified_at = outcome.level, outcome.reference[:100], now
    if LEVELS.index(outcome.level) > LEVELS.index(account.verification_level):
        account.verification_level = outcome.level
    await session.flush()
    events.add(
        session,
        type=EVENT,
        subject=account_id,
        purpose=PURPOSE,
        data=contracts.NetworkIdentityCompleted(result="match", level=outcome.level),
    )
    events.processing(
        session,
        subject=account_id,
        actor=account_id,
        action="write",
        purpose=PURPOSE,
        resource=RESOURCE,
        categories=[CATEGORY],
    )
    logger.info("network identity authenticated for account %s (%s)", account_id, outcome.level)
    return NetworkIdentityView(
        authenticated=True, level=outcome.level, verified_at=now, kept=list(KEPT)
    )
