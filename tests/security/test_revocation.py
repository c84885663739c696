"""Revocations reach every service, not only the gateway (issue 23 item 5).

A caller inside the network can reach a service behind the gateway's back. When identity
closes an account or revokes a partner, every app learns it from ``identity.events``
(:mod:`kit.revocation`; fed here from identity's outbox, as the broker would) and refuses
the tokens still in date with 401 itself. Entries leave once every token they could cover
has expired, from memory and from the table.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlmodel import col

from kit.db import Database
from kit.events import new_event
from kit.models import Revocation
from kit.revocation import (
    Revocations,
    load_revocations,
    prune_revocations,
    revocation_handler,
)
from kit.testing import new_subject
from services.identity.rights.service import ACCOUNT_CLOSED
from tests.kit.support import create_tables
from tests.security.conftest import Suite, deliver_identity_events, partner_registration

OWN_ORDERS = "/orders"  # orders, called directly: a user route (orders:read)
#: A user's own route of each service that verifies tokens itself.
OWN_ROUTES = {"orders": OWN_ORDERS, "consent": "/rights-requests/me", "transfer": "/transfers/me"}


@pytest.mark.obligation("OB-4-7")
async def test_a_closed_accounts_token_is_refused_by_a_service_called_directly(
    suite: Suite,
) -> None:
    subject = new_subject()
    token = suite.user(subject)
    orders = suite.clients["orders"]
    before = await orders.get(OWN_ORDERS, headers=token)
    assert before.status_code == 200, before.text  # the control: the token works
    identity = suite.services["identity"].state.context
    async with identity.database.session() as session:  # as identity's deletion does
        identity.events.add(session, type=ACCOUNT_CLOSED, subject=subject, purpose="account")
    await deliver_identity_events(suite)
    for name, path in OWN_ROUTES.items():
        after = await suite.clients[name].get(path, headers=token)
        assert after.status_code == 401, (name, after.text)
        assert after.headers["www-authenticate"].startswith("Bearer")
    other = await orders.get(OWN_ORDERS, headers=suite.user(new_subject()))
    assert other.status_code == 200  # only that account is refused


@pytest.mark.obligation("OB-4-7")
async def test_a_revoked_partners_token_is_refused_by_a_service_called_directly(
    suite: Suite,
) -> None:
    admin = suite.staff(new_subject("stf"))
    registered = await suite.client.post(
        "/identity/partners", json=partner_registration("Courier Behind Ltd"), headers=admin
    )
    assert registered.status_code == 201, registered.text
    client_id = registered.json()["client_id"]
    token = suite.partner(client_id, "partner:logistics", ["logistics.delivery"])
    orders = suite.clients["orders"]
    before = await orders.get("/partner/orders", headers=token)
    assert before.status_code == 200, before.text
    revoked = await suite.client.post(f"/identity/partners/{client_id}/revoke", headers=admin)
    assert revoked.status_code == 200, revoked.text
    await deliver_identity_events(suite)
    after = await orders.get("/partner/orders", headers=token)
    assert after.status_code == 401, after.text


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/revocations.db")
    await create_tables(database)
    yield database
    await database.dispose()


async def test_a_revocation_leaves_once_every_token_it_covers_has_expired(
    database: Database,
) -> None:
    revoked_at = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    keep = timedelta(seconds=3660)  # the longest token lifetime and the leeway
    clock = Clock(revoked_at)
    revocations = Revocations(clock=clock)
    handle = revocation_handler(revocations, keep_s=keep.total_seconds())
    closed, kept = new_subject(), new_subject()
    for subject, at in ((closed, revoked_at), (kept, revoked_at + timedelta(minutes=30))):
        event = new_event(
            source="/identity", type=ACCOUNT_CLOSED, subject=subject, purpose="account"
        ).model_copy(update={"time": at})
        async with database.session() as session:
            await handle(session, event)

    async def rows() -> set[str]:
        async with database.session() as session:
            return set(await session.scalars(select(col(Revocation.subject))))

    clock.now = revoked_at + keep - timedelta(seconds=1)  # a token could still be valid
    await prune_revocations(database, revocations)
    assert revocations.is_revoked(closed) and await rows() == {closed, kept}
    clock.now = revoked_at + keep  # every token issued before the revocation has expired
    await prune_revocations(database, revocations)
    assert closed not in revocations and not revocations.is_revoked(closed)
    assert await rows() == {kept}
    assert revocations.is_revoked(kept)


async def test_a_reread_while_a_revocation_commits_does_not_forget_it(
    database: Database,
) -> None:
    """The periodic reread (siblings' revocations) runs while the consumer's transaction is
    still open: the entry just learnt stays refused."""
    revocations = Revocations()
    handle = revocation_handler(revocations, keep_s=3660)
    subject = new_subject()
    event = new_event(source="/identity", type=ACCOUNT_CLOSED, subject=subject, purpose="account")
    async with database.session() as session:
        await handle(session, event)  # learnt, not committed yet
        await load_revocations(database, revocations)  # a reread meanwhile
        assert revocations.is_revoked(subject)
    await load_revocations(database, revocations)
    assert revocations.is_revoked(subject)
