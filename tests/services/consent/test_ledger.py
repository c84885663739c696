"""The processing ledger: every processing of a user's data shows in their ledger (who,
which categories, when, for what, on which legal basis), an edited entry breaks the hash
chain and the user is told so, a redelivered event makes one entry, and on the real broker
the consumer fills the ledger from other services' topics."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from kit.app import AppContext
from kit.auth import USER_SCOPES, Scope
from kit.clock import CHINA_TZ
from kit.consumer import EventConsumer
from kit.events import Event, new_event
from kit.kafka import TopicSpec, ensure_topics
from kit.testing import (
    UNREACHABLE_KAFKA,
    bearer,
    eventually,
    mint_token,
    new_subject,
    serve_app,
    trust_only,
)
from services.consent.config import Settings
from services.consent.ledger import service as ledger
from services.consent.ledger.consumers import ledger_consumer
from services.consent.ledger.models import LedgerEntry
from tests.conftest import Broker
from tests.services.consent.conftest import ISSUER, KEY, Consent

NOW = datetime.now(UTC).replace(microsecond=0)
PHONE = "user.contact.phone_number"
ADDRESS = "user.contact.address"
NAME = "user.name"
LOCATION = "user.location.precise"


def processing(
    subject: str,
    *,
    service: str = "orders",
    action: str = "read",
    actor: str | None = None,
    purpose: str = "order.fulfilment",
    categories: Iterable[str] = (PHONE,),
    resource: str = "orders.order",
    at: datetime | None = None,
    extra: dict[str, Any] | None = None,
) -> Event:
    """A processing event as ``EventWriter.processing`` makes it, at time ``at``."""
    event = new_event(
        source=f"/{service}",
        type=f"com.signature.{service}.personal_data.{action}.v1",
        subject=subject,
        purpose=purpose,
        data={"actor": actor or subject, "resource": resource, "action": action, **(extra or {})},
        categories=categories,
    )
    return event.model_copy(update={"time": at or NOW})


def identity_event(type_: str, subject: str, data: dict[str, Any]) -> Event:
    return new_event(
        source="/identity",
        type=f"com.signature.identity.{type_}.v1",
        subject=subject,
        purpose="account",
        data=data,
    )


async def feed(consent: Consent, *events: Event) -> None:
    """Hand events to the ledger consumer's handler, one transaction each, as it would."""
    handler = ledger_consumer(consent.context).handler
    for event in events:
        async with consent.context.database.session() as session:
            await handler(session, event)


async def my_ledger(
    consent: Consent, headers: dict[str, str], **params: int | str
) -> dict[str, Any]:
    response = await consent.client.get("/ledger/me", headers=headers, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.obligation("OB-R-1")
async def test_the_user_sees_who_processed_which_data_when_for_what_and_why(
    consent: Consent,
) -> None:
    user, headers = consent.user()
    partner, unnamed_partner = f"ptn_{uuid.uuid4().hex[:12]}", f"ptn_{uuid.uuid4().hex[:12]}"
    staff = new_subject()
    await feed(
        consent,
        identity_event(
            "partner.registered", partner, {"kind": "logistics", "name": "Swift Logistics"}
        ),
        identity_event("partner.registered", unnamed_partner, {"kind": "customs_broker"}),
        identity_event("account.created", staff, {"kind": "staff", "roles": ["customer_service"]}),
        processing(
            user, service="identity", action="write", purpose="account", at=NOW - timedelta(hours=5)
        ),
        processing(
            user,
            actor=partner,
            purpose="logistics.delivery",
            categories=[NAME, PHONE, ADDRESS],
            at=NOW - timedelta(hours=4),
        ),
        processing(
            user,
            actor=unnamed_partner,
            purpose="customs.clearance",
            categories=["user.government_id.national_identification_number"],
            at=NOW - timedelta(hours=3),
        ),
        processing(
            user,
            actor=staff,
            purpose="customer_service",
            categories=[PHONE],
            at=NOW - timedelta(hours=2),
        ),
        processing(user, purpose="location", categories=[LOCATION], at=NOW - timedelta(hours=1)),
        processing(
            user,
            actor="orders",
            action="delete",
            purpose="legal.retention",
            categories=[ADDRESS],
            at=NOW,
        ),
    )

    page = await my_ledger(consent, headers)

    assert page["chain_valid"] is True
    assert page["total"] == 6
    entries = page["entries"]
    assert [e["occurred_at"] for e in entries] == sorted(
        (e["occurred_at"] for e in entries), reverse=True
    )
    by_purpose = {e["purpose"]: e for e in entries}
    delivery = by_purpose["logistics.delivery"]
    assert delivery["who"] == {
        "kind": "partner",
        "service": "orders",
        "id": partner,
        "name": "Swift Logistics",
        "role": None,
        "display": f"Swift Logistics ({partner})",
    }
    assert [c["id"] for c in delivery["categories"]] == sorted([NAME, PHONE, ADDRESS])
    assert delivery["legal_basis"] == "contract / policy agreement"
    assert delivery["action"] == "read"
    assert delivery["purpose_description"].startswith("A logistics partner delivers")
    assert datetime.fromisoformat(delivery["occurred_at"]) == NOW - timedelta(hours=4)
    customs = by_purpose["customs.clearance"]
    assert customs["who"]["display"] == f"customs_broker partner {unnamed_partner}"
    assert customs["categories"][0]["sensitive"] is True
    support = by_purpose["customer_service"]["who"]
    assert support["kind"] == "staff" and support["role"] == "customer_service"
    assert support["id"] is None, "a staff member's account id is not shown to users"
    assert by_purpose["account"]["who"]["display"] == "you"
    assert by_purpose["account"]["who"]["service"] == "identity"
    assert by_purpose["location"]["legal_basis"] == "consent"
    retention = by_purpose["legal.retention"]
    assert retention["legal_basis"] == "legal obligation"
    assert retention["action"] == "delete"
    assert retention["who"]["display"] == "the orders service"


@pytest.mark.obligation("OB-R-1")
async def test_gateway_access_events_are_ledger_entries_and_other_events_are_not(
    consent: Consent,
) -> None:
    user, headers = consent.user()
    access = new_event(
        source="/gateway",
        type="com.signature.gateway.access.v1",
        subject=user,
        purpose="order.query",
        data={"actor": user, "resource": "orders.order", "action": "read"},
        categories=[PHONE, ADDRESS],
    )
    staff_access = new_event(
        source="/gateway",
        type="com.signature.gateway.personal_data.access.v1",
        subject=user,
        purpose="security.anti_fraud",
        data={
            "actor": new_subject(),
            "actor_role": "security",
            "resource": "orders.order",
            "action": "read",
        },
        categories=[PHONE],
    )
    not_processing = new_event(
        source="/consent",
        type="com.signature.consent.consent.granted.v1",
        subject=user,
        purpose="location",
        data={"state": "granted"},
    )
    await feed(consent, access, staff_access, not_processing)

    page = await my_ledger(consent, headers)

    assert {e["id"] for e in page["entries"]} == {access.id, staff_access.id}
    roles = {e["who"]["role"] for e in page["entries"]}
    assert roles == {None, "security"}
    assert all(e["who"]["service"] == "gateway" for e in page["entries"])


@pytest.mark.obligation("OB-R-1")
async def test_each_user_sees_only_their_own_entries_a_page_at_a_time(consent: Consent) -> None:
    user, headers = consent.user()
    other, other_headers = consent.user()
    await feed(
        consent,
        *(processing(user, at=NOW - timedelta(minutes=i)) for i in range(5)),
        processing(other),
    )

    first = await my_ledger(consent, headers, limit=2)
    second = await my_ledger(consent, headers, limit=2, offset=first["next_offset"])
    last = await my_ledger(consent, headers, limit=2, offset=second["next_offset"])

    assert (first["total"], len(first["entries"]), first["next_offset"]) == (5, 2, 2)
    assert (len(last["entries"]), last["next_offset"]) == (1, None)
    seen = [e["id"] for page in (first, second, last) for e in page["entries"]]
    assert len(set(seen)) == 5
    assert (await my_ledger(consent, other_headers))["total"] == 1
    too_many = await consent.client.get("/ledger/me", headers=headers, params={"limit": 101})
    assert too_many.status_code == 422


async def ledger_ids(consent: Consent, headers: dict[str, str], **params: Any) -> list[str]:
    """The purposes of the entries a filtered read shows, newest first."""
    response = await consent.client.get("/ledger/me", headers=headers, params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    assert page["total"] == len(page["entries"]), "one page holds every match here"
    return [entry["purpose"] for entry in page["entries"]]


@pytest.mark.obligation("OB-R-1")
async def test_the_user_filters_the_ledger_by_purpose_category_actor_and_days(
    consent: Consent,
) -> None:
    user, headers = consent.user()
    partner = f"ptn_{uuid.uuid4().hex[:12]}"
    # 23:30 on 1 March and 00:30 on 2 March in China are both 1 March in UTC.
    late = datetime(2026, 3, 1, 23, 30, tzinfo=CHINA_TZ)
    early = datetime(2026, 3, 2, 0, 30, tzinfo=CHINA_TZ)
    await feed(
        consent,
        identity_event("partner.registered", partner, {"kind": "logistics", "name": "Swift"}),
        processing(user, purpose="account", categories=[NAME], at=late),
        processing(
            user, actor=partner, purpose="logistics.delivery", categories=[ADDRESS], at=early
        ),
        processing(user, purpose="location", categories=[LOCATION], at=early + timedelta(days=1)),
        processing(user, purpose="order.fulfilment", categories=[PHONE], at=early + timedelta(2)),
        processing(new_subject(), purpose="account", categories=[NAME], at=late),
    )

    assert await ledger_ids(consent, headers, purpose="account") == ["account"]
    # A category matches itself and the categories below it, nothing that merely starts so.
    assert await ledger_ids(consent, headers, category="user.contact") == [
        "order.fulfilment",
        "logistics.delivery",
    ]
    assert await ledger_ids(consent, headers, category="user.contact.phone_numbe_") == []
    assert await ledger_ids(consent, headers, category="user.nam") == []
    assert await ledger_ids(consent, headers, actor=partner) == ["logistics.delivery"]
    # Days are China's: 2 March starts at 00:00 China time, which is still 1 March in UTC.
    assert await ledger_ids(consent, headers, since="2026-03-02", until="2026-03-03") == [
        "location",
        "logistics.delivery",
    ]
    assert await ledger_ids(consent, headers, until="2026-03-01") == ["account"]
    assert await ledger_ids(
        consent, headers, category="user.contact", since="2026-03-02", until="2026-03-02"
    ) == ["logistics.delivery"]

    # A page of the filtered entries: counted, and the next one named.
    first = await my_ledger(consent, headers, limit=1, since="2026-03-02")
    assert (first["total"], first["next_offset"], first["chain_valid"]) == (3, 1, True)

    backwards = await consent.client.get(
        "/ledger/me", headers=headers, params={"since": "2026-03-03", "until": "2026-03-02"}
    )
    assert backwards.status_code == 422
    assert [e["field"] for e in backwards.json()["errors"]] == ["query.until"]
    misspelt = await consent.client.get("/ledger/me", headers=headers, params={"purpse": "x"})
    assert misspelt.status_code == 422

    choices = (await consent.client.get("/ledger/me/choices", headers=headers)).json()
    assert [p["id"] for p in choices["purposes"]] == [
        "account",
        "location",
        "logistics.delivery",
        "order.fulfilment",
    ]
    assert choices["purposes"][0]["description_zh"] == "注册、登录并维护您的账户和会员身份。"
    assert [c["id"] for c in choices["categories"]] == sorted([NAME, ADDRESS, LOCATION, PHONE])
    named = {c["id"]: (c["name"], c["name_zh"]) for c in choices["categories"]}
    assert named[LOCATION] == ("Precise location", "精准定位信息")
    assert {a["id"]: a["display"] for a in choices["actors"]} == {
        user: "you",
        partner: f"Swift ({partner})",
    }


async def test_the_ledger_needs_a_user_token_with_consent_read(consent: Consent) -> None:
    assert (await consent.client.get("/ledger/me")).status_code == 401
    user = new_subject()
    without = bearer(consent.token(user, USER_SCOPES - {Scope.CONSENT_READ}))
    response = await consent.client.get("/ledger/me", headers=without)
    assert response.status_code == 403
    assert response.json()["missing_scopes"] == ["consent:read"]


@pytest.mark.obligation("OB-R-1")
async def test_an_edited_entry_breaks_the_chain_and_the_user_is_told(consent: Consent) -> None:
    user, headers = consent.user()
    events = [processing(user, at=NOW - timedelta(minutes=3 - i)) for i in range(3)]
    await feed(consent, *events)
    async with consent.context.database.session() as session:
        assert (await ledger.verify_chain(session, user)).valid

    async with consent.context.database.engine.begin() as connection:
        await connection.execute(
            text("UPDATE ledger_entry SET categories = :c WHERE subject = :s AND seq = 2"),
            {"c": '["user.name"]', "s": user},
        )

    async with consent.context.database.session() as session:
        check = await ledger.verify_chain(session, user)
    assert not check.valid
    assert (check.first_invalid_seq, check.first_invalid_event_id) == (2, events[1].id)
    assert check.reason == "the entry's content does not match its hash"
    page = await my_ledger(consent, headers)
    assert page["chain_valid"] is False


async def test_a_removed_entry_or_a_rewritten_hash_breaks_the_chain(consent: Consent) -> None:
    removed, rewritten = consent.user()[0], consent.user()[0]
    await feed(
        consent,
        *(processing(removed, at=NOW - timedelta(minutes=i)) for i in range(3)),
        *(processing(rewritten, at=NOW - timedelta(minutes=i)) for i in range(3)),
    )
    async with consent.context.database.engine.begin() as connection:
        await connection.execute(
            text("DELETE FROM ledger_entry WHERE subject = :s AND seq = 2"), {"s": removed}
        )
        # An attacker who recomputes one entry's hash still breaks the next link.
        await connection.execute(
            text(
                "UPDATE ledger_entry SET categories = '[]', entry_hash = :h "
                "WHERE subject = :s AND seq = 1"
            ),
            {"h": "f" * 64, "s": rewritten},
        )

    async with consent.context.database.session() as session:
        gap = await ledger.verify_chain(session, removed)
        relinked = await ledger.verify_chain(session, rewritten)
    assert (gap.valid, gap.first_invalid_seq) == (False, 3)
    assert (relinked.valid, relinked.first_invalid_seq) == (False, 1)


@pytest.mark.obligation("OB-R-1")
async def test_a_redelivered_event_makes_one_entry(consent: Consent) -> None:
    user, headers = consent.user()
    event = processing(user)
    await feed(consent, event, event, processing(user, at=NOW + timedelta(seconds=1)), event)

    page = await my_ledger(consent, headers)

    assert page["total"] == 2
    assert [e["id"] for e in page["entries"]].count(event.id) == 1
    assert page["chain_valid"] is True
    # The table itself refuses a second row for an event id.
    with pytest.raises(IntegrityError):
        async with consent.context.database.session() as session:
            row = (
                await session.scalars(
                    select(LedgerEntry).where(col(LedgerEntry.event_id) == event.id)
                )
            ).one()
            session.add(
                LedgerEntry(
                    **row.model_dump(exclude={"id", "seq"}),
                    seq=99,
                )
            )


def documented_hash(prev_hash: str, entry: LedgerEntry) -> str:
    """An entry's hash as the chain defines it (the ledger module's docstring): SHA-256 over
    the previous hash, a newline and ``json.dumps`` of the entry's facts with sorted keys, no
    spaces, non-ASCII as is, the timestamps in UTC with microseconds and a ``Z``."""

    def utc(value: datetime) -> str:
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    facts = entry.model_dump(exclude={"id", "prev_hash", "entry_hash"})
    facts.update(occurred_at=utc(entry.occurred_at), recorded_at=utc(entry.recorded_at))
    canonical = json.dumps(facts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


@pytest.mark.obligation("OB-R-1")
async def test_every_entry_is_hashed_as_the_chain_defines_it_so_older_ledgers_still_verify(
    consent: Consent,
) -> None:
    """Entries recorded one by one and in a batch carry the hash of the chain's definition,
    byte for byte, with text that JSON escapes or keeps as is (quotes, backslashes, Chinese,
    an emoji), no role or one, and an event time in another zone than UTC: a ledger
    recorded by an earlier version verifies under this one, and the other way round."""
    user, headers = consent.user()
    shanghai = timezone(timedelta(hours=8))
    tricky = [
        processing(user, resource='orders.订单 "export" \\ 📦', at=NOW - timedelta(hours=2)),
        processing(
            user,
            actor="acc_staff_1",
            categories=(PHONE, ADDRESS, NAME),
            extra={"actor_role": "客服 (support)"},
            at=(NOW - timedelta(hours=1, microseconds=1)).astimezone(shanghai),
        ),
    ]
    await feed(consent, tricky[0])
    handle_batch = ledger_consumer(consent.context).batch_handler
    assert handle_batch is not None
    async with consent.context.database.session() as session:
        await handle_batch(session, [tricky[1], processing(user, purpose="not.in.catalogue")])

    async with consent.context.database.session(reads_only=True) as session:
        entries = list(
            await session.scalars(
                select(LedgerEntry)
                .where(col(LedgerEntry.subject) == user)
                .order_by(col(LedgerEntry.seq))
            )
        )
    assert [entry.seq for entry in entries] == [1, 2, 3]
    assert entries[1].actor_role == "客服 (support)"
    previous = ledger.GENESIS_HASH
    for entry in entries:
        assert entry.prev_hash == previous
        assert entry.entry_hash == documented_hash(previous, entry), f"entry {entry.seq}"
        previous = entry.entry_hash
    assert (await my_ledger(consent, headers))["chain_valid"] is True


@pytest.mark.obligation("OB-R-1")
async def test_a_batch_of_events_extends_each_chain_and_the_chain_still_verifies(
    consent: Consent,
) -> None:
    (user, headers), (other, other_headers) = consent.user(), consent.user()
    partner = f"ptn_{uuid.uuid4().hex[:12]}"
    first = processing(user, at=NOW - timedelta(minutes=10))
    await feed(consent, first)  # the chain already has an entry when the batch comes
    batch = [
        identity_event("partner.registered", partner, {"kind": "logistics", "name": "Swift"}),
        *(
            processing(
                subject,
                actor=partner,
                purpose="logistics.delivery",
                at=NOW - timedelta(minutes=9 - i),
            )
            for i in range(8)
            for subject in (user, other)
        ),
    ]
    handle_batch = ledger_consumer(consent.context).batch_handler
    assert handle_batch is not None
    async with consent.context.database.session() as session:
        await handle_batch(session, [*batch, first])  # ``first`` redelivered within it

    mine, theirs = await my_ledger(consent, headers), await my_ledger(consent, other_headers)
    assert (mine["total"], theirs["total"]) == (9, 8)
    assert mine["chain_valid"] is True and theirs["chain_valid"] is True
    assert [e["id"] for e in mine["entries"]] == [e.id for e in reversed([first, *batch[1::2]])], (
        "newest first, in the order the events came"
    )
    assert mine["entries"][0]["who"]["display"] == f"Swift ({partner})"
    async with consent.context.database.session() as session:
        assert (await ledger.verify_chain(session, user)).valid
        assert (await ledger.verify_chain(session, other)).valid
    await feed(consent, processing(user, at=NOW))  # one by one again after the batch
    assert (await my_ledger(consent, headers))["chain_valid"] is True


def test_the_legal_basis_follows_the_catalogue_kind(consent: Consent) -> None:
    catalogue = consent.context.catalogue
    assert ledger.legal_basis_for(catalogue, "order.fulfilment") == "contract / policy agreement"
    assert ledger.legal_basis_for(catalogue, "recommendation.personalised") == "consent"
    assert ledger.legal_basis_for(catalogue, "sensitive.face_verification") == "consent"
    assert ledger.legal_basis_for(catalogue, "incident.notification") == "legal obligation"
    assert ledger.legal_basis_for(catalogue, "no.such_purpose") == ledger.UNDETERMINED_BASIS


# --------------------------------------------------------------------------- real broker


@pytest.mark.integration
@pytest.mark.obligation("OB-R-1")
async def test_the_consumer_fills_the_ledger_from_other_services_topics(
    kafka: Broker, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/consent.db",
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        kafka_topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
        auth_issuer=ISSUER,
        log_json=False,
        first_policy_path=None,  # these tests publish their own versions
    )
    await ensure_topics(
        kafka.bootstrap_servers,
        [TopicSpec(settings.topic(topic)) for topic in settings.ledger_source_topics],
    )
    async with serve_app("services.consent", settings) as (app, client):
        trust_only(app, KEY)
        database = app.state.context.database
        user = new_subject()
        partner = f"ptn_{uuid.uuid4().hex[:12]}"
        headers = bearer(
            mint_token(
                KEY,
                issuer=ISSUER,
                audience=settings.auth_audience,
                subject=user,
                scopes=USER_SCOPES,
            )
        )
        registered = identity_event("partner.registered", partner, {"kind": "logistics"})
        read = processing(user, actor=partner, purpose="logistics.delivery")
        write = processing(user, service="identity", action="write", purpose="account")
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
        await producer.start()
        try:
            for topic, event in (
                ("identity.events", registered),
                ("orders.events", read),
                ("orders.events", read),  # redelivered
                ("identity.events", write),
            ):
                await producer.send_and_wait(
                    settings.topic(topic), value=event.to_json_bytes(), key=event.subject.encode()
                )
        finally:
            await producer.stop()

        async def both_recorded() -> bool:
            async with database.session() as session:
                count = await session.scalar(
                    select(func.count())
                    .select_from(LedgerEntry)
                    .where(col(LedgerEntry.subject) == user)
                )
            context: AppContext = app.state.context
            taken = sum(
                c.handled + c.duplicates
                for c in context.consumers
                if isinstance(c, EventConsumer) and "ledger" in c.name
            )
            return count == 2 and taken >= 4

        await eventually(both_recorded, timeout_s=60, what="the ledger consumer to record")
        response = await client.get("/ledger/me", headers=headers)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["chain_valid"] is True
    assert {e["id"] for e in page["entries"]} == {read.id, write.id}
    delivery = next(e for e in page["entries"] if e["id"] == read.id)
    assert delivery["who"]["display"] == f"logistics partner {partner}"


@pytest.mark.integration
async def test_concurrent_batches_on_postgresql_lock_each_subject_and_keep_every_chain(
    pg_url: str,
) -> None:
    """The batch path on PostgreSQL: the batch's subjects locked in one statement and their
    heads read in one query. Two batches for the same subjects at once (two consumers of a
    group during a rebalance) both commit, one after the other, and every chain stays whole."""
    settings = Settings(
        database_url=pg_url,
        kafka_bootstrap_servers=UNREACHABLE_KAFKA,
        auth_issuer=ISSUER,
        log_json=False,
        first_policy_path=None,
    )
    subjects = [f"acc_{uuid.uuid4().hex[:12]}" for _ in range(5)]
    async with serve_app("services.consent", settings) as (app, _):
        context: AppContext = app.state.context
        handle_batch = ledger_consumer(context).batch_handler
        assert handle_batch is not None
        database = context.database

        async def batch(minute: int) -> None:
            events = [
                processing(subject, at=NOW - timedelta(minutes=minute, seconds=i))
                for i in range(4)
                for subject in (subjects[::-1] if minute % 2 else subjects)
            ]
            async with database.session() as session:
                await handle_batch(session, events)

        await batch(9)  # every chain has entries before the concurrent batches
        await asyncio.gather(batch(5), batch(4), batch(3))
        async with database.session() as session:
            for subject in subjects:
                check = await ledger.verify_chain(session, subject)
                assert check.valid, (subject, check)
            seqs = list(
                await session.execute(
                    select(col(LedgerEntry.subject), func.count(), func.max(col(LedgerEntry.seq)))
                    .where(col(LedgerEntry.subject).in_(subjects))
                    .group_by(col(LedgerEntry.subject))
                )
            )
    assert sorted((count, last) for _, count, last in seqs) == [(16, 16)] * 5
